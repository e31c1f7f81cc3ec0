package check

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/certs"
)

// ftpAfterTLS is an FTP application inside TLS; lax takes PROT before
// PBSZ and accepts CCC, strict answers them 503 and 534.
func ftpAfterTLS(lax bool) func(ctx context.Context, c *starttls.Conn) {
	return func(ctx context.Context, c *starttls.Conn) {
		defer c.Close()
		pbsz := false
		for i := 0; i < 30 && ctx.Err() == nil; i++ {
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			line, err := c.ReadLine()
			if err != nil {
				return
			}
			verb, _, _ := strings.Cut(strings.ToUpper(line), " ")
			reply := "502 Command not implemented"
			switch verb {
			case "PBSZ":
				pbsz, reply = true, "200 PBSZ=0"
			case "PROT":
				reply = "200 Protection level set"
				if !pbsz && !lax {
					reply = "503 PBSZ first"
				}
			case "CCC":
				reply = "534 CCC denied by policy"
				if lax {
					reply = "200 Clearing control channel"
				}
			case "NOOP":
				reply = "200 OK"
			case "FEAT":
				reply = "211-Features:\r\n PBSZ\r\n PROT\r\n211 End"
			case "AUTH":
				reply = "503 TLS already active"
			case "QUIT":
				_, _ = c.Write([]byte("221 Goodbye\r\n"))
				return
			}
			if _, err := c.Write([]byte(reply + "\r\n")); err != nil {
				return
			}
			if lax && verb == "CCC" {
				return
			}
		}
	}
}

// TestFTPProtection: PROT before PBSZ taken and CCC accepted are found on
// a lax server and not on a strict one (vsftpd, in the interop test,
// takes PROT P before PBSZ too).
func TestFTPProtection(t *testing.T) {
	pki := newPKI(t, certs.LeafOptions{})
	for _, lax := range []bool{true, false} {
		addr := startHalf(t, starttls.FTP, starttls.ServerConfig{TLSConfig: pki.server()}, ftpAfterTLS(lax))
		r := checkAddr(t, starttls.FTP, addr, pki.ca.Pool())
		if r.Status != starttls.StatusSuccess {
			t.Fatalf("lax=%v: status %s: %s", lax, r.Status, r.Error)
		}
		want := map[bool]string{true: "fail", false: "pass"}[lax]
		for _, id := range []string{"ftp-prot-before-pbsz", "ftp-ccc-accepted"} {
			requireFinding(t, r, id, lax)
			if v := r.StartTLS.Probes[id]; v != want {
				t.Errorf("lax=%v: %s probe %q, want %q", lax, id, v, want)
			}
		}
		for _, f := range r.Findings {
			if f.ID == "ftp-ccc-accepted" && (f.Severity != Low || !strings.Contains(f.Evidence, "200 Clearing")) {
				t.Errorf("%+v", f)
			}
		}
		if !lax && r.Grade != "A+" {
			t.Errorf("strict server graded %s: %v", r.Grade, ids(r))
		}
	}
	// Only FTP is asked.
	addr := correctServer(t, starttls.SMTP, starttls.ServerConfig{TLSConfig: pki.server()})
	r := checkAddr(t, starttls.SMTP, addr, pki.ca.Pool())
	if v := r.StartTLS.Probes["ftp-ccc-accepted"]; v != "n/a" {
		t.Errorf("smtp: ftp-ccc-accepted probe %q", v)
	}
}
