package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/certinfo"
)

// clientFlags are the TLS and dialogue flags shared by connect and check.
type clientFlags struct {
	proto      string
	ca         string
	insecure   bool
	serverName string
	minTLS     string
	timeout    time.Duration
	localName  string
	xmppHost   string
}

func (f *clientFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.proto, "proto", "", "protocol when the target has no scheme ("+protocolList()+")")
	fl.StringVar(&f.ca, "ca", "", "PEM file of extra trusted CA certificates")
	fl.BoolVar(&f.insecure, "insecure", false, "do not abort on certificate problems (they are still reported)")
	fl.StringVar(&f.serverName, "servername", "", "name to send as SNI and to verify (default: --xmpp-host, else the target host)")
	fl.StringVar(&f.minTLS, "min-tls", "1.2", "lowest TLS version to accept: 1.0, 1.1, 1.2 or 1.3")
	fl.DurationVar(&f.timeout, "timeout", 15*time.Second, "deadline for each phase (connect, greeting, each exchange, handshake)")
	fl.StringVar(&f.localName, "local-name", "", "name the client gives itself (EHLO/LHLO, and the XMPP s2s stream's 'from'); default localhost")
	fl.StringVar(&f.xmppHost, "xmpp-host", "", "XMPP domain for the stream's 'to' (xmpp, xmpp-server) when it is not the host connected to; also the default --servername")
}

// isXMPP reports whether p speaks XMPP streams, STARTTLS or implicit.
func isXMPP(p starttls.Protocol) bool {
	info, err := starttls.Lookup(p)
	return err == nil && (info.Base == starttls.XMPP || info.Base == starttls.XMPPServer)
}

// checkXMPPHost refuses --xmpp-host for a protocol without streams, where
// it would silently do nothing.
func (f *clientFlags) checkXMPPHost(t starttls.Target) error {
	if f.xmppHost != "" && !isXMPP(t.Protocol) {
		return fmt.Errorf("--xmpp-host is for xmpp and xmpp-server targets, not %s", t.Protocol)
	}
	return nil
}

// verifyName is the name sent as SNI and verified: --servername, else the
// XMPP domain (RFC 6120 verifies the certificate against the domain the
// stream is for, not the host that serves it), else the host.
func (f *clientFlags) verifyName(t starttls.Target) string {
	switch {
	case f.serverName != "":
		return f.serverName
	case f.xmppHost != "":
		return f.xmppHost
	}
	return t.Host
}

func protocolList() string {
	var s []string
	for _, p := range starttls.Protocols() {
		s = append(s, string(p))
	}
	return strings.Join(s, ", ")
}

// roots returns the system pool plus --ca, or an error naming the file.
func (f *clientFlags) roots() (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if f.ca == "" {
		return pool, nil
	}
	pem, err := os.ReadFile(f.ca)
	if err != nil {
		return nil, fmt.Errorf("--ca: %w", err)
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--ca %s: no PEM certificate found", f.ca)
	}
	return pool, nil
}

func parseMinTLS(s string) (uint16, error) {
	switch s {
	case "1.0":
		return tls.VersionTLS10, nil
	case "1.1":
		return tls.VersionTLS11, nil
	case "1.2", "":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("--min-tls %q: want 1.0, 1.1, 1.2 or 1.3", s)
}

// config builds the library configuration; the verification name is
// returned for the report.
func (f *clientFlags) config(t starttls.Target) (*starttls.Config, *x509.CertPool, string, error) {
	roots, err := f.roots()
	if err != nil {
		return nil, nil, "", err
	}
	minV, err := parseMinTLS(f.minTLS)
	if err != nil {
		return nil, nil, "", err
	}
	if err := f.checkXMPPHost(t); err != nil {
		return nil, nil, "", err
	}
	name := f.verifyName(t)
	domain := name
	if f.xmppHost != "" {
		domain = f.xmppHost
	}
	tc := &tls.Config{RootCAs: roots, ServerName: name, MinVersion: minV, InsecureSkipVerify: f.insecure}
	return &starttls.Config{TLSConfig: tc, PhaseTimeout: f.timeout, LocalName: f.localName, Domain: domain}, roots, name, nil
}

func newConnectCmd() *cobra.Command {
	var f clientFlags
	var asJSON, quiet, noCRLF, raw bool
	cmd := &cobra.Command{
		Use:   "connect [flags] URL",
		Short: "Upgrade a connection, show the dialogue, TLS session and chain, then talk to the server",
		Long: `connect does what "openssl s_client -starttls" does, more legibly: it speaks the
protocol's plaintext dialogue, upgrades to TLS, prints the dialogue, the TLS version,
cipher suite, ALPN, the certificate chain and the verification result, then relays
stdin and stdout over TLS. At the end of stdin it says goodbye (QUIT/LOGOUT) and exits 0.`,
		Example: `  starttls connect smtp://mail.example.org
  starttls connect --ca ca.pem imap://127.0.0.1:1143
  starttls connect --json submission://smtp.example.org:587 </dev/null
  starttls connect mail.example.org:110 --proto pop3
  # the XMPP domain example.org is served by xmpp.example.net (SRV):
  starttls connect --xmpp-host example.org xmpp://xmpp.example.net
  starttls connect --xmpp-host example.org --local-name example.com xmpp-server://xmpp.example.net`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := starttls.ParseTarget(args[0], starttls.Protocol(f.proto))
			if err != nil {
				return exitWith(exitUsage, err)
			}
			cfg, roots, name, err := f.config(t)
			if err != nil {
				return exitWith(exitUsage, err)
			}
			ctx, stop := commandContext(cmd)
			defer stop()
			out := cmd.OutOrStdout()
			c, err := starttls.Dial(ctx, t.Protocol, t.Addr(), cfg)
			if err != nil {
				if asJSON {
					_ = writeJSON(out, connectReport(t, nil, err, roots, name))
				}
				return exitWith(exitCodeFor(err), fmt.Errorf("%s: %s: %w", t, starttls.StatusOf(err), err))
			}
			rep := connectReport(t, c, nil, roots, name)
			if asJSON {
				qctx, cancel := context.WithTimeout(ctx, f.timeout)
				defer cancel()
				_ = c.Quit(qctx)
				return writeJSON(out, rep)
			}
			if !quiet {
				printConnect(out, rep, c)
			}
			return relay(ctx, c, cmd.InOrStdin(), out, !noCRLF, raw, f.timeout)
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON summary and exit")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print nothing but the server's data")
	cmd.Flags().BoolVar(&raw, "raw", false, "relay the server's bytes to a terminal unescaped (they are always raw to a pipe or file)")
	cmd.Flags().BoolVar(&noCRLF, "no-crlf", false, "send stdin's line endings as they are (default: LF becomes CRLF)")
	return cmd
}

func init() { rootCmd.AddCommand(newConnectCmd()) }

// exitCodeFor maps a dial error to the exit code contract.
func exitCodeFor(err error) int {
	var pe *starttls.ProtocolError
	if errors.As(err, &pe) && pe.Phase == starttls.PhaseConnect {
		return exitConnect
	}
	return exitFindings
}

// ConnectReport is the --json document of connect.
type ConnectReport struct {
	Schema             string                 `json:"schema"`
	Target             string                 `json:"target"`
	Protocol           string                 `json:"protocol"`
	Status             starttls.Status        `json:"status"`
	Error              string                 `json:"error,omitempty"`
	Greeting           string                 `json:"greeting,omitempty"`
	CapabilitiesBefore []string               `json:"capabilities_before"`
	CapabilitiesAfter  []string               `json:"capabilities_after"`
	TLS                *tlsSummary            `json:"tls,omitempty"`
	Certificates       []certinfo.Cert        `json:"certificates,omitempty"`
	Verification       *certinfo.Verification `json:"verification,omitempty"`
	Transcript         []starttls.Exchange    `json:"transcript,omitempty"`
	Timings            *starttls.Timings      `json:"timings,omitempty"`
}

type tlsSummary struct {
	Version     string `json:"version"`
	CipherSuite string `json:"cipher_suite"`
	ALPN        string `json:"alpn,omitempty"`
	ServerName  string `json:"server_name"`
	Resumed     bool   `json:"resumed"`
	OCSPStapled bool   `json:"ocsp_stapled"`
}

func connectReport(t starttls.Target, c *starttls.Conn, err error, roots *x509.CertPool, name string) *ConnectReport {
	r := &ConnectReport{Schema: "starttls.connect/v1", Target: t.String(), Protocol: string(t.Protocol), Status: starttls.StatusOf(err),
		CapabilitiesBefore: []string{}, CapabilitiesAfter: []string{}}
	if err != nil {
		r.Error = err.Error()
		return r
	}
	r.Greeting = c.Greeting
	r.CapabilitiesBefore = nonNil(c.CapabilitiesBefore)
	r.CapabilitiesAfter = nonNil(c.Capabilities)
	r.Transcript = c.Transcript
	r.Timings = &c.Timings
	if c.TLS == nil {
		return r
	}
	st := c.ConnectionState()
	r.TLS = &tlsSummary{Version: tls.VersionName(st.Version), CipherSuite: tls.CipherSuiteName(st.CipherSuite),
		ALPN: st.NegotiatedProtocol, ServerName: name, Resumed: st.DidResume, OCSPStapled: len(st.OCSPResponse) > 0}
	now := time.Now()
	r.Certificates = certinfo.Describe(st.PeerCertificates, now)
	v := certinfo.Verify(st.PeerCertificates, roots, name, now)
	r.Verification = &v
	return r
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// writeJSON prints v indented. encoding/json escapes C0 controls but
// passes DEL, C1 controls and bidi overrides through; someone reading the
// document in a terminal would get those as the peer sent them, so they are
// escaped too (only string contents can hold them, and \u escapes leave the
// document's meaning unchanged).
func writeJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(jsonTermSafe(b), '\n'))
	return err
}

func jsonTermSafe(b []byte) []byte {
	var out []byte
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == 0x7f || unsafeRune(r) {
			if out == nil {
				out = append(make([]byte, 0, len(b)+16), b[:i]...)
			}
			out = fmt.Appendf(out, `\u%04x`, r)
		} else if out != nil {
			out = append(out, b[i:i+n]...)
		}
		i += n
	}
	if out == nil {
		return b
	}
	return out
}

func printConnect(w io.Writer, r *ConnectReport, c *starttls.Conn) {
	p := newPrinter(w)
	p.section("Dialogue")
	p.transcript("  ", r.Transcript)
	if c.Fallback != nil {
		p.line("  %s", p.red("stayed in plaintext: "+c.Fallback.Error()))
		return
	}
	p.section("TLS")
	p.line("  version       %s", r.TLS.Version)
	p.line("  cipher suite  %s", r.TLS.CipherSuite)
	alpn := r.TLS.ALPN
	if alpn == "" {
		alpn = "(none)"
	}
	p.line("  ALPN          %s", alpn)
	p.line("  server name   %s", r.TLS.ServerName)
	p.line("  OCSP stapled  %v", r.TLS.OCSPStapled)
	p.section("Certificate chain")
	for i, ce := range r.Certificates {
		p.line("  %d subject  %s", i, ce.Subject)
		p.line("    issuer   %s", ce.Issuer)
		if sans := append(append([]string{}, ce.DNSNames...), ce.IPAddresses...); len(sans) > 0 {
			p.line("    names    %s", strings.Join(sans, ", "))
		}
		p.line("    valid    %s to %s (%d days left)", ce.NotBefore.Format(time.DateOnly), ce.NotAfter.Format(time.DateOnly), ce.DaysLeft)
		p.line("    key      %s %d bits, signed with %s", ce.KeyType, ce.KeyBits, ce.SignatureAlgorithm)
	}
	p.section("Verification")
	if r.Verification.OK {
		p.line("  %s trusted, valid for %s, not expired", p.green("OK:"), r.TLS.ServerName)
	} else {
		p.line("  %s %s", p.red("FAILED:"), r.Verification.Error)
	}
	p.section("Session (stdin is sent to the server; end it with Ctrl-D)")
}

// quitGrace is how long replies to the last typed commands may take to
// arrive after stdin ends.
const quitGrace = 500 * time.Millisecond

// relay copies in to the server and the server to out until either ends;
// at the end of in it says goodbye politely.
// raw relays the server's bytes untouched even to a terminal.
func relay(ctx context.Context, c *starttls.Conn, in io.Reader, out io.Writer, crlf, raw bool, timeout time.Duration) error {
	// Like openssl s_client, the session is a byte pipe when stdout is a
	// file or a pipe: scripts need the bytes exact. On a terminal the
	// server's data is escaped as the report is: the server is the thing
	// being debugged, not a trusted party (with --insecure it is anyone),
	// and its escape sequences could clear or rewrite the screen, retitle
	// the window, or make some terminals type an answer back into stdin,
	// which this relay would send to the server. --raw is the way out.
	sink := out
	var tw *termWriter
	if !raw && isTerminal(out) {
		tw = &termWriter{w: out}
		sink = tw
	}
	flush := func() {
		if tw != nil {
			_ = tw.Flush()
		}
	}
	serverDone := make(chan error, 1)
	go func() {
		_, err := io.Copy(sink, c)
		serverDone <- err
	}()
	inDone := make(chan error, 1)
	go func() {
		inDone <- copyLines(c, in, crlf)
	}()
	select {
	case <-serverDone:
		// The server hung up (perhaps after a QUIT the user typed).
		c.Close()
		flush()
		return nil
	case <-ctx.Done():
		c.Close()
		return nil
	case err := <-inDone:
		if err != nil {
			c.Close()
			return exitWith(exitFindings, err)
		}
	}
	// Let replies to the last commands arrive, then stop the reader so that
	// Quit reads its own answer and not an earlier one.
	_ = c.SetReadDeadline(time.Now().Add(quitGrace))
	<-serverDone
	_ = c.SetReadDeadline(time.Time{})
	n := len(c.Transcript)
	qctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := c.Quit(qctx)
	for _, e := range c.Transcript[n:] {
		if !e.Sent {
			fmt.Fprintln(sink, e.Text)
		}
	}
	flush()
	if err != nil && !errors.Is(err, starttls.ErrClosed) {
		fmt.Fprintln(os.Stderr, "starttls: goodbye:", termSafe(err.Error()))
	}
	return nil
}

// copyLines sends in to w line by line, turning LF into CRLF if asked.
func copyLines(w io.Writer, in io.Reader, crlf bool) error {
	br := bufio.NewReader(in)
	for {
		line, err := br.ReadString('\n')
		if len(line) > 0 {
			if crlf && strings.HasSuffix(line, "\n") && !strings.HasSuffix(line, "\r\n") {
				line = strings.TrimSuffix(line, "\n") + "\r\n"
			}
			if _, werr := io.WriteString(w, line); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
