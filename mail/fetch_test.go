package mail

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/starttls-go/starttls/internal/certs"
)

// policyServer serves handler over HTTPS on 127.0.0.1 with a certificate
// for names from ca.
func policyServer(t *testing.T, ca *certs.CA, handler http.HandlerFunc, names ...string) int {
	t.Helper()
	leaf, err := ca.Issue(certs.LeafOptions{Hosts: names})
	if err != nil {
		t.Fatal(err)
	}
	s := httptest.NewUnstartedServer(handler)
	s.TLS = &tls.Config{Certificates: []tls.Certificate{leaf.TLS}}
	s.StartTLS()
	t.Cleanup(s.Close)
	_, port, _ := net.SplitHostPort(s.Listener.Addr().String())
	n, _ := strconv.Atoi(port)
	return n
}

func TestFetchPolicy(t *testing.T) {
	ca, err := certs.NewCA("fetch test CA")
	if err != nil {
		t.Fatal(err)
	}
	const host = "mta-sts.example.test"
	body := "version: STSv1\nmode: enforce\nmx: mx.example.test\nmax_age: 86400\n"
	serveText := func(ct, b string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != PolicyPath || r.Host != host+":"+r.Host[strings.LastIndex(r.Host, ":")+1:] {
				http.Error(w, "wrong URL "+r.Host+r.URL.Path, http.StatusBadRequest)
				return
			}
			w.Header().Set("Content-Type", ct)
			_, _ = io.WriteString(w, b)
		}
	}
	for _, c := range []struct {
		name    string
		h       http.HandlerFunc
		names   []string
		roots   bool
		timeout time.Duration
		rule    string
	}{
		{"ok", serveText("text/plain; charset=utf-8", body), []string{host}, true, 0, ""},
		{"ok us-ascii", serveText("text/plain; charset=US-ASCII", body), []string{host}, true, 0, ""},
		{"exactly 64 KiB", serveText("text/plain", strings.Repeat("a", MaxPolicySize)), []string{host}, true, 0, ""},
		{"too large", serveText("text/plain", strings.Repeat("a", MaxPolicySize+1)), []string{host}, true, 0, "size"},
		{"html", serveText("text/html", body), []string{host}, true, 0, "content-type"},
		{"no content type", func(w http.ResponseWriter, r *http.Request) {
			w.Header()["Content-Type"] = nil
			_, _ = w.Write([]byte{0x00, 0x01})
		}, []string{host}, true, 0, "content-type"},
		{"latin1", serveText("text/plain; charset=iso-8859-1", body), []string{host}, true, 0, "content-type"},
		{"redirect", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "https://"+host+"/elsewhere", http.StatusFound)
		}, []string{host}, true, 0, "redirect"},
		{"404", http.NotFound, []string{host}, true, 0, "status"},
		{"wrong name", serveText("text/plain", body), []string{"www.example.test"}, true, 0, "certificate"},
		{"untrusted", serveText("text/plain", body), []string{host}, false, 0, "certificate"},
		{"slow", func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-time.After(2 * time.Second):
			case <-r.Context().Done():
			}
		}, []string{host}, true, 300 * time.Millisecond, "timeout"},
	} {
		t.Run(c.name, func(t *testing.T) {
			port := policyServer(t, ca, c.h, c.names...)
			o := FetchOptions{Host: host, Port: port, Addrs: []string{"127.0.0.1"}, Timeout: c.timeout}
			if c.roots {
				o.Roots = ca.Pool()
			}
			got, err := FetchPolicy(context.Background(), o)
			var fe *FetchError
			switch {
			case c.rule == "" && err != nil:
				t.Fatalf("fetch: %v", err)
			case c.rule == "" && c.name == "ok" && string(got) != body:
				t.Errorf("body %q", got)
			case c.rule != "" && (!errors.As(err, &fe) || fe.Rule != c.rule):
				t.Errorf("error %v, want rule %s", err, c.rule)
			}
		})
	}
	// Headers on time, then a body that never ends. net/http sometimes
	// ends such a body with a clean EOF at the deadline, so one try proves
	// little: a cut-off policy must never come back as a whole one.
	t.Run("stalled body", func(t *testing.T) {
		port := policyServer(t, ca, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			_, _ = io.WriteString(w, "version: STSv1\nmode: enforce\nmx: mx.example.test\n")
			w.(http.Flusher).Flush()
			select {
			case <-time.After(5 * time.Second):
			case <-r.Context().Done():
			}
		}, host)
		for i := 0; i < 30; i++ {
			got, err := FetchPolicy(context.Background(), FetchOptions{Host: host, Port: port, Addrs: []string{"127.0.0.1"},
				Roots: ca.Pool(), Timeout: 50 * time.Millisecond})
			var fe *FetchError
			if !errors.As(err, &fe) || fe.Rule != "timeout" {
				t.Fatalf("try %d: body %q, error %v; want rule timeout", i, got, err)
			}
		}
	})
	t.Run("no address", func(t *testing.T) {
		_, err := FetchPolicy(context.Background(), FetchOptions{Host: host})
		var fe *FetchError
		if !errors.As(err, &fe) || fe.Rule != "connect" {
			t.Errorf("error %v", err)
		}
	})
	t.Run("refused", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		_, err = FetchPolicy(context.Background(), FetchOptions{Host: host, Port: port, Addrs: []string{"127.0.0.1"}, Roots: ca.Pool()})
		var fe *FetchError
		if !errors.As(err, &fe) || fe.Rule != "connect" {
			t.Errorf("error %v", err)
		}
	})
}

func TestPolicyURL(t *testing.T) {
	if u := PolicyURL("mta-sts.example.org", 443); u != "https://mta-sts.example.org/.well-known/mta-sts.txt" {
		t.Error(u)
	}
	if u := PolicyURL("mta-sts.example.org", 8443); u != "https://mta-sts.example.org:8443/.well-known/mta-sts.txt" {
		t.Error(u)
	}
}
