package tlsprobe

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// Suites and extensions the vulnerability probes name.
const (
	// FallbackSCSV is TLS_FALLBACK_SCSV (RFC 7507): a client retrying with
	// a lower version than it supports.
	FallbackSCSV uint16 = 0x5600
	// ExtRenegotiationInfo is renegotiation_info (RFC 5746).
	ExtRenegotiationInfo uint16 = 0xFF01
	// ExtECPointFormats is ec_point_formats (RFC 8422 §5.1.2).
	ExtECPointFormats uint16 = 11
	// CompressionDeflate is the DEFLATE compression method (RFC 3749).
	CompressionDeflate uint8 = 1
)

// AlertInappropriateFallback is the alert a server sends to a hello with
// TLS_FALLBACK_SCSV below its highest version (RFC 7507 §3).
const AlertInappropriateFallback uint8 = 86

// Offer dials once and sends ch with o's server name: the single-shot
// probe the vulnerability checks are built from.
func Offer(ctx context.Context, dial Dialer, o Options, ch ClientHello) (*ServerHello, error) {
	return one(ctx, dial, o.WithDefaults(), ch)
}

// HelloFor is the hello the enumeration sends for v alone: every suite
// and group the prober knows (and, below TLS 1.3, the renegotiation SCSV).
func HelloFor(v Version) ClientHello { return helloFor(v) }

// OfferSSLv2 dials once and sends an SSLv2 CLIENT-HELLO (see HelloSSLv2).
func OfferSSLv2(ctx context.Context, dial Dialer, o Options) (*SSLv2ServerHello, error) {
	return dialed(ctx, dial, o.WithDefaults(), HelloSSLv2)
}

// extraExportSuites are export suites missing from the enumeration's pool
// (the 1024-bit "EXPORT1024" drafts and static-DH ones) that some old
// stacks still enable.
var extraExportSuites = []Suite{
	{0x000B, "TLS_DH_DSS_EXPORT_WITH_DES40_CBC_SHA", false},
	{0x000E, "TLS_DH_RSA_EXPORT_WITH_DES40_CBC_SHA", false},
	{0x0019, "TLS_DH_anon_EXPORT_WITH_DES40_CBC_SHA", false},
	{0x0060, "TLS_RSA_EXPORT1024_WITH_RC4_56_MD5", false},
	{0x0061, "TLS_RSA_EXPORT1024_WITH_RC2_CBC_56_MD5", false},
	{0x0062, "TLS_RSA_EXPORT1024_WITH_DES_CBC_SHA", false},
	{0x0063, "TLS_DHE_DSS_EXPORT1024_WITH_DES_CBC_SHA", false},
	{0x0064, "TLS_RSA_EXPORT1024_WITH_RC4_56_SHA", false},
	{0x0065, "TLS_DHE_DSS_EXPORT1024_WITH_RC4_56_SHA", false},
}

// ExportSuites are every export-grade suite the prober knows: those of the
// enumeration's pool, then the extra ones it does not offer.
func ExportSuites() []Suite {
	var out []Suite
	for _, s := range legacySuites {
		if strings.Contains(s.Name, "EXPORT") {
			out = append(out, s)
		}
	}
	return append(out, extraExportSuites...)
}

// InEnumeration reports whether Suites offers id, so that a probe knows
// whether the enumeration already answered for it.
func InEnumeration(id uint16) bool {
	return slices.ContainsFunc(AllSuites, func(s Suite) bool { return s.ID == id })
}

// ExportSuiteName names export suites the enumeration does not know as
// well; otherwise it is SuiteName.
func ExportSuiteName(id uint16) string {
	for _, s := range extraExportSuites {
		if s.ID == id {
			return s.Name
		}
	}
	return SuiteName(id)
}

// ParseECPointFormats reads an ec_point_formats extension body.
func ParseECPointFormats(data []byte) ([]uint8, error) {
	if len(data) < 2 || int(data[0]) != len(data)-1 {
		return nil, fmt.Errorf("%w: bad ec_point_formats %x", ErrNotTLS, data)
	}
	return slices.Clone(data[1:]), nil
}

// ECPointFormatName is the RFC 8422 name of a point format.
func ECPointFormatName(f uint8) string {
	switch f {
	case 0:
		return "uncompressed"
	case 1:
		return "ansiX962_compressed_prime"
	case 2:
		return "ansiX962_compressed_char2"
	}
	return fmt.Sprintf("0x%02X", f)
}

// CompressionName is a compression method's name (RFC 3749, RFC 3943).
func CompressionName(m uint8) string {
	switch m {
	case 0:
		return "null"
	case 1:
		return "DEFLATE"
	case 64:
		return "LZS"
	}
	return fmt.Sprintf("0x%02X", m)
}

// AlertName is an alert description's RFC 8446 (or RFC 5246) name, or its
// number.
func AlertName(d uint8) string {
	names := map[uint8]string{
		0: "close_notify", 10: "unexpected_message", 20: "bad_record_mac", 21: "decryption_failed",
		22: "record_overflow", 40: "handshake_failure",
		42: "bad_certificate", 47: "illegal_parameter", 50: "decode_error", 51: "decrypt_error",
		70: "protocol_version", 71: "insufficient_security", 80: "internal_error",
		86: "inappropriate_fallback", 90: "user_canceled", 109: "missing_extension",
		100: "no_renegotiation", 110: "unsupported_extension", 112: "unrecognized_name",
	}
	if n, ok := names[d]; ok {
		return n
	}
	return fmt.Sprintf("%d", d)
}
