package proxy

import (
	"net"
	"sync"
)

// batchConn is the client's socket under a server-side *tls.Conn. crypto/tls
// sends each record of a Write with its own write to the socket: a 32 KiB
// relay write is two system calls. Between begin and end (one tls.Conn.Write
// of the relay's down direction) batchConn gathers the records instead and
// end sends them with one write. Outside a batch, and so during the
// handshake, every write goes straight through.
//
// crypto/tls writes from its reading side too (alerts, a KeyUpdate's
// answer), under its own lock that orders records; mu keeps that order
// here: such a record arriving during a batch joins it, one arriving while
// end sends waits for it. A failed batch write is kept and returned for
// every later write: crypto/tls counted those records as sent, so nothing
// after them could be read by the client anyway.
type batchConn struct {
	net.Conn
	mu  sync.Mutex
	on  bool
	buf *[]byte // from batchPool while on
	err error
}

// maxBatch is how much one system call carries at most: two full records
// (header and AEAD overhead included), what one 32 KiB read of the backend
// becomes. A longer batch goes out in several writes.
const maxBatch = 2 * (maxRecordPayload + 5 + 256)

// maxRecordPayload is a TLS record's largest plaintext: a write longer
// than that is several records, and only then is a batch worth its copy.
const maxRecordPayload = 16 << 10

var batchPool = sync.Pool{New: func() any { b := make([]byte, 0, maxBatch); return &b }}

func (b *batchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return 0, b.err
	}
	if b.on {
		buf := *b.buf
		if len(buf)+len(p) > cap(buf) {
			if err := b.sendLocked(); err != nil {
				return 0, err
			}
			buf = *b.buf
		}
		if len(p) <= cap(buf) {
			*b.buf = append(buf, p...)
			return len(p), nil
		}
	}
	return b.Conn.Write(p)
}

// sendLocked writes what the batch holds and empties it.
func (b *batchConn) sendLocked() error {
	if len(*b.buf) == 0 {
		return nil
	}
	_, err := b.Conn.Write(*b.buf)
	*b.buf = (*b.buf)[:0]
	if err != nil {
		b.err = err
	}
	return err
}

// begin starts gathering writes; the caller must call end. Call it only
// after the handshake, around a write to the *tls.Conn above.
func (b *batchConn) begin() {
	b.mu.Lock()
	b.on = true
	b.buf = batchPool.Get().(*[]byte)
	*b.buf = (*b.buf)[:0]
	b.mu.Unlock()
}

// end sends what was gathered since begin with one write and stops gathering.
func (b *batchConn) end() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	err := b.sendLocked()
	batchPool.Put(b.buf)
	b.buf, b.on = nil, false
	if err == nil {
		err = b.err
	}
	return err
}
