package scan

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/check"
	"github.com/starttls-go/starttls/internal/loopback"
	"github.com/starttls-go/starttls/serve"
)

// ticketServer is a minimal SMTP server that upgrades with one tls.Config
// for every connection, so that its tickets are good for the next
// (package serve clones its configuration per connection, and with it the
// ticket keys).
func ticketServer(t *testing.T, tc *tls.Config) string {
	t.Helper()
	return loopback.Serve(t, 10*time.Second, func(c net.Conn) {
		var rw io.ReadWriter = c
		br := bufio.NewReader(rw)
		_, _ = io.WriteString(rw, "220 localhost ESMTP\r\n")
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			switch verb, _, _ := strings.Cut(strings.ToUpper(strings.TrimSpace(line)), " "); verb {
			case "EHLO":
				_, _ = io.WriteString(rw, "250-localhost\r\n250 STARTTLS\r\n")
			case "STARTTLS":
				_, _ = io.WriteString(rw, "220 go ahead\r\n")
				s := tls.Server(c, tc)
				if s.Handshake() != nil {
					return
				}
				rw, br = s, bufio.NewReader(s)
			case "QUIT":
				_, _ = io.WriteString(rw, "221 bye\r\n")
				return
			default:
				_, _ = io.WriteString(rw, "502 no\r\n")
			}
		}
	})
}

// A scan never resumes a TLS session across targets, and it offers the
// classical key exchange groups: each target's
// handshake is a full one, so what one server issued cannot shape what
// another is judged by. The server issues tickets, and a client with a
// session cache does resume against it (the control); the scan's
// handshakes, several of one target in one scan, do not.
func TestScanNeverResumes(t *testing.T) {
	dir := t.TempDir()
	tc, caFile, err := serve.ThrowawayTLS(dir, "localhost", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var full, resumed int
	curves := map[tls.CurveID]int{}
	tc = tc.Clone()
	tc.VerifyConnection = func(cs tls.ConnectionState) error {
		mu.Lock()
		defer mu.Unlock()
		curves[cs.CurveID]++
		if cs.DidResume {
			resumed++
		} else {
			full++
		}
		return nil
	}
	addr := ticketServer(t, tc)
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	target := "smtp://" + addr

	// Control: a client that keeps tickets resumes on its second session.
	cache := tls.NewLRUClientSessionCache(4)
	for range 2 {
		cfg := &starttls.Config{TLSConfig: &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", ClientSessionCache: cache}, PhaseTimeout: 5 * time.Second}
		c, err := starttls.Dial(t.Context(), starttls.SMTP, addr, cfg)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.Quit(t.Context())
	}
	mu.Lock()
	if resumed != 1 {
		t.Fatalf("control: %d resumed of %d handshakes, want the second one resumed", resumed, full+resumed)
	}
	if curves[tls.X25519MLKEM768] != 2 {
		t.Errorf("control: groups %v, want crypto/tls's default X25519MLKEM768", curves)
	}
	full, resumed = 0, 0
	clear(curves)
	mu.Unlock()

	in := strings.Repeat(target+"\n", 4)
	sink := &memSink{}
	_, err = Run(context.Background(), strings.NewReader(in), "", sink,
		Options{Depth: check.Session, Concurrency: 1, Timeout: 5 * time.Second, Roots: roots})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range sink.recs {
		if r.Status != starttls.StatusSuccess {
			t.Errorf("%s: %s %s", r.Target, r.Status, r.Error)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if resumed != 0 || full != 4 {
		t.Errorf("scan: %d full and %d resumed handshakes, want 4 full", full, resumed)
	}
	// The scan offers the classical groups (scanGroups): X25519 here.
	if curves[tls.X25519] != 4 {
		t.Errorf("scan: groups %v, want X25519 for all 4", curves)
	}
}
