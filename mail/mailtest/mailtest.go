// Package mailtest builds a world of mail domains on loopback for the
// tests of the mail package and of `starttls mail`: a DNSSEC-signed zone
// mail.test, an unsigned zone plain.test and a zone bogus.test whose
// signatures do not validate, served by NSD behind a
// validating unbound (internal/peer), MX hosts on 127.0.0.x running the
// serve package's SMTP server (and a real Postfix without TLS), and the
// MTA-STS policy hosts on an HTTPS server with certificates from a test CA.
// Each domain is one case with the exact finding ids it must produce.
package mailtest

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/certs"
	"github.com/starttls-go/starttls/internal/peer"
	"github.com/starttls-go/starttls/serve"
)

// Addresses of the hosts.
const (
	GoodMX1   = "127.0.0.2" // serve SMTP, certificate for every MX name
	GoodMX2   = "127.0.0.3" // serve SMTP, another key, same names
	NoTLSMX   = "127.0.0.4" // Postfix without TLS (behind a forwarder)
	BadCertMX = "127.0.0.5" // serve SMTP, trusted certificate for another name
	DownMX    = "127.0.0.6" // nothing listens
	// RequireTLSMX is a minimal SMTP server (the library's server half,
	// then its own EHLO) that advertises REQUIRETLS after TLS: serve
	// does not, and an RFC 8689 case needs a host that does.
	RequireTLSMX = "127.0.0.7"
	PolicyIP     = "127.0.0.10"
)

// Case is one domain and what `starttls mail` must say about it.
type Case struct {
	Domain string
	// Want are the exact finding ids, sorted.
	Want []string
	// Status is the report status wanted ("ok" when empty).
	Status string
	Note   string
}

// Env is the running world.
type Env struct {
	DNS       *peer.DNS
	Resolver  string // unbound, validating
	CA        *certs.CA
	CAFile    string
	Roots     *x509.CertPool
	SMTPPort  int
	HTTPSPort int
	Cases     []Case
	// MXLeaf and MX2Leaf are the certificates GoodMX1 and GoodMX2 serve.
	MXLeaf, MX2Leaf *certs.Leaf
	// TLSA3 is "3 1 1 <hash>" of MXLeaf, TLSA2 "2 0 1 <hash>" of the CA.
	TLSA3, TLSA2 string
	Postfix      *peer.Postfix
}

// policy is what the HTTPS server answers for one mta-sts host.
type policy struct {
	status      int
	contentType string
	location    string
	body        string
}

func okPolicy(mode string, mx ...string) policy {
	var b strings.Builder
	b.WriteString("version: STSv1\nmode: " + mode + "\n")
	for _, m := range mx {
		b.WriteString("mx: " + m + "\n")
	}
	b.WriteString("max_age: 604800\n")
	return policy{status: 200, contentType: "text/plain; charset=utf-8", body: b.String()}
}

// domain collects one test domain's records.
type domain struct {
	zone, label string
	records     []string
}

func (d *domain) fqdn(sub string) string {
	parts := []string{}
	if sub != "" {
		parts = append(parts, sub)
	}
	if d.label != "" {
		parts = append(parts, d.label)
	}
	return strings.Join(append(parts, d.zone), ".")
}

// rel is a name relative to the zone origin.
func (d *domain) rel(sub string) string {
	n := strings.TrimSuffix(strings.TrimSuffix(d.fqdn(sub), d.zone), ".")
	if n == "" {
		return "@"
	}
	return n
}

func (d *domain) add(format string, args ...any) {
	d.records = append(d.records, fmt.Sprintf(format, args...))
}

// Start builds the world and registers its shutdown with t.Cleanup.
func Start(t testing.TB) *Env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	dir := t.TempDir()
	ca, err := certs.NewCA("starttls mail test CA")
	if err != nil {
		t.Fatal(err)
	}
	caFile, err := ca.WriteFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	e := &Env{CA: ca, CAFile: caFile, Roots: ca.Pool()}

	cases := table()

	// MX names the good servers' certificate must cover.
	names := []string{"localhost"}
	for _, c := range cases {
		d := &domain{zone: c.zone, label: c.label}
		for _, s := range []string{"", "mx", "mx1", "mx2"} {
			names = append(names, d.fqdn(s))
		}
	}
	issue := func(hosts ...string) *certs.Leaf {
		l, err := ca.Issue(certs.LeafOptions{Hosts: hosts})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	e.MXLeaf, e.MX2Leaf = issue(names...), issue(names...)
	spki := sha256.Sum256(e.MXLeaf.Cert.RawSubjectPublicKeyInfo)
	caSum := sha256.Sum256(ca.Cert.Raw)
	e.TLSA3 = "3 1 1 " + hex.EncodeToString(spki[:])
	e.TLSA2 = "2 0 1 " + hex.EncodeToString(caSum[:])

	e.Postfix = peer.StartPostfix(t, peer.PostfixOptions{MainCF: []string{"smtpd_tls_security_level = none"}})
	e.startSMTP(t, ctx, issue("wrong-name.example"))

	// Policy host: one HTTPS server for every mta-sts name.
	policies := map[string]policy{}
	zones := map[string]*peer.DNSZone{
		"mail.test":  {Origin: "mail.test", Signed: true},
		"plain.test": {Origin: "plain.test"},
		"bogus.test": {Origin: "bogus.test", Bogus: true},
	}
	var stsNames []string
	for _, c := range cases {
		d := &domain{zone: c.zone, label: c.label}
		z := zones[c.zone]
		if c.b != nil { // nil: the name must not exist
			c.b(e, d, policies)
			z.Records = append(z.Records, d.records...)
			z.Records = append(z.Records, fmt.Sprintf("%s A %s", d.rel("mta-sts"), PolicyIP))
			stsNames = append(stsNames, d.fqdn("mta-sts"))
		}
		e.Cases = append(e.Cases, c.expected())
	}
	e.startHTTPS(t, issue(stsNames...), policies)
	e.DNS = peer.StartDNS(t, *zones["mail.test"], *zones["plain.test"], *zones["bogus.test"])
	e.Resolver = e.DNS.ResolverAddr
	return e
}

// build adds one domain's records and policy; nil means the name must
// not exist.
type build func(e *Env, d *domain, pol map[string]policy)

type tcase struct {
	zone, label string
	b           build
	want        []string
	status      string
	note        string
}

// table is every domain of the world. It is data apart from Start so that
// Expected can list the cases without starting anything.
func table() []tcase {
	// The domains. MX names all resolve to the 127.0.0.x hosts above; the
	// zone records need the SMTP port (TLSA owner names), so they are
	// built after the servers are up.
	good := func(mode string) build {
		return func(e *Env, d *domain, pol map[string]policy) {
			d.add("%s MX 10 %s", d.rel(""), d.rel("mx1"))
			d.add("%s A %s", d.rel("mx1"), GoodMX1)
			d.add("%s TLSA %s", d.tlsaOwner(e, "mx1"), e.TLSA3)
			d.sts(pol, okPolicy(mode, d.fqdn("mx1")))
			d.rpt()
		}
	}
	return []tcase{
		{"mail.test", "good", func(e *Env, d *domain, pol map[string]policy) {
			d.add("%s MX 10 %s", d.rel(""), d.rel("mx1"))
			d.add("%s MX 20 %s", d.rel(""), d.rel("mx2"))
			d.add("%s A %s", d.rel("mx1"), GoodMX1)
			d.add("%s A %s", d.rel("mx2"), GoodMX2)
			d.add("%s TLSA %s", d.tlsaOwner(e, "mx1"), e.TLSA3)
			d.add("%s TLSA %s", d.tlsaOwner(e, "mx2"), e.TLSA2)
			d.sts(pol, okPolicy("enforce", d.fqdn("mx1"), "*."+d.fqdn("")))
			d.rpt()
		}, nil, "", "two MX (DANE-EE and DANE-TA), MTA-STS enforce with a wildcard, TLS-RPT"},
		{"mail.test", "badtlsa", func(e *Env, d *domain, pol map[string]policy) {
			good("enforce")(e, d, pol)
			d.records[2] = fmt.Sprintf("%s TLSA 3 1 1 %s", d.tlsaOwner(e, "mx1"), strings.Repeat("ab", 32))
		}, []string{"dane-mismatch"}, "", "TLSA 3 1 1 of another key"},
		{"mail.test", "nosts", func(e *Env, d *domain, pol map[string]policy) {
			d.add("%s MX 10 %s", d.rel(""), d.rel("mx1"))
			d.add("%s A %s", d.rel("mx1"), GoodMX1)
			d.add("%s TLSA %s", d.tlsaOwner(e, "mx1"), e.TLSA3)
			d.rpt()
		}, []string{"mta-sts-missing"}, "", "no _mta-sts record (DANE protects it: low)"},
		{"mail.test", "badpolicy", func(e *Env, d *domain, pol map[string]policy) {
			good("enforce")(e, d, pol)
			pol[d.fqdn("mta-sts")] = policy{status: 200, contentType: "text/plain",
				body: "version: STSv1\nmode: enforcing\nmx: " + d.fqdn("mx1") + "\nmax_age: 604800\n"}
		}, []string{"mta-sts-invalid-policy"}, "", "mode: enforcing"},
		{"mail.test", "mismatch", func(e *Env, d *domain, pol map[string]policy) {
			good("enforce")(e, d, pol)
			d.add("%s MX 20 %s", d.rel(""), d.rel("mx2"))
			d.add("%s A %s", d.rel("mx2"), GoodMX2)
			d.add("%s TLSA %s", d.tlsaOwner(e, "mx2"), e.TLSA2)
		}, []string{"mta-sts-mx-mismatch"}, "", "the policy lists mx1 only"},
		{"mail.test", "testing", good("testing"), []string{"mta-sts-testing"}, "", "mode: testing"},
		{"mail.test", "nostarttls", func(e *Env, d *domain, pol map[string]policy) {
			d.add("%s MX 10 %s", d.rel(""), d.rel("mx"))
			d.add("%s A %s", d.rel("mx"), NoTLSMX)
			d.sts(pol, okPolicy("testing", d.fqdn("mx")))
			d.rpt()
		}, []string{"mta-sts-testing", "stripping-possible"}, "", "Postfix without TLS, policy in testing mode only"},
		{"mail.test", "enforcednotls", func(e *Env, d *domain, pol map[string]policy) {
			d.add("%s MX 10 %s", d.rel(""), d.rel("mx"))
			d.add("%s A %s", d.rel("mx"), NoTLSMX)
			d.sts(pol, okPolicy("enforce", d.fqdn("mx")))
			d.rpt()
		}, []string{"mx-no-starttls"}, "", "Postfix without TLS under MTA-STS enforce: senders defer"},
		{"mail.test", "nullmx", func(e *Env, d *domain, pol map[string]policy) {
			d.add("%s MX 0 .", d.rel(""))
		}, []string{"null-mx"}, "no-mail", "MX 0 ."},
		{"mail.test", "nomx", func(e *Env, d *domain, pol map[string]policy) {
			d.add("%s A %s", d.rel(""), GoodMX1)
			d.add("%s TLSA %s", d.tlsaOwner(e, ""), e.TLSA3)
			d.sts(pol, okPolicy("enforce", d.fqdn("")))
			d.rpt()
		}, []string{"no-mx"}, "", "no MX: the domain's A record"},
		{"plain.test", "", func(e *Env, d *domain, pol map[string]policy) {
			good("enforce")(e, d, pol)
		}, []string{"dane-no-dnssec"}, "", "unsigned zone with TLSA"},
		{"mail.test", "notlsrpt", func(e *Env, d *domain, pol map[string]policy) {
			good("enforce")(e, d, pol)
			d.records = d.records[:len(d.records)-1]
		}, []string{"tlsrpt-missing"}, "", "no _smtp._tls record"},
		{"mail.test", "badrpt", func(e *Env, d *domain, pol map[string]policy) {
			good("enforce")(e, d, pol)
			d.records[len(d.records)-1] = fmt.Sprintf(`%s TXT "v=TLSRPTv1; rua=ftp://reports.example"`, d.rel("_smtp._tls"))
		}, []string{"tlsrpt-invalid"}, "", "rua with an ftp: URI"},
		{"mail.test", "badcert", func(e *Env, d *domain, pol map[string]policy) {
			d.add("%s MX 10 %s", d.rel(""), d.rel("mx"))
			d.add("%s A %s", d.rel("mx"), BadCertMX)
			d.sts(pol, okPolicy("enforce", d.fqdn("mx")))
			d.rpt()
		}, []string{"mta-sts-mx-cert-invalid"}, "", "MX certificate for another name under enforce"},
		{"mail.test", "pkix", func(e *Env, d *domain, pol map[string]policy) {
			good("enforce")(e, d, pol)
			d.add("%s TLSA 1 %s", d.tlsaOwner(e, "mx1"), strings.TrimPrefix(e.TLSA3, "3 "))
		}, []string{"dane-usage-not-recommended"}, "", "TLSA 1 1 1 next to 3 1 1"},
		{"mail.test", "redirect", func(e *Env, d *domain, pol map[string]policy) {
			good("enforce")(e, d, pol)
			pol[d.fqdn("mta-sts")] = policy{status: 301, location: "https://" + d.fqdn("www") + "/"}
		}, []string{"mta-sts-fetch-failed"}, "", "the policy URL redirects"},
		{"mail.test", "twosts", func(e *Env, d *domain, pol map[string]policy) {
			good("enforce")(e, d, pol)
			d.add(`%s TXT "v=STSv1; id=2"`, d.rel("_mta-sts"))
		}, []string{"mta-sts-invalid-record"}, "", "two v=STSv1 records"},
		{"mail.test", "cname", func(e *Env, d *domain, pol map[string]policy) {
			d.add("%s MX 10 %s", d.rel(""), d.rel("mx"))
			d.add("%s CNAME %s", d.rel("mx"), d.rel("real"))
			d.add("%s A %s", d.rel("real"), GoodMX1)
			d.add("%s TLSA %s", d.tlsaOwner(e, "real"), e.TLSA3)
			// The _mta-sts record is an alias too (RFC 8461 §3.1: follow CNAMEs).
			d.add("%s CNAME %s", d.rel("_mta-sts"), d.rel("sts-record"))
			d.add(`%s TXT "v=STSv1; id=cname1"`, d.rel("sts-record"))
			pol[d.fqdn("mta-sts")] = okPolicy("enforce", d.fqdn("mx"))
			d.rpt()
		}, nil, "", "MX name and _mta-sts are CNAMEs; TLSA at the expanded name (RFC 7672 §2.2.2)"},
		{"mail.test", "down", func(e *Env, d *domain, pol map[string]policy) {
			good("enforce")(e, d, pol)
			d.records[1] = fmt.Sprintf("%s A %s", d.rel("mx1"), DownMX)
		}, []string{"mx-unreachable"}, "unreachable", "nothing listens on the MX"},
		{"mail.test", "noaddr", func(e *Env, d *domain, pol map[string]policy) {
			d.add("%s MX 10 %s", d.rel(""), d.rel("mx"))
			d.sts(pol, okPolicy("enforce", d.fqdn("mx")))
			d.rpt()
		}, []string{"mx-no-address"}, "unreachable", "the MX name has no address"},
		{"mail.test", "mixednull", func(e *Env, d *domain, pol map[string]policy) {
			good("enforce")(e, d, pol)
			d.add("%s MX 0 .", d.rel(""))
		}, []string{"null-mx-invalid"}, "", "MX 0 . next to a real MX"},
		{"mail.test", "modenone", good("none"), []string{"mta-sts-mode-none"}, "", "mode: none"},
		{"mail.test", "badparams", func(e *Env, d *domain, pol map[string]policy) {
			good("enforce")(e, d, pol)
			d.add("%s TLSA 3 1 1 abcd", d.tlsaOwner(e, "mx1"))
		}, []string{"dane-tlsa-unusable"}, "", "a SHA-256 TLSA with 2 bytes next to a good one"},
		{"mail.test", "tlsabogus", func(e *Env, d *domain, pol map[string]policy) {
			good("enforce")(e, d, pol)
			// The TLSA name is an alias into bogus.test, whose answers fail validation.
			d.records[2] = fmt.Sprintf("%s CNAME _%d._tcp.mx1.bogus.test.", d.tlsaOwner(e, "mx1"), e.SMTPPort)
		}, []string{"dns-error"}, "", "the TLSA lookup gets SERVFAIL (RFC 7672 §2.1: DANE senders defer)"},
		{"mail.test", "requiretls", func(e *Env, d *domain, pol map[string]policy) {
			good("enforce")(e, d, pol)
			d.records[1] = fmt.Sprintf("%s A %s", d.rel("mx1"), RequireTLSMX)
		}, nil, "", "the MX advertises REQUIRETLS after TLS (RFC 8689)"},
		{"mail.test", "daneta", func(e *Env, d *domain, pol map[string]policy) {
			d.add("%s MX 10 %s", d.rel(""), d.rel("mx"))
			d.add("%s A %s", d.rel("mx"), GoodMX2)
			d.add("%s TLSA %s", d.tlsaOwner(e, "mx"), e.TLSA2)
			d.sts(pol, okPolicy("enforce", d.fqdn("mx")))
			d.rpt()
		}, nil, "", "the only MX has only a DANE-TA record (2 0 1 of the CA)"},
		{"mail.test", "nonexistent", nil, []string{"domain-not-found"}, "dns-error", "NXDOMAIN"},
		{"bogus.test", "", good("enforce"), []string{"dns-error"}, "dns-error", "DNSSEC validation fails (SERVFAIL)"},
	}
}

// Expected lists the cases Start would build (domains, exact finding ids,
// status) without starting the world, for tests that reason about which
// finding ids have cases.
func Expected() []Case {
	var out []Case
	for _, c := range table() {
		out = append(out, c.expected())
	}
	return out
}

func (c tcase) expected() Case {
	d := &domain{zone: c.zone, label: c.label}
	want := append([]string{}, c.want...)
	sort.Strings(want)
	status := c.status
	if status == "" {
		status = "ok"
	}
	return Case{Domain: d.fqdn(""), Want: want, Status: status, Note: c.note}
}

// tlsaOwner is _PORT._tcp.HOST relative to the zone.
func (d *domain) tlsaOwner(e *Env, sub string) string {
	r := d.rel(sub)
	if r == "@" {
		return fmt.Sprintf("_%d._tcp", e.SMTPPort)
	}
	return fmt.Sprintf("_%d._tcp.%s", e.SMTPPort, r)
}

func (d *domain) sts(pol map[string]policy, p policy) {
	d.add(`%s TXT "v=STSv1; id=20240101T000000"`, d.rel("_mta-sts"))
	pol[d.fqdn("mta-sts")] = p
}

func (d *domain) rpt() {
	d.add(`%s TXT "v=TLSRPTv1; rua=mailto:tlsrpt@%s"`, d.rel("_smtp._tls"), d.fqdn(""))
}

// startSMTP starts the MX hosts on one port common to all their
// addresses (the mail check has a single --smtp-port), retrying with
// another port when one address has it taken.
func (e *Env) startSMTP(t testing.TB, ctx context.Context, wrong *certs.Leaf) {
	t.Helper()
	hosts := []struct {
		ip   string
		leaf *certs.Leaf
	}{{GoodMX1, e.MXLeaf}, {GoodMX2, e.MX2Leaf}, {BadCertMX, wrong}}
	var lastErr error
	for attempt := 0; attempt < 10; attempt++ {
		port := peer.FreePort(t)
		var started []*serve.Server
		var fwd, rtls net.Listener
		err := func() error {
			for _, h := range hosts {
				s, err := serve.Start(ctx, serve.Options{
					Protocol: starttls.SMTP, Listen: net.JoinHostPort(h.ip, strconv.Itoa(port)),
					TLSConfig: &tls.Config{Certificates: []tls.Certificate{h.leaf.TLS}},
					Policy:    starttls.Optional, Hostname: "mx.mail.test", IdleTimeout: 30 * time.Second,
				})
				if err != nil {
					return err
				}
				started = append(started, s)
			}
			l, err := net.Listen("tcp", net.JoinHostPort(NoTLSMX, strconv.Itoa(port)))
			if err != nil {
				return err
			}
			fwd = l
			if rtls, err = net.Listen("tcp", net.JoinHostPort(RequireTLSMX, strconv.Itoa(port))); err != nil {
				fwd.Close()
				return err
			}
			return nil
		}()
		if err != nil {
			lastErr = err
			for _, s := range started {
				_ = s.Close()
			}
			continue
		}
		e.SMTPPort = port
		t.Cleanup(func() {
			for _, s := range started {
				_ = s.Close()
			}
		})
		forward(t, fwd, e.Postfix.SMTPAddr)
		serveRequireTLS(t, ctx, rtls, e.MXLeaf)
		return
	}
	t.Fatalf("no common SMTP port on the MX addresses: %v", lastErr)
}

// serveRequireTLS answers SMTP on l: the library's server half does the
// dialogue up to TLS (so the check's pre-TLS probes meet a real
// implementation), then a small loop whose EHLO advertises REQUIRETLS.
func serveRequireTLS(t testing.TB, ctx context.Context, l net.Listener, leaf *certs.Leaf) {
	ctx, cancel := context.WithCancel(ctx)
	cfg := &starttls.ServerConfig{TLSConfig: &tls.Config{Certificates: []tls.Certificate{leaf.TLS}},
		Policy: starttls.Required, Hostname: "mx.requiretls.mail.test", PhaseTimeout: 10 * time.Second}
	var wg sync.WaitGroup
	var mu sync.Mutex
	open := map[net.Conn]bool{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			raw, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			open[raw] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() {
					raw.Close()
					mu.Lock()
					delete(open, raw)
					mu.Unlock()
				}()
				// Bounds the whole session, also a client that never speaks.
				_ = raw.SetDeadline(time.Now().Add(30 * time.Second))
				c, err := starttls.Accept(ctx, raw, starttls.SMTP, cfg)
				if err != nil {
					return
				}
				defer c.Close()
				for i := 0; i < 100; i++ {
					line, err := c.ReadLine()
					if err != nil {
						return
					}
					verb, _, _ := strings.Cut(line, " ")
					reply := "502 5.5.2 not implemented here"
					switch strings.ToUpper(verb) {
					case "EHLO":
						reply = "250-" + cfg.Hostname + "\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250 REQUIRETLS"
					case "HELO", "NOOP", "RSET":
						reply = "250 2.0.0 ok"
					case "QUIT":
						_, _ = io.WriteString(c, "221 2.0.0 bye\r\n")
						return
					}
					if _, err := io.WriteString(c, reply+"\r\n"); err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		cancel()
		l.Close()
		// A session waiting for its next command would hold wg until its
		// deadline.
		mu.Lock()
		for c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
}

// forward relays each connection on l to target until cleanup.
func forward(t testing.TB, l net.Listener, target string) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	track := func(c net.Conn, on bool) {
		mu.Lock()
		defer mu.Unlock()
		if on {
			conns[c] = true
		} else {
			delete(conns, c)
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			out, err := net.DialTimeout("tcp", target, 5*time.Second)
			if err != nil {
				in.Close()
				continue
			}
			track(in, true)
			track(out, true)
			wg.Add(2)
			pipe := func(dst, src net.Conn) {
				defer wg.Done()
				_, _ = io.Copy(dst, src)
				dst.Close()
				src.Close()
				track(dst, false)
				track(src, false)
			}
			go pipe(out, in)
			go pipe(in, out)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
}

// startHTTPS serves the policies on PolicyIP.
func (e *Env) startHTTPS(t testing.TB, leaf *certs.Leaf, policies map[string]policy) {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(PolicyIP, "0"))
	if err != nil {
		t.Fatal(err)
	}
	e.HTTPSPort = l.Addr().(*net.TCPAddr).Port
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/mta-sts.txt", func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.Host)
		if err != nil {
			host = r.Host
		}
		p, ok := policies[strings.ToLower(host)]
		if !ok {
			http.NotFound(w, r)
			return
		}
		if p.location != "" {
			w.Header().Set("Location", p.location)
		}
		if p.contentType != "" {
			w.Header().Set("Content-Type", p.contentType)
		}
		w.WriteHeader(p.status)
		_, _ = io.WriteString(w, p.body)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{leaf.TLS}}}
	done := make(chan error, 1)
	go func() { done <- srv.ServeTLS(l, "", "") }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Logf("policy server: %v", err)
		}
	})
}
