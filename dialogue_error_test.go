package starttls

import (
	"bufio"
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/starttls-go/starttls/internal/loopback"
)

// lineScript serves each connection with script, for at most 5 s.
func lineScript(t *testing.T, script func(c net.Conn, br *bufio.Reader)) string {
	t.Helper()
	return loopback.Serve(t, 5*time.Second, func(c net.Conn) { script(c, bufio.NewReader(c)) })
}

// A failed upgrade's *ProtocolError carries what the client saw: the
// greeting, the capabilities, the transcript and the byte count.
func TestProtocolErrorCarriesDialogue(t *testing.T) {
	cfg := &Config{PhaseTimeout: 300 * time.Millisecond}
	ctx := context.Background()
	refusing := lineScript(t, func(c net.Conn, br *bufio.Reader) {
		_, _ = c.Write([]byte("220 fake.test ESMTP\r\n"))
		_, _ = br.ReadString('\n')
		_, _ = c.Write([]byte("250-fake.test\r\n250 STARTTLS\r\n"))
		_, _ = br.ReadString('\n')
		_, _ = c.Write([]byte("454 4.7.0 TLS not available\r\n"))
		_, _ = br.ReadString('\n')
	})
	_, err := Dial(ctx, SMTP, refusing, cfg)
	var pe *ProtocolError
	if !errors.As(err, &pe) || !errors.Is(err, ErrRefused) {
		t.Fatalf("err %v", err)
	}
	if pe.Greeting != "fake.test ESMTP" || !pe.CapabilitiesBefore.Has("STARTTLS") || len(pe.Transcript) != 6 || pe.Received == 0 {
		t.Errorf("greeting %q, capabilities %q, transcript %+v, received %d", pe.Greeting, pe.CapabilitiesBefore, pe.Transcript, pe.Received)
	}
	if last := pe.Transcript[len(pe.Transcript)-1]; last.Sent || last.Text != "454 4.7.0 TLS not available" {
		t.Errorf("last exchange %+v", last)
	}

	// Half a line, then silence: bytes came, no line did.
	half := lineScript(t, func(c net.Conn, br *bufio.Reader) {
		_, _ = c.Write([]byte("220 fa"))
		_, _ = br.ReadString('\n')
	})
	_, err = Dial(ctx, SMTP, half, cfg)
	if !errors.As(err, &pe) || !errors.Is(err, ErrTimeout) || pe.Received != 6 || len(pe.Transcript) != 0 || pe.Greeting != "" {
		t.Errorf("half a greeting: %v, received %d, transcript %+v", err, pe.Received, pe.Transcript)
	}

	// Silence: nothing at all.
	silent := lineScript(t, func(c net.Conn, br *bufio.Reader) { _, _ = br.ReadString('\n') })
	_, err = Dial(ctx, SMTP, silent, cfg)
	if !errors.As(err, &pe) || pe.Phase != PhaseGreeting || pe.Received != 0 || pe.Transcript != nil {
		t.Errorf("silent: %v, %+v", err, pe)
	}
}
