package tlsrpt

import (
	"bufio"
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/starttls-go/starttls"
)

// fakeIMAP serves implicit-TLS IMAP with the library's server half and
// answers each tagged command with reply(verb), "" meaning silence.
func fakeIMAP(t *testing.T, pki testPKI, reply func(tag, verb string) string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv := &starttls.Server{Protocol: starttls.IMAPS, Config: starttls.ServerConfig{TLSConfig: pki.server},
		Handler: func(ctx context.Context, c *starttls.Conn) {
			defer c.Close()
			stop := context.AfterFunc(ctx, func() { c.Close() })
			defer stop()
			_, _ = c.Write([]byte("* OK [CAPABILITY IMAP4rev1] fake ready\r\n"))
			r := bufio.NewReader(c)
			for i := 0; i < 20; i++ {
				line, err := r.ReadString('\n')
				if err != nil {
					return
				}
				f := strings.Fields(line)
				if len(f) < 2 {
					return
				}
				verb := strings.ToUpper(f[1])
				if verb == "UID" && len(f) > 2 {
					verb += " " + strings.ToUpper(f[2])
				}
				if out := reply(f[0], verb); out != "" {
					_, _ = c.Write([]byte(out))
				}
			}
		}}
	done := make(chan struct{})
	go func() { _ = srv.Serve(ctx, l); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return l.Addr().String()
}

func TestFetchBadServers(t *testing.T) {
	pki := newTestPKI(t)
	ok := func(tag string) string { return tag + " OK done\r\n" }
	cases := []struct {
		name  string
		reply func(tag, verb string) string
		want  string
		isErr error
	}{
		{"login refused", func(tag, verb string) string {
			if verb == "LOGIN" {
				return tag + " NO [AUTHENTICATIONFAILED] bad password\r\n"
			}
			return ok(tag)
		}, "AUTHENTICATIONFAILED", ErrIMAP},
		{"huge literal", func(tag, verb string) string {
			switch verb {
			case "UID SEARCH":
				return "* SEARCH 7\r\n" + ok(tag)
			case "UID FETCH":
				return "* 1 FETCH (UID 7 BODY[] {999999999}\r\n"
			}
			return ok(tag)
		}, "over the", nil},
		{"garbage search", func(tag, verb string) string {
			if verb == "UID SEARCH" {
				return "* SEARCH 1 two\r\n" + ok(tag)
			}
			return ok(tag)
		}, "bad SEARCH reply", nil},
		{"stalled", func(tag, verb string) string {
			if verb == "SELECT" {
				return ""
			}
			return ok(tag)
		}, "deadline exceeded", context.DeadlineExceeded},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			addr := fakeIMAP(t, pki, c.reply)
			col := &Collector{Store: newSQLite(t)}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			start := time.Now()
			_, err := col.Fetch(ctx, Mailbox{URL: "imaps://u@" + addr + "/INBOX", Password: "p", TLSConfig: pki.client})
			if err == nil || !strings.Contains(err.Error(), c.want) || (c.isErr != nil && !errors.Is(err, c.isErr)) {
				t.Fatalf("got %v, want %q", err, c.want)
			}
			if el := time.Since(start); el > 10*time.Second {
				t.Errorf("took %v", el)
			}
		})
	}
}

func TestMailboxURL(t *testing.T) {
	for _, bad := range []string{"pop3://u@h/INBOX", "imaps://h/INBOX", "imaps://u:pw@h/INBOX", "imaps://u@/INBOX"} {
		if _, err := parseMailboxURL(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	m, err := parseMailboxURL("imap://tlsrpt@mail.example.org")
	if err != nil || m.implicit || m.addr != "mail.example.org:143" || m.box != "INBOX" || m.user != "tlsrpt" {
		t.Errorf("%+v %v", m, err)
	}
}
