// Package cluster is where a link between broker nodes plugs in.
//
// A single stompica node needs none: with no Link (the default) the broker
// is local only and pays nothing for this seam. A Link (for example one on a
// NATS cluster, where each node publishes its topic messages to a subject and
// subscribes to the subjects its clients have interest in) lets the
// subscribers of every node receive what any node's clients publish.
//
// The broker calls a Link in three places: when one of its clients publishes
// a topic message (Published), and when local interest in a topic name or
// pattern appears or goes away (Interest). The link hands messages from other
// nodes back through the Inbound it was started with. Queues are not carried
// here: spread over nodes, they live in a shared store (see package store).
package cluster

// Link carries topic messages and interest between this node and others.
//
// Published and Interest are called on the broker's hot path, from many
// goroutines at once, some with broker locks held: they must not block (queue
// or drop by the link's own policy) and must not call back into the broker.
type Link interface {
	// Start is called once when the broker starts; in takes the messages
	// that other nodes publish.
	Start(in Inbound) error

	// Published reports a topic message published by a client of this node
	// (never one that came through Inbound). data is the message encoded as
	// a STOMP 1.2 MESSAGE frame without its command line and without the
	// per-subscription headers: "message-id:...\ndestination:...\n...
	// content-length:N\n\n<body>\x00". It is only valid during the call.
	Published(dest string, data []byte)

	// Interest reports that this node's first subscriber to dest (a name,
	// or a pattern with "*", ">" or "#") arrived (on) or its last one left.
	// Calls for one dest come in order, on then off.
	Interest(dest string, on bool)

	// Close stops the link; the broker calls it at Shutdown.
	Close() error
}

// Inbound takes topic messages published on other nodes.
type Inbound interface {
	// Deliver hands a message (encoded as for Link.Published) to this
	// node's subscribers of dest. It is safe from any goroutine; the data
	// is copied.
	Deliver(dest string, data []byte) error
}

// MaxNode is the largest node id: message ids carry the node id in their top
// 16 bits, so the ids of every node stay distinct.
const MaxNode = 1<<16 - 1

// IDBase is the first message id of node n: the ids node n gives are above
// n<<48.
func IDBase(node uint16) uint64 { return uint64(node) << 48 }

// NodeOf is the node a message id was given by.
func NodeOf(id uint64) uint16 { return uint16(id >> 48) }
