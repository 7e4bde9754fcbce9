package server

import (
	"strconv"

	"stompica/frame"
)

// transaction buffers SENDs, ACKs and NACKs until COMMIT.
type transaction struct {
	ops []txOp
}

// txOp is a buffered SEND (msg) or ACK/NACK (sub, mid, nack).
type txOp struct {
	msg  *message
	sub  *subscription
	mid  uint64
	nack bool
}

func (c *conn) tx(id []byte) (*transaction, error) {
	tx := c.txs[string(id)]
	if tx == nil {
		return nil, protoError("unknown transaction " + strconv.Quote(string(id)))
	}
	return tx, nil
}

func txHeader(f *frame.Frame) (string, error) {
	id, ok := f.Get("transaction")
	if !ok || len(id) == 0 {
		return "", protoError(f.Command + " frame has no transaction header")
	}
	return string(id), nil
}

func (c *conn) onBegin(f *frame.Frame) error {
	id, err := txHeader(f)
	if err != nil {
		return err
	}
	if _, dup := c.txs[id]; dup {
		return protoError("transaction " + strconv.Quote(id) + " already begun")
	}
	if len(c.txs) >= c.s.opts.MaxTransactions {
		return protoError("too many open transactions (max " + strconv.Itoa(c.s.opts.MaxTransactions) + ")")
	}
	if c.txs == nil {
		c.txs = make(map[string]*transaction)
	}
	c.txs[id] = &transaction{}
	return nil
}

// onCommit applies the transaction's operations in order.
func (c *conn) onCommit(f *frame.Frame) error {
	id, err := txHeader(f)
	if err != nil {
		return err
	}
	tx, err := c.tx([]byte(id))
	if err != nil {
		return err
	}
	delete(c.txs, id)
	x := sendCtx{c: c}
	x.receipt, _ = f.Get("receipt")
	for _, op := range tx.ops {
		if op.msg != nil {
			if err := c.s.router.publishFrom(op.msg, &c.batch, &x); err != nil {
				return err
			}
			continue
		}
		ok, err := c.s.router.ack(op.sub, op.mid, op.nack, &c.batch)
		if !ok {
			return protoError("transaction " + strconv.Quote(id) + ": message " + itoa(op.mid) + " is no longer awaiting acknowledgement")
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
	id, err := txHeader(f)
	if err != nil {
		return err
	}
	if _, err := c.tx([]byte(id)); err != nil {
		return err
	}
	delete(c.txs, id)
	return nil
}
