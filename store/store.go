// Package store is where a broker's queue messages live between a SEND and
// the ACK that ends them.
//
// The interface is pull-based: the store remembers, the broker dispatches.
// The broker appends what producers send, takes the next message whenever a
// consumer has credit (round-robin, prefetch and flow control stay in the
// broker), and tells the store how each delivery ended: acknowledged, or put
// back for redelivery. That shape fits the in-memory store of this package
// (the default) as well as a store on a log with a durable pull consumer per
// queue, such as NATS JetStream (Append is a publish whose acknowledgement
// may arrive later, Next a fetch, Ack an ack, Requeue a nak, Load the
// streams found at start).
package store

import (
	"errors"
	"time"
)

// Message is one queue message as a store holds it. The broker fills ID,
// Data, Expires and Value before Append; the store owns Deliveries.
type Message struct {
	// ID is the broker's message id (the MESSAGE frame's message-id).
	ID uint64
	// Data is the message as the broker encodes it: what a persistent store
	// writes, and gives back in the Messages it loads. It is the MESSAGE
	// frame after its command line (headers escaped as in STOMP 1.2), so a
	// store may read headers meant for it (persistent:false, x-dedup-id).
	Data []byte
	// Expires is when the message expires, in Unix milliseconds (0 =
	// never). The broker drops expired messages when it takes them; a
	// store may also use it to discard them sooner.
	Expires int64
	// Deliveries is how many times Next handed the message out, this one
	// included. A Requeue that undoes a delivery takes it back. A
	// persistent store that read the message back after a restart counts
	// the deliveries before it as at least one when they may have
	// happened.
	Deliveries int
	// Value is the broker's in-process form of the message. A store gives
	// back, from Next, the *Message it was given (Value included) as long
	// as it holds it in memory; one it had to read back from storage has a
	// nil Value and the broker decodes Data.
	Value any
}

// ErrPending is what Append returns when the store has taken the message
// but will say later whether it is stored: it then calls the Done given to
// Append exactly once.
var ErrPending = errors.New("store: append pending")

// Done learns how an Append that returned ErrPending ended.
type Done interface {
	// Appended reports that m is stored (err == nil) or was refused. It is
	// called from a goroutine of the store's, never from inside a call to
	// the Queue, and without the store's own locks held (it may call the
	// Queue).
	Appended(m *Message, err error)
}

// Queue holds one queue's messages, oldest first, and the ones handed out
// and not yet acknowledged.
//
// The broker calls a Queue's methods one at a time (under its own lock for
// that queue), so an implementation needs no lock of its own for them; only
// Done callbacks run concurrently.
type Queue interface {
	// Append adds m at the tail. It returns nil once m is stored (the
	// memory store always does, at once, without allocating), ErrPending
	// when the outcome comes later through done, or the reason m was
	// refused. The broker sends a SEND's RECEIPT only once m is stored,
	// and answers a refusal with an ERROR. Deliveries is kept as given (a
	// message moved to a dead-letter queue keeps its count).
	Append(m *Message, done Done) error

	// Next takes the message at the head for delivery, counting one more
	// delivery, or returns nil when there is none. The message is in
	// flight until Ack, or Requeue puts it back.
	Next() (*Message, error)

	// Ack ends a message taken by Next: acknowledged, expired, or moved to
	// the dead-letter queue.
	Ack(m *Message) error

	// Requeue puts a message taken by Next back at the head, ahead of the
	// waiting ones: put back in the reverse order they were taken, a run of
	// messages keeps its order. With delivered false the delivery never
	// reached a consumer and is not counted. A message may come back to a
	// later Queue of the same name (the broker drops a queue object once it
	// is empty and unused, and opens it again on next use).
	Requeue(m *Message, delivered bool) error

	// Len is the number of messages waiting (not in flight).
	Len() int

	// Close releases the queue; the broker calls it when it drops an empty
	// queue nobody consumes, and at shutdown. A persistent store keeps what
	// it holds.
	Close() error
}

// Store opens queues. A Server takes one in its Options; nil means NewMemory.
type Store interface {
	// Load returns the names of the queues that already hold messages
	// (a persistent store after a restart), which the broker opens at
	// start so they dispatch as soon as a consumer arrives.
	Load() ([]string, error)

	// Open returns the queue called name, created empty when new.
	Open(name string) (Queue, error)

	// Close releases the store, after the broker closed its queues.
	Close() error
}

// Notifier is implemented by a Queue whose Next may find nothing at hand
// while Len is not zero (the messages are stored, and being read back).
// The broker calls Notify once after Open; the queue then calls fn, from a
// goroutine of its own and without its locks held, when Next has come back
// empty and messages have arrived since.
type Notifier interface {
	Notify(fn func())
}

// Volatile is implemented by a Store whose queues keep their messages in
// the broker's memory only (the memory store): Append never returns
// ErrPending, Ack does nothing and never fails, and no method takes a lock
// or blocks. The broker then ends an acknowledged message without calling
// Ack, and may call the queue's other methods while it holds a consumer's
// connection lock (a dispatch run, see the server package's lock order).
type Volatile interface {
	Volatile()
}

// Persistent is implemented by a Store whose queues keep stored messages
// out of the broker's memory (on disk, read back when due): the broker
// stops counting a message against its memory budget once it is stored.
type Persistent interface {
	// IDFloor is the lowest message id the broker may give from now on,
	// above every id the store holds.
	IDFloor() uint64
}

// Reporter is implemented by a Store that reports its state (the DIAG
// query "store").
type Reporter interface {
	Report() (Report, error)
}

// Report is a store's state at one moment.
type Report struct {
	Kind       string        `json:"kind"`     // e.g. "jetstream"
	Location   string        `json:"location"` // data dir or NATS URL
	Messages   uint64        `json:"stored_messages"`
	Bytes      uint64        `json:"stored_bytes"`
	Queues     int           `json:"queues"`
	Pending    int           `json:"pending_publishes"` // awaiting the store's confirmation
	Duplicates uint64        `json:"duplicates"`        // not stored again (de-duplication)
	Latency    time.Duration `json:"store_latency_ns"`  // the last confirmation's round trip
}

// Registry is implemented by a Store that keeps durable topic
// subscriptions (name -> topic) across restarts.
type Registry interface {
	// SaveDurable records the durable subscription key on topic; an
	// empty topic removes it.
	SaveDurable(key, topic string) error
	// LoadDurables returns every durable subscription recorded.
	LoadDurables() (map[string]string, error)
	// Purge drops every message of the named queue.
	Purge(name string) error
}

// StreamStart says where a stream reader begins.
type StreamStart struct {
	Kind StartKind
	Seq  uint64    // StartSeq: the first sequence delivered
	Time time.Time // StartTime: the first message stored at or after it
}

// StartKind is the kind of a StreamStart.
type StartKind int

// Where a stream reader begins.
const (
	StartNext  StartKind = iota // only messages stored from now on
	StartFirst                  // the oldest message kept
	StartLast                   // the newest message kept, then the new ones
	StartSeq                    // a stream sequence (an x-stream-offset)
	StartTime                   // a time
)

// Streams is implemented by a Store that keeps append-only logs of topic
// messages (destinations under /stream/, and recorded topics), bounded by
// age and size, for subscribers that replay them.
type Streams interface {
	// Record appends a message (encoded as Message.Data) to the log of
	// dest and calls done once, from a goroutine of the store's, when it
	// is stored or refused. Record does not keep data after it returns;
	// it may wait while the store has too many records to confirm, which
	// slows the publisher down.
	Record(dest string, data []byte, done func(error))
	// Follow reads the log of dest from start, then the messages stored
	// after, in order, calling fn for each from one goroutine of the
	// store's (fn may block: the reader waits, holding a bounded
	// read-ahead, never the whole log). A sequence past the end starts at
	// the next message stored, one below the oldest kept at the oldest
	// kept. With original the messages come at the pace they were
	// stored. stop ends the reader; fn is not called once stop returns.
	Follow(dest string, start StreamStart, original bool, fn func(seq uint64, data []byte)) (stop func(), err error)
}

// StreamInfo is one stream's figures: a /stream/ destination or a recorded
// topic, as its log holds it now.
type StreamInfo struct {
	Dest     string
	Messages uint64
	// Bytes is what the stream's messages take in the store. The log of
	// every stream is kept together; where the store cannot tell one
	// stream's bytes apart, Bytes is its share by message count and
	// BytesExact is false.
	Bytes      uint64
	BytesExact bool
	FirstSeq   uint64
	LastSeq    uint64
	FirstTime  time.Time
	LastTime   time.Time
}

// StreamLimits are the bounds of the streams' log: the oldest messages go
// first past MaxAge or MaxBytes (the bytes of every stream together).
type StreamLimits struct {
	MaxAge   time.Duration
	MaxBytes int64
}

// StreamLister is implemented by a Streams store that lists its streams.
type StreamLister interface {
	// StreamList returns every stream that holds messages, in name
	// order, and the limits they share.
	StreamList() ([]StreamInfo, StreamLimits, error)
}
