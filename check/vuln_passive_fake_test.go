package check

import (
	"context"
	"io"
	"net"
	"slices"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/loopback"
	"github.com/starttls-go/starttls/tlsprobe"
)

// fakeTLS is a server that answers one ClientHello per connection with a
// crafted ServerHello (or alert), to give the vulnerability probes the
// flawed answers no packaged server gives any more. It speaks TLS 1.0 to
// 1.2 and never finishes a handshake.
type fakeTLS struct {
	min, max tlsprobe.Version
	// renegInfo is the renegotiation_info body; nil leaves it out.
	renegInfo []byte
	// pointFormats is the ec_point_formats body; nil leaves it out.
	pointFormats []byte
	// ignoreFallback answers TLS_FALLBACK_SCSV below max like any hello;
	// hangUpOnFallback closes the connection without an alert (Dovecot).
	ignoreFallback, hangUpOnFallback bool
	// compress picks DEFLATE when offered.
	compress bool
	// accept says which suites it takes; nil takes the first offered.
	accept func(uint16) bool
	// sslv2 is the raw answer to an SSLv2 CLIENT-HELLO; nil hangs up.
	sslv2 []byte
}

// clientHello is what the fake reads from a hello.
type clientHello struct {
	version     tlsprobe.Version
	suites      []uint16
	compression []uint8
	tls13       bool
}

func (f *fakeTLS) start(t *testing.T) string {
	t.Helper()
	return loopback.Serve(t, 5*time.Second, f.answer)
}

func (f *fakeTLS) answer(conn net.Conn) {
	hdr := make([]byte, 2)
	if _, err := io.ReadFull(conn, hdr); err != nil {
		return
	}
	if hdr[0]&0x80 != 0 { // SSLv2 record
		body := make([]byte, int(hdr[0]&0x7F)<<8|int(hdr[1]))
		if _, err := io.ReadFull(conn, body); err == nil && f.sslv2 != nil {
			_, _ = conn.Write(f.sslv2)
		}
		return
	}
	rest := make([]byte, 3)
	if _, err := io.ReadFull(conn, rest); err != nil {
		return
	}
	body := make([]byte, int(rest[1])<<8|int(rest[2]))
	if _, err := io.ReadFull(conn, body); err != nil {
		return
	}
	ch, ok := parseClientHello(body)
	if !ok {
		_, _ = conn.Write(alertRecord(50))
		return
	}
	r := f.reply(ch)
	if r == nil {
		return
	}
	_, _ = conn.Write(r)
	// Wait for the client to hang up, as a server waiting for its next
	// flight would.
	_, _ = io.Copy(io.Discard, conn)
}

func (f *fakeTLS) reply(ch clientHello) []byte {
	v := min(ch.version, f.max)
	if v < f.min {
		return alertRecord(70)
	}
	if slices.Contains(ch.suites, tlsprobe.FallbackSCSV) && ch.version < f.max && f.hangUpOnFallback {
		return nil
	}
	if slices.Contains(ch.suites, tlsprobe.FallbackSCSV) && ch.version < f.max && !f.ignoreFallback {
		return alertRecord(tlsprobe.AlertInappropriateFallback)
	}
	suite := uint16(0)
	for _, s := range ch.suites {
		if s == 0x00FF || s == tlsprobe.FallbackSCSV {
			continue
		}
		if f.accept == nil || f.accept(s) {
			suite = s
			break
		}
	}
	if suite == 0 {
		return alertRecord(40)
	}
	comp := uint8(0)
	if f.compress && slices.Contains(ch.compression, tlsprobe.CompressionDeflate) {
		comp = tlsprobe.CompressionDeflate
	}
	var exts []tlsprobe.Extension
	if f.renegInfo != nil {
		exts = append(exts, tlsprobe.Extension{Type: tlsprobe.ExtRenegotiationInfo, Data: f.renegInfo})
	}
	if f.pointFormats != nil {
		exts = append(exts, tlsprobe.Extension{Type: tlsprobe.ExtECPointFormats, Data: f.pointFormats})
	}
	var b cryptobyte.Builder
	b.AddUint8(22)
	b.AddUint16(uint16(v))
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
		b.AddUint8(2)
		b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) {
			b.AddUint16(uint16(v))
			b.AddBytes(make([]byte, 32))
			b.AddUint8(0)
			b.AddUint16(suite)
			b.AddUint8(comp)
			b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
				for _, e := range exts {
					b.AddUint16(e.Type)
					b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(e.Data) })
				}
			})
		})
	})
	return b.BytesOrPanic()
}

func alertRecord(desc uint8) []byte { return []byte{21, 3, 3, 0, 2, 2, desc} }

func parseClientHello(body []byte) (clientHello, bool) {
	var ch clientHello
	s := cryptobyte.String(body)
	var typ uint8
	var msg, random, sid, suites, comp cryptobyte.String
	var ver uint16
	if !s.ReadUint8(&typ) || typ != 1 || !s.ReadUint24LengthPrefixed(&msg) || !msg.ReadUint16(&ver) ||
		!msg.ReadBytes((*[]byte)(&random), 32) || !msg.ReadUint8LengthPrefixed(&sid) ||
		!msg.ReadUint16LengthPrefixed(&suites) || !msg.ReadUint8LengthPrefixed(&comp) {
		return ch, false
	}
	ch.version = tlsprobe.Version(ver)
	for !suites.Empty() {
		var id uint16
		if !suites.ReadUint16(&id) {
			return ch, false
		}
		ch.suites = append(ch.suites, id)
	}
	ch.compression = comp
	var exts cryptobyte.String
	if msg.ReadUint16LengthPrefixed(&exts) {
		for !exts.Empty() {
			var typ uint16
			var data cryptobyte.String
			if !exts.ReadUint16(&typ) || !exts.ReadUint16LengthPrefixed(&data) {
				return ch, false
			}
			ch.tls13 = ch.tls13 || typ == 43
		}
	}
	if ch.tls13 {
		ch.version = tlsprobe.TLS13 // the fake answers with its highest, as a TLS 1.2 server does
	}
	return ch, true
}

// probeRun is a run against addr (implicit TLS, so that the probes' dialer
// connects straight to the fake) as if the enumeration had found versions
// and suites.
func probeRun(t *testing.T, addr string, versions []string, suites map[string][]string) *run {
	t.Helper()
	tg, err := starttls.ParseTarget(addr, starttls.IMAPS)
	if err != nil {
		t.Fatal(err)
	}
	o := Options{Timeout: 3 * time.Second, ServerName: "localhost"}.withDefaults(tg)
	info, _ := starttls.Lookup(tg.Protocol)
	r := &Report{TLS: TLSInfo{Versions: map[string]bool{}, CipherSuites: map[string][]string{}}, Timings: Timings{ProbesMS: map[string]float64{}}}
	for _, k := range []string{"sslv3", "tls1.0", "tls1.1", "tls1.2", "tls1.3"} {
		r.TLS.Versions[k] = slices.Contains(versions, k)
	}
	for k, v := range suites {
		r.TLS.CipherSuites[k] = v
	}
	return &run{t: tg, o: o, info: info, r: r}
}

// runProbe runs the registered probe id on c, as a full check does.
func runProbe(t *testing.T, c *run, id string) (string, *Finding) {
	t.Helper()
	vulnMu.Lock()
	i := slices.IndexFunc(vulnProbes, func(p vulnProbe) bool { return p.id == id })
	vulnMu.Unlock()
	if i < 0 {
		t.Fatalf("no probe registered for %s", id)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	vulnProbes[i].run(ctx, c)
	for i := range c.r.Findings {
		if c.r.Findings[i].ID == id {
			return c.r.TLS.Vulnerabilities[id], &c.r.Findings[i]
		}
	}
	return c.r.TLS.Vulnerabilities[id], nil
}
