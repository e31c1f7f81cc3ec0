package clienttest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/starttls-go/starttls"
)

func results(r *Report) string {
	var b strings.Builder
	for _, res := range r.Results {
		b.WriteString(res.Scenario.Name + ": " + string(res.Verdict) + " — " + res.Evidence + "\n")
	}
	return b.String()
}

// dialNaive connects the way every naive client below does, with one
// deadline for the whole exchange so that a stuck scenario cannot hang.
func dialNaive(ctx context.Context, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: 2 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	return conn, nil
}

// naiveUpgrade is the flaw the injection scenarios catch: it trusts any
// certificate and reads whatever the plaintext buffer still holds before
// what arrives inside TLS.
func naiveUpgrade(conn net.Conn, br *bufio.Reader) (io.Writer, *bufio.Reader, error) {
	tc := tls.Client(conn, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		return nil, nil, err
	}
	left, _ := br.Peek(br.Buffered())
	return tc, bufio.NewReader(io.MultiReader(bytes.NewReader(append([]byte(nil), left...)), tc)), nil
}

// runScenarios runs a client through the scenarios opts names and requires
// the control to pass, so that the failures it reports are the flaws'.
func runScenarios(t *testing.T, limit time.Duration, opts Options) *Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	r, err := Run(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Counts {
		t.Fatalf("control failed:\n%s", results(r))
	}
	return r
}

// wantFailures checks that each scenario named in want failed with
// evidence mentioning its text.
func wantFailures(t *testing.T, r *Report, want map[string]string) {
	t.Helper()
	for _, res := range r.Results {
		if w, bad := want[res.Scenario.Name]; bad && (res.Verdict != Fail || !strings.Contains(res.Evidence, w)) {
			t.Errorf("%s: %s — %s; want a failure mentioning %q", res.Scenario.Name, res.Verdict, res.Evidence, w)
		}
	}
	t.Logf("\n%s", results(r))
}

// Our own client passes every scenario of every protocol clienttest speaks.
func TestLibraryClientPassesEveryScenario(t *testing.T) {
	for _, p := range []starttls.Protocol{starttls.SMTP, starttls.IMAP, starttls.POP3, starttls.FTP, starttls.NNTP, starttls.Sieve,
		starttls.Postgres, starttls.MySQL, starttls.LDAP, starttls.XMPP, starttls.IRC, starttls.HTTP} {
		t.Run(string(p), func(t *testing.T) {
			r := runScenarios(t, 2*time.Minute, Options{Protocol: p, Client: LibraryClient(p), Timeout: 10 * time.Second})
			for _, res := range r.Results {
				if res.Verdict != Pass {
					t.Errorf("%s: %s — %s\ntranscript %+v", res.Scenario.Name, res.Verdict, res.Evidence, res.Transcript)
				}
			}
			t.Logf("\n%s", results(r))
		})
	}
}

// naiveSMTP is the client the scenarios exist to catch: it sends AUTH
// whether or not TLS happened, trusts any certificate, keeps reading from
// its plaintext buffer after the upgrade and never asks EHLO again.
func naiveSMTP(ctx context.Context, addr, _ string) error {
	conn, err := dialNaive(ctx, addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	readReply := func(r *bufio.Reader) (string, error) {
		var all []string
		for i := 0; i < 50; i++ {
			l, err := r.ReadString('\n')
			if err != nil {
				return strings.Join(all, "\n"), err
			}
			all = append(all, strings.TrimSpace(l))
			if len(l) < 4 || l[3] != '-' {
				break
			}
		}
		return strings.Join(all, "\n"), nil
	}
	if _, err := readReply(br); err != nil {
		return err
	}
	fmt.Fprint(conn, "EHLO naive\r\n")
	caps, err := readReply(br)
	if err != nil {
		return err
	}
	var w io.Writer = conn
	r := br
	if strings.Contains(caps, "STARTTLS") {
		fmt.Fprint(conn, "STARTTLS\r\n")
		if l, err := readReply(br); err != nil || !strings.HasPrefix(l, "220") {
			return fmt.Errorf("no go-ahead: %q", l)
		}
		if w, r, err = naiveUpgrade(conn, br); err != nil {
			return err
		}
		fmt.Fprint(w, "EHLO naive\r\n")
		if _, err := readReply(r); err != nil {
			return err
		}
	}
	fmt.Fprint(w, "AUTH PLAIN AHVzZXIAc2VjcmV0\r\n")
	_, err = readReply(r)
	return err
}

// The scenarios catch a naive client: each flaw is reported as a failure
// with the evidence that proves it.
func TestNaiveClientFails(t *testing.T) {
	r := runScenarios(t, 2*time.Minute, Options{Protocol: starttls.SMTP, Client: naiveSMTP, Timeout: 10 * time.Second})
	want := map[string]string{
		"strip-capability":      "in plaintext",
		"strip-mechanisms":      "in plaintext",
		"inject-after-go-ahead": "acted on the injected answer",
		"cert-self-signed":      "accepted the self-signed certificate",
		"cert-unknown-ca":       "accepted",
		"cert-wrong-name":       "accepted",
		"cert-expired":          "accepted",
	}
	for _, res := range r.Results {
		if res.Scenario.Name == "control" && res.Verdict != Pass {
			t.Errorf("control: %s — %s", res.Verdict, res.Evidence)
		}
	}
	wantFailures(t, r, want)
}

// followReferral is an IMAP client that obeys a greeting's REFERRAL and
// logs in to the referred server in plaintext, the flaw referral-* catch.
func followReferral(ctx context.Context, addr, _ string) error {
	d := net.Dialer{Timeout: 2 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	greeting, err := bufio.NewReader(conn).ReadString('\n')
	conn.Close()
	if err != nil {
		return err
	}
	_, rest, ok := strings.Cut(greeting, "[REFERRAL imap://user@")
	if !ok {
		return fmt.Errorf("no referral in %q", greeting)
	}
	target, _, _ := strings.Cut(rest, "/")
	conn, err = d.DialContext(ctx, "tcp", target)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(conn)
	if _, err := br.ReadString('\n'); err != nil {
		return err
	}
	fmt.Fprint(conn, "a1 LOGIN user secret\r\n")
	_, err = br.ReadString('\n')
	return err
}

func TestReferralFollowerFails(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := Run(ctx, Options{Protocol: starttls.IMAP, Client: followReferral, Timeout: 5 * time.Second,
		Scenarios: []string{"referral-ok", "referral-bye"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, res := range r.Results {
		if res.Verdict != Fail || !strings.Contains(res.Evidence, "followed the referral") {
			t.Errorf("%s: %s — %s; want a failure for following the referral", res.Scenario.Name, res.Verdict, res.Evidence)
		}
	}
	t.Logf("\n%s", results(r))
}

// naivePostgres is libpq before CVE-2021-23222 with sslmode=prefer: it
// goes on in plaintext after 'N', trusts any certificate and reads the
// answer to its StartupMessage from the buffer that held the 'S'.
func naivePostgres(ctx context.Context, addr, _ string) error {
	conn, err := dialNaive(ctx, addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.Write([]byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f}); err != nil {
		return err
	}
	br := bufio.NewReader(conn)
	answer, err := br.ReadByte()
	if err != nil {
		return err
	}
	var w io.Writer = conn
	r := br
	if answer == 'S' {
		if w, r, err = naiveUpgrade(conn, br); err != nil {
			return err
		}
	}
	startup, _ := binaryLogin(starttls.Postgres)
	if _, err := w.Write(startup); err != nil {
		return err
	}
	var auth [9]byte
	if _, err := io.ReadFull(r, auth[:]); err != nil {
		return err
	}
	if auth[0] == 'R' && auth[8] == 3 {
		if _, err := w.Write([]byte{'p', 0, 0, 0, 11, 's', 'e', 'c', 'r', 'e', 't', 0}); err != nil {
			return err
		}
		_, err = r.ReadByte()
	}
	return err
}

// The PostgreSQL scenarios catch a naive client: it logs in after 'N',
// acts on bytes injected after 'S' and accepts any certificate.
func TestNaivePostgresFails(t *testing.T) {
	r := runScenarios(t, time.Minute, Options{Protocol: starttls.Postgres, Client: naivePostgres, Timeout: 5 * time.Second})
	want := map[string]string{
		"strip-capability":      "sent \"StartupMessage user=user",
		"inject-after-go-ahead": "acted on the injected answer",
		"cert-self-signed":      "accepted the self-signed certificate",
		"cert-unknown-ca":       "accepted",
		"cert-wrong-name":       "accepted",
		"cert-expired":          "accepted",
	}
	wantFailures(t, r, want)
}

// echoPOP3 reports the server's refusal verbatim, the way a client that
// shows it to its user would put the escapes on the screen.
func echoPOP3(ctx context.Context, addr, _ string) error {
	conn, err := dialNaive(ctx, addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	if _, err := br.ReadString('\n'); err != nil {
		return err
	}
	fmt.Fprint(conn, "STLS\r\n")
	line, err := br.ReadString('\n')
	if err != nil {
		return err
	}
	return fmt.Errorf("server said: %s", line)
}

func TestSpoofEchoFails(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := Run(ctx, Options{Protocol: starttls.POP3, Client: echoPOP3, Timeout: 5 * time.Second,
		Scenarios: []string{"spoof-error-escape"}})
	if err != nil {
		t.Fatal(err)
	}
	if res := r.Results[0]; res.Verdict != Fail || !strings.Contains(res.Evidence, `\x1b[2J`) {
		t.Errorf("%s: %s — %s; want a failure quoting the escape", res.Scenario.Name, res.Verdict, res.Evidence)
	}
}

// naiveIRC sends PASS whether or not TLS happened, trusts any
// certificate and answers a PING it finds still buffered from before TLS.
func naiveIRC(ctx context.Context, addr, _ string) error {
	conn, err := dialNaive(ctx, addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	fmt.Fprint(conn, "CAP LS 302\r\n")
	caps, err := br.ReadString('\n')
	if err != nil {
		return err
	}
	var w io.Writer = conn
	r := br
	if strings.Contains(caps, "tls") {
		fmt.Fprint(conn, "STARTTLS\r\n")
		if l, err := br.ReadString('\n'); err != nil || !strings.Contains(l, " 670 ") {
			return fmt.Errorf("no go-ahead: %q", l)
		}
		if w, r, err = naiveUpgrade(conn, br); err != nil {
			return err
		}
	}
	fmt.Fprint(w, "PASS secret\r\nNICK naive\r\nUSER naive 0 * :naive\r\nCAP END\r\n")
	for i := 0; i < 10; i++ {
		l, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		if token, ok := strings.CutPrefix(strings.TrimSpace(l), "PING "); ok {
			fmt.Fprintf(w, "PONG %s\r\n", token)
		}
		if strings.Contains(l, " 001 ") {
			return nil
		}
	}
	return nil
}

// The IRC scenarios catch a naive client; the injection one by the token
// it echoes.
func TestNaiveIRCFails(t *testing.T) {
	r := runScenarios(t, time.Minute, Options{Protocol: starttls.IRC, Client: naiveIRC, Timeout: 5 * time.Second})
	want := map[string]string{
		"strip-capability":      `sent "PASS ***" in plaintext`,
		"inject-after-go-ahead": "acted on the injected bytes: echoed their token clienttest-injected",
		"cert-expired":          "accepted the expired certificate",
	}
	wantFailures(t, r, want)
}
