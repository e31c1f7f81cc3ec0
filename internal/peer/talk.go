package peer

import (
	"bytes"
	"context"
	"io"
	"os/exec"
	"sync"
	"testing"
	"time"
)

// Buffer collects what a running command prints while the test reads it,
// so that a feeder can wait for an answer before it writes the next line.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Talk runs a client program for at most limit with feed writing its
// stdin; stdin closes when feed returns, which is how interactive clients
// (gnutls-cli, s_client) are told to hang up, so feed usually waits until
// out shows the answer the test wants. Talk returns the combined output
// and the exit error.
func Talk(t testing.TB, limit time.Duration, feed func(ctx context.Context, in io.Writer, out *Buffer), name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var out Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer in.Close()
		feed(ctx, in, &out)
	}()
	err = cmd.Wait()
	return out.String(), err
}
