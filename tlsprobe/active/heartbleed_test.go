package active_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/starttls-go/starttls/internal/tlsfake"
	"github.com/starttls-go/starttls/tlsprobe"
	"github.com/starttls-go/starttls/tlsprobe/active"
)

func fakeDialer(addr string) tlsprobe.Dialer {
	return func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

var rsaSuites = []uint16{0x009C, 0x002F}

// TestActiveProbesFake runs each active probe against the fake with its
// flaw on and off: the same server, only the flaw differs.
func TestActiveProbesFake(t *testing.T) {
	o := tlsprobe.Options{Timeout: 3 * time.Second}
	probes := map[tlsfake.Flaw]func(context.Context, tlsprobe.Dialer) (active.VulnResult, error){
		tlsfake.Heartbleed: func(ctx context.Context, d tlsprobe.Dialer) (active.VulnResult, error) {
			return active.Heartbleed(ctx, d, o, tlsprobe.TLS12)
		},
		tlsfake.CCSInjection: func(ctx context.Context, d tlsprobe.Dialer) (active.VulnResult, error) {
			return active.CCSInjection(ctx, d, o, tlsprobe.TLS12)
		},
		tlsfake.ROBOT: func(ctx context.Context, d tlsprobe.Dialer) (active.VulnResult, error) {
			return active.ROBOT(ctx, d, o, tlsprobe.TLS12, rsaSuites)
		},
	}
	names := map[tlsfake.Flaw]string{tlsfake.Heartbleed: "heartbleed", tlsfake.CCSInjection: "ccs", tlsfake.ROBOT: "robot"}
	for flaw, probe := range probes {
		for _, vulnerable := range []bool{true, false} {
			t.Run(names[flaw]+map[bool]string{true: "/vulnerable", false: "/fixed"}[vulnerable], func(t *testing.T) {
				t.Parallel()
				srv := tlsfake.Start(t, flaw, vulnerable)
				start := time.Now()
				res, err := probe(ctxFor(t), fakeDialer(srv.Addr))
				if err != nil {
					t.Fatal(err)
				}
				if res.Vulnerable != vulnerable {
					t.Errorf("vulnerable = %v, want %v: %s", res.Vulnerable, vulnerable, res.Evidence)
				}
				if res.Evidence == "" {
					t.Error("no evidence")
				}
				// Every fake answers at once: a verdict that waited for the
				// deadline came from silence, not from the server's answer.
				if d := time.Since(start); d > 2*time.Second {
					t.Errorf("took %v", d)
				}
				t.Logf("%s", res.Evidence)
			})
		}
	}
}

// TestHeartbleedLeakEvidence: the evidence of a leak says how much came back.
func TestHeartbleedLeakEvidence(t *testing.T) {
	srv := tlsfake.Start(t, tlsfake.Heartbleed, true)
	res, err := active.Heartbleed(ctxFor(t), fakeDialer(srv.Addr), tlsprobe.Options{Timeout: 3 * time.Second}, tlsprobe.TLS11)
	if err != nil || !res.Vulnerable || !strings.Contains(res.Evidence, "declaring 16384") {
		t.Fatalf("%+v, %v", res, err)
	}
}

// TestActiveProbesDeclined: a server that refuses the hello (here: no
// RSA suite in common, so the fake answers handshake_failure) gives
// ErrDeclined, which the check reports as "n/a", never as a verdict.
func TestActiveProbesDeclined(t *testing.T) {
	srv := tlsfake.Start(t, tlsfake.ROBOT, true)
	_, err := active.ROBOT(ctxFor(t), fakeDialer(srv.Addr), tlsprobe.Options{Timeout: 3 * time.Second}, tlsprobe.TLS12, []uint16{0xC02F})
	if err == nil || !strings.Contains(err.Error(), "declined") {
		t.Fatalf("ROBOT with no common suite: %v, want declined", err)
	}
}

// TestROBOTNotRepeatable: an oracle that disappears between the two rounds
// (the fake answers like ROBOT for five connections, then like a fixed
// server) gives an error, neither verdict.
func TestROBOTNotRepeatable(t *testing.T) {
	srv := tlsfake.Start(t, tlsfake.ROBOTTransient, true)
	res, err := active.ROBOT(ctxFor(t), fakeDialer(srv.Addr), tlsprobe.Options{Timeout: 3 * time.Second}, tlsprobe.TLS12, rsaSuites)
	if err == nil || !strings.Contains(err.Error(), "not repeatable") {
		t.Fatalf("%+v, %v; want an error about answers that do not repeat", res, err)
	}
}
