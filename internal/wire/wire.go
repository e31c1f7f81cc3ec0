// Package wire reads a peer's lines and packets with hard limits and keeps
// connection deadlines in step with a context. It is the one place that
// knows how many bytes sit in the buffer, which is what the STARTTLS
// invariant "nothing crosses the upgrade" is checked against.
package wire

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// ErrLineTooLong is returned when a line exceeds the reader's limit.
var ErrLineTooLong = errors.New("line too long")

// ErrTooMuchData is returned when a peer sends more than the phase's byte budget.
var ErrTooMuchData = errors.New("too much data before TLS")

// Reader is a bounded line and packet reader.
type Reader struct {
	br      *bufio.Reader
	maxLine int
	budget  int // bytes still allowed; <0 means unlimited
	seen    int64
	// OnLine, when set, sees every complete line read (without its line ending).
	OnLine func(line string)
}

// NewReader reads from r. maxLine bounds one line (ending excluded); budget
// bounds the total bytes read through ReadLine/ReadFull (negative: unlimited).
func NewReader(r io.Reader, maxLine, budget int) *Reader {
	if maxLine <= 0 {
		maxLine = 8192
	}
	// Two more bytes so that a maximal line still fits with its CRLF.
	return &Reader{br: bufio.NewReaderSize(r, maxLine+2), maxLine: maxLine, budget: budget}
}

// ReadLine returns the next line without its CRLF or bare LF ending.
// Bare LF is accepted because real clients (gnutls-cli) send it.
func (r *Reader) ReadLine() (string, error) {
	b, err := r.br.ReadSlice('\n')
	r.seen += int64(len(b))
	if err := r.spend(len(b)); err != nil {
		return "", err
	}
	if err == bufio.ErrBufferFull {
		return "", fmt.Errorf("%w (more than %d bytes)", ErrLineTooLong, r.maxLine)
	}
	if err != nil {
		if err == io.EOF && len(b) > 0 {
			return "", fmt.Errorf("connection closed in the middle of a line %q: %w", trunc(b), io.ErrUnexpectedEOF)
		}
		return "", err
	}
	b = b[:len(b)-1]
	if n := len(b); n > 0 && b[n-1] == '\r' {
		b = b[:n-1]
	}
	if len(b) > r.maxLine {
		return "", fmt.Errorf("%w (more than %d bytes)", ErrLineTooLong, r.maxLine)
	}
	line := string(b)
	if r.OnLine != nil {
		r.OnLine(line)
	}
	return line, nil
}

// ReadFull reads exactly len(p) bytes, counted against the budget.
func (r *Reader) ReadFull(p []byte) error {
	if err := r.spend(len(p)); err != nil {
		return err
	}
	n, err := io.ReadFull(r.br, p)
	r.seen += int64(n)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// Read reads without limits; it is for the application phase after the
// dialogue, so that nothing the reader buffered is lost.
func (r *Reader) Read(p []byte) (int, error) { return r.br.Read(p) }

// Buffered reports how many bytes were received but not yet consumed.
func (r *Reader) Buffered() int { return r.br.Buffered() }

// Pending returns a copy of the buffered bytes (for evidence in errors).
func (r *Reader) Pending() []byte {
	b, _ := r.br.Peek(r.br.Buffered())
	return append([]byte(nil), b...)
}

// Seen counts the bytes taken through ReadLine, ReadFull and ReadByte,
// including a partial line cut short by an error: whether a silent peer said
// anything at all.
func (r *Reader) Seen() int64 { return r.seen }

func (r *Reader) spend(n int) error {
	if r.budget < 0 {
		return nil
	}
	r.budget -= n
	if r.budget < 0 {
		return ErrTooMuchData
	}
	return nil
}

func trunc(b []byte) string {
	if len(b) > 64 {
		return string(b[:64]) + "..."
	}
	return string(b)
}

// Deadline binds a connection's deadline to ctx and to a per-phase timeout.
type Deadline struct {
	conn  net.Conn
	ctx   context.Context
	phase time.Duration
	stop  func() bool
}

// Bind makes ctx's cancellation interrupt any blocked I/O on conn. Call
// Release when the dialogue is over so the connection outlives ctx.
func Bind(ctx context.Context, conn net.Conn, phase time.Duration) *Deadline {
	d := &Deadline{conn: conn, ctx: ctx, phase: phase}
	d.stop = context.AfterFunc(ctx, func() {
		// A deadline in the past wakes every blocked Read and Write at once.
		_ = conn.SetDeadline(time.Unix(1, 0))
	})
	return d
}

// Phase starts a new phase: its deadline is the earlier of ctx's and now+phase.
func (d *Deadline) Phase() {
	dl := time.Time{}
	if d.phase > 0 {
		dl = time.Now().Add(d.phase)
	}
	if cd, ok := d.ctx.Deadline(); ok && (dl.IsZero() || cd.Before(dl)) {
		dl = cd
	}
	_ = d.conn.SetDeadline(dl)
}

// Release detaches ctx and clears the deadline.
func (d *Deadline) Release() {
	d.stop()
	_ = d.conn.SetDeadline(time.Time{})
}

// ReadByte reads one byte, counted against the budget. It makes Reader an
// io.ByteReader, so that a decoder which reads byte by byte (encoding/xml)
// takes nothing beyond the message it decodes and Buffered stays exact.
func (r *Reader) ReadByte() (byte, error) {
	if err := r.spend(1); err != nil {
		return 0, err
	}
	b, err := r.br.ReadByte()
	if err == nil {
		r.seen++
	}
	return b, err
}
