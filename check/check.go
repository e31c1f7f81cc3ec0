// Package check audits one server's STARTTLS: the dialogue, TLS versions,
// cipher suites and groups, the certificate, and the STARTTLS-specific
// flaws (command and response injection, authentication before TLS,
// STARTTLS after TLS, state not reset). Each probe has its own deadline;
// independent probes run concurrently.
package check

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/certinfo"
)

// Depths of a check.
const (
	Quick = "quick" // dialogue, certificate, versions, command injection
	Full  = "full"  // everything
	// Session is the main session alone, one connection: dialogue,
	// upgrade, verified handshake, capabilities inside TLS, certificate.
	// A scan at this depth does the work of zgrab2's smtp module.
	Session = "session"
)

// Options configure a check. The zero value checks fully against the
// system roots with 10-second phases.
type Options struct {
	// Roots verify the certificate; nil means the system pool.
	Roots *x509.CertPool
	// ServerName is the name verified and sent as SNI; default the target host.
	ServerName string
	// Timeout bounds each phase of each probe. Default 10 s.
	Timeout time.Duration
	// Depth is Quick or Full (default).
	Depth string
	// Concurrency bounds simultaneous connections to the server. Default 6.
	Concurrency int
	// LocalName is the EHLO name. Default "localhost".
	LocalName string
	// Now is the clock for certificate dates; default time.Now.
	Now func() time.Time
	// LocalAddr is the address every probe connects from; nil lets the
	// system choose.
	LocalAddr net.Addr
	// Dial, when set, opens every probe's TCP connection (see
	// starttls.Config.Dial): the scan's --rate takes a token per connection.
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
	// Groups are the key exchange groups the sessions offer, in order;
	// nil: crypto/tls's defaults (the hybrid X25519MLKEM768 first). No
	// report field depends on the main session's group (the probes
	// enumerate groups with their own ClientHellos); a scan offers the
	// classical ones, as zgrab2 does: a hybrid key share costs both ends
	// about a quarter of a session's CPU.
	Groups []tls.CurveID
	// Domain is the service domain where the protocol needs one (the XMPP
	// stream's "to"); default ServerName.
	Domain string
}

func (o Options) withDefaults(t starttls.Target) Options {
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Depth == "" {
		o.Depth = Full
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 6
	}
	if o.ServerName == "" {
		o.ServerName = t.Host
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// run is one check in progress.
type run struct {
	t    starttls.Target
	o    Options
	info starttls.ProtocolInfo
	r    *Report
	mu   sync.Mutex // guards r.Findings, r.StartTLS.Probes, r.Timings.ProbesMS, login

	// loginAdvertised is why the pre-TLS capabilities invite a plaintext
	// login ("" when they do not); login is what the active probe saw.
	loginAdvertised string
	login           loginOutcome
}

func (c *run) add(f Finding) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.r.Findings = append(c.r.Findings, f)
}

func (c *run) has(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.r.Has(id)
}

func (c *run) verdict(id, v string, d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.r.StartTLS.Probes[id] = v
	c.r.Timings.ProbesMS[id] = ms(d)
}

// Run checks one target. It always returns a report; r.Status says whether
// the server could be reached and upgraded at all.
func Run(ctx context.Context, t starttls.Target, o Options) *Report {
	o = o.withDefaults(t)
	start := time.Now()
	info, err := starttls.Lookup(t.Protocol)
	r := &Report{
		Schema: Schema, Target: t.String(), Protocol: string(t.Protocol), Host: t.Host, Port: t.Port,
		Depth: o.Depth, StartedAt: start.UTC(),
		StartTLS: StartTLSInfo{Implicit: info.Implicit, CapabilitiesBefore: []string{}, CapabilitiesAfter: []string{}, Probes: map[string]string{}},
		TLS:      TLSInfo{Versions: map[string]bool{}, CipherSuites: map[string][]string{}, Groups: []string{}},
		Findings: []Finding{},
		Timings:  Timings{ProbesMS: map[string]float64{}},
	}
	if err != nil {
		r.Status, r.Error, r.Grade = starttls.StatusOf(err), err.Error(), "F"
		return r
	}
	c := &run{t: t, o: o, info: info, r: r}
	conn := c.session(ctx)
	if conn != nil {
		c.capabilityFindings(conn)
		st := conn.ConnectionState()
		c.certificateFindings(st.PeerCertificates, len(st.OCSPResponse) > 0)
		c.sessionFacts(st)
	} else if r.Status == starttls.StatusHandshake && o.Depth != Session {
		c.firstFlight(ctx)
	}
	quit := func() {
		if conn != nil {
			qctx, cancel := context.WithTimeout(ctx, o.Timeout)
			_ = conn.Hangup(qctx) // the answer to QUIT says nothing: no round trip for it
			cancel()
		}
	}
	probe := o.Depth != Session
	if probe && (r.Status == starttls.StatusSuccess || errors.Is(errOf(r), starttls.ErrHandshake)) {
		if o.Depth == Quick {
			// No quick probe uses the session: it ends while they run,
			// one round trip less per check.
			done := make(chan struct{})
			go func() { defer close(done); quit() }()
			c.probes(ctx, nil)
			<-done
			conn = nil
		} else {
			c.probes(ctx, conn)
		}
	} else if o.Depth == Full && (r.Status == starttls.StatusNotOffered || r.Status == starttls.StatusRefused) {
		// Without TLS a login in the clear is all a client can do: whether
		// the server takes one is worth knowing.
		c.plaintextLogin(ctx)
	}
	quit()
	c.plaintextLoginFinding()
	sort.SliceStable(r.Findings, func(i, j int) bool {
		if r.Findings[i].Severity != r.Findings[j].Severity {
			return r.Findings[i].Severity > r.Findings[j].Severity
		}
		return r.Findings[i].ID < r.Findings[j].ID
	})
	r.Grade = Grade(r)
	r.Timings.TotalMS = ms(time.Since(start))
	return r
}

// errOf is a marker for the main session's error class.
func errOf(r *Report) error {
	if r.Status == starttls.StatusHandshake {
		return starttls.ErrHandshake
	}
	return nil
}

// clientConfig is the configuration of every probe's session: it accepts
// any certificate and old versions so that the check can see them, and
// judges the certificate itself.
func (c *run) clientConfig() *starttls.Config {
	return &starttls.Config{
		TLSConfig: &tls.Config{
			ServerName: c.o.ServerName, InsecureSkipVerify: true, MinVersion: tls.VersionTLS10,
			CurvePreferences: c.o.Groups,
		},
		PhaseTimeout: c.o.Timeout,
		LocalName:    c.o.LocalName,
		Domain:       firstNonEmpty(c.o.Domain, c.o.ServerName),
		LocalAddr:    c.o.LocalAddr,
		Dial:         c.o.Dial,
	}
}

// session runs the main dialogue as a TLS-requiring client would.
func (c *run) session(ctx context.Context) *starttls.Conn {
	r := c.r
	conn, err := starttls.Dial(ctx, c.t.Protocol, c.t.Addr(), c.clientConfig())
	if err != nil {
		c.outcome(err)
		return nil
	}
	r.Status = starttls.StatusSuccess
	st := conn.ConnectionState()
	r.StartTLS.Offered = true
	r.StartTLS.Upgraded = conn.TLS != nil
	r.StartTLS.Greeting = conn.Greeting
	r.StartTLS.CapabilitiesBefore = nonNil(conn.CapabilitiesBefore)
	r.StartTLS.CapabilitiesAfter = nonNil(conn.Capabilities)
	r.StartTLS.Transcript = conn.Transcript
	r.TLS.Negotiated = &Negotiated{Version: tls.VersionName(st.Version), CipherSuite: tls.CipherSuiteName(st.CipherSuite), ALPN: st.NegotiatedProtocol}
	r.Timings.ConnectMS = ms(conn.Timings.Connect)
	r.Timings.GreetingMS = ms(conn.Timings.Greeting)
	r.Timings.DialogueMS = ms(conn.Timings.Dialogue)
	r.Timings.HandshakeMS = ms(conn.Timings.Handshake)
	return conn
}

// capabilityFindings judges what the server advertised before TLS.
func (c *run) capabilityFindings(conn *starttls.Conn) {
	if c.info.Implicit {
		return
	}
	before := conn.CapabilitiesBefore
	more := connProbesOf(c.info.Base)
	for _, kw := range []string{"AUTH", "AUTHINFO", "SASL", "mechanisms"} {
		args, ok := before.Args(kw)
		if kw == "AUTH" && more.AuthArgs != nil {
			args = more.AuthArgs(args)
			ok = len(args) > 0
		}
		if ok && (kw != "SASL" || len(args) > 0 && strings.Trim(strings.Join(args, ""), `"`) != "") {
			c.add(newFinding("auth-before-tls", fmt.Sprintf("before TLS the server advertised %s %s", kw, strings.Join(args, " "))))
			break
		}
	}
	if invited := probesOf(c.info.Base).LoginInvited; invited != nil {
		c.loginAdvertised = invited(before.Has, before)
	}
	if more.NotRequired != nil {
		if why := more.NotRequired(before.Has, before); why != "" {
			c.add(newFinding("starttls-not-required", why))
		}
	}
	// IRC's "tls" capability is left out: InspIRCd 3 lists it inside TLS
	// too (and refuses a second STARTTLS), and no rule that forbids the
	// listing could be confirmed.
	for _, kw := range []string{"STARTTLS", "STLS"} {
		if conn.Capabilities.Has(kw) {
			c.add(newFinding("starttls-after-tls", fmt.Sprintf("the capabilities asked inside TLS still list %s", kw)))
			break
		}
	}
}

// certificateFindings judges the served chain (from the main session, or
// from the first flight when no session could be completed).
func (c *run) certificateFindings(chain []*x509.Certificate, ocspStapled bool) {
	now := c.o.Now()
	ci := &c.r.Certificate
	ci.Chain = certinfo.Describe(chain, now)
	ci.VerifiedName = c.o.ServerName
	ci.OCSPStapled = ocspStapled
	ci.Verification = certinfo.Verify(chain, c.o.Roots, c.o.ServerName, now)
	if len(chain) == 0 {
		return
	}
	v := ci.Verification
	leaf := chain[0]
	if !v.Trusted {
		c.add(newFinding("cert-untrusted", fmt.Sprintf("issuer %q; %s", leaf.Issuer.String(), v.Error)))
	}
	if !v.NameMatch {
		c.add(newFinding("cert-name-mismatch", fmt.Sprintf("verified name %q; the certificate names %s", c.o.ServerName, strings.Join(append(append([]string{}, ci.Chain[0].DNSNames...), ci.Chain[0].IPAddresses...), ", "))))
	}
	if v.Expired {
		c.add(newFinding("cert-expired", fmt.Sprintf("valid from %s to %s", leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339))))
	} else if left := leaf.NotAfter.Sub(now); left < 30*24*time.Hour {
		f := newFinding("cert-expires-soon", fmt.Sprintf("expires %s (%d days left)", leaf.NotAfter.UTC().Format(time.DateOnly), int(left.Hours()/24)))
		if left < 7*24*time.Hour {
			f = f.withSeverity(High)
		}
		c.add(f)
	}
	if kt, bits := certinfo.KeyInfo(leaf); (kt == "RSA" && bits < 2048) || (strings.HasPrefix(kt, "ECDSA") && bits < 224) {
		c.add(newFinding("cert-weak-key", fmt.Sprintf("%s %d bits", kt, bits)))
	}
	for i, cert := range chain {
		if i > 0 && certinfo.SignedBy(cert, cert) {
			continue // a self-signed root's own signature does not matter
		}
		switch cert.SignatureAlgorithm {
		case x509.SHA1WithRSA, x509.ECDSAWithSHA1, x509.MD5WithRSA, x509.MD2WithRSA, x509.DSAWithSHA1:
			c.add(newFinding("cert-weak-signature", fmt.Sprintf("certificate %d (%s) is signed with %s", i, cert.Subject, cert.SignatureAlgorithm)))
		}
	}
	if !v.ChainInOrder {
		c.add(newFinding("cert-chain-order", fmt.Sprintf("%d certificates served, not each signed by the next", len(chain))))
	}
	ci.Lints = append(ci.Lints, lintCertificate(chain)...)
	if n := len(ci.Lints); n > 0 {
		names := make([]string, 0, n)
		for _, l := range ci.Lints {
			names = append(names, l.Name+" ("+l.Status+")")
		}
		c.add(newFinding("cert-lint", strings.Join(names, ", ")))
	}
}

// probes runs the connection-hungry probes concurrently.
func (c *run) probes(ctx context.Context, conn *starttls.Conn) {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(3)
	timed := func(name string, f func(context.Context)) {
		g.Go(func() error {
			t := time.Now()
			f(gctx)
			c.mu.Lock()
			c.r.Timings.ProbesMS[name] = ms(time.Since(t))
			c.mu.Unlock()
			return nil
		})
	}
	timed("tls", c.tlsProbes)
	if !c.info.Implicit {
		timed("command-injection", c.commandInjection)
		if c.o.Depth == Full {
			timed("plaintext-login", c.plaintextLogin)
			timed("plaintext-mail-accepted", c.plainProbe("plaintext-mail-accepted"))
			timed("starttls-argument-accepted", c.plainProbe("starttls-argument-accepted"))
			timed("state-not-reset", c.sessionProbe("state-not-reset"))
			timed("ftp-protection", c.sessionProbe("ftp-protection"))
			if conn != nil {
				timed("starttls-after-tls", func(ctx context.Context) { c.upgradeAgain(ctx, conn) })
			}
		}
	}
	_ = g.Wait()
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func firstNonEmpty(a ...string) string {
	for _, s := range a {
		if s != "" {
			return s
		}
	}
	return ""
}
