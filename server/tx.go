package server

import (
	"strconv"

	"github.com/stompica/stompica/frame"
)

// transaction buffers SENDs, ACKs and NACKs until COMMIT.
type transaction struct {
	ops   []txOp
	bytes int64 // what ops hold, as counted against the bounds (see txOpCost)
}

// txOp is a buffered SEND (msg) or ACK/NACK (sub, mid, nack).
type txOp struct {
	msg  *message
	sub  *subscription
	mid  uint64
	nack bool
}

// txOpCost is what one buffered operation costs besides a message's
// encoding: the op itself, and for a SEND the message's own fields. Charging
// it bounds the number of operations too (an ACK-only transaction).
const txOpCost = 256

func (c *conn) tx(id []byte) (*transaction, error) {
	tx := c.txs[string(id)]
	if tx == nil {
		return nil, protocolErr("unknown transaction " + strconv.Quote(string(id)))
	}
	return tx, nil
}

func txHeader(f *frame.Frame) (string, error) {
	id, ok := f.Get("transaction")
	if !ok || len(id) == 0 {
		return "", protocolErr(f.Command + " frame has no transaction header")
	}
	return string(id), nil
}

// txAdd buffers op in the transaction id after checking the bounds: the
// transaction may hold at most Options.MaxTransactionBytes, and open
// transactions broker-wide at most half the memory budget (their bytes
// count in it). The cap keeps the budget from filling with bytes that only
// a paused publisher's COMMIT or ABORT could release.
func (c *conn) txAdd(tx *transaction, id []byte, op txOp) error {
	n := int64(txOpCost)
	if op.msg != nil {
		n += int64(len(op.msg.shared))
	}
	if lim := c.s.opts.MaxTransactionBytes; tx.bytes+n > lim {
		return limitErr("transaction " + strconv.Quote(string(id)) + " would hold more than " +
			strconv.FormatInt(lim, 10) + " bytes (max-transaction-bytes)")
	}
	if half := c.s.opts.MemoryBudget / 2; c.s.input.txBytes.Load()+n > half {
		return limitErr("open transactions would hold more than " + strconv.FormatInt(half, 10) +
			" bytes, half the memory budget (memory-budget): commit or abort first")
	}
	tx.ops = append(tx.ops, op)
	tx.bytes += n
	c.txBytes += n
	c.s.input.addTx(n)
	c.fills = true // may be paused while the budget is full
	return nil
}

// txRelease stops counting what a finished transaction held.
func (c *conn) txRelease(tx *transaction) {
	if tx.bytes == 0 {
		return
	}
	c.txBytes -= tx.bytes
	c.s.input.addTx(-tx.bytes)
	tx.bytes = 0
}

// dropTxs discards every open transaction (the connection ends).
func (c *conn) dropTxs() {
	for id, tx := range c.txs {
		c.txRelease(tx)
		delete(c.txs, id)
	}
	c.txs = nil
}

// onTx handles the transaction frames: BEGIN, COMMIT and ABORT.
func (c *conn) onTx(f *frame.Frame) error {
	switch f.Command {
	case frame.BEGIN:
		return c.onBegin(f)
	case frame.COMMIT:
		return c.onCommit(f)
	default:
		return c.onAbort(f)
	}
}

func (c *conn) onBegin(f *frame.Frame) error {
	id, err := txHeader(f)
	if err != nil {
		return err
	}
	if _, dup := c.txs[id]; dup {
		return protocolErr("transaction " + strconv.Quote(id) + " already begun")
	}
	if len(c.txs) >= c.s.opts.MaxTransactions {
		return limitErr("too many open transactions (max " + strconv.Itoa(c.s.opts.MaxTransactions) + ")")
	}
	if c.txs == nil {
		c.txs = make(map[string]*transaction)
	}
	c.txs[id] = &transaction{}
	return nil
}

// endTx ends the transaction a COMMIT or ABORT names: it is no longer open.
func (c *conn) endTx(f *frame.Frame) (string, *transaction, error) {
	id, err := txHeader(f)
	if err != nil {
		return "", nil, err
	}
	tx, err := c.tx([]byte(id))
	if err != nil {
		return "", nil, err
	}
	delete(c.txs, id)
	return id, tx, nil
}

// onCommit applies the transaction's operations in order.
func (c *conn) onCommit(f *frame.Frame) error {
	id, tx, err := c.endTx(f)
	if err != nil {
		return err
	}
	// The published messages are counted by their queues before the
	// transaction's count is released.
	defer c.txRelease(tx)
	x := sendCtx{c: c}
	x.receipt, _ = f.Get("receipt")
	for i, op := range tx.ops {
		tx.ops[i] = txOp{}
		if op.msg != nil {
			if err := c.s.router.publishFrom(op.msg, &c.batch, &x); err != nil {
				return err
			}
			if isQueue(op.msg.dest) {
				c.fills = true
			}
			continue
		}
		ok, err := c.s.router.ack(op.sub, op.mid, op.nack, &c.batch)
		if !ok {
			return protocolErr("transaction " + strconv.Quote(id) + ": message " + itoa(op.mid) + " is no longer awaiting acknowledgement")
		}
		if err != nil {
			return err
		}
	}
	if x.finish() {
		return errReceiptLater
	}
	return nil
}

func (c *conn) onAbort(f *frame.Frame) error {
	_, tx, err := c.endTx(f)
	if err != nil {
		return err
	}
	c.txRelease(tx)
	return nil
}
