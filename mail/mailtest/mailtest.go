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
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"github.com/starttls-go/starttls/internal/certs"
	"github.com/starttls-go/starttls/internal/peer"
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
