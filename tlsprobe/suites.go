package tlsprobe

import (
	"crypto/tls"
	"fmt"
	"sort"
	"strings"
)

// Suite is a cipher suite from the IANA registry.
type Suite struct {
	ID   uint16
	Name string
	// TLS13 is true for the five TLS 1.3 suites, which are useless before it
	// and the only ones valid in it.
	TLS13 bool
}

// legacySuites are the TLS 1.0-1.2 (and SSLv3) suites that servers in the
// wild accept, including the weak ones a checker must be able to see.
var legacySuites = []Suite{
	{0x0001, "TLS_RSA_WITH_NULL_MD5", false},
	{0x0002, "TLS_RSA_WITH_NULL_SHA", false},
	{0x0003, "TLS_RSA_EXPORT_WITH_RC4_40_MD5", false},
	{0x0004, "TLS_RSA_WITH_RC4_128_MD5", false},
	{0x0005, "TLS_RSA_WITH_RC4_128_SHA", false},
	{0x0006, "TLS_RSA_EXPORT_WITH_RC2_CBC_40_MD5", false},
	{0x0007, "TLS_RSA_WITH_IDEA_CBC_SHA", false},
	{0x0008, "TLS_RSA_EXPORT_WITH_DES40_CBC_SHA", false},
	{0x0009, "TLS_RSA_WITH_DES_CBC_SHA", false},
	{0x000A, "TLS_RSA_WITH_3DES_EDE_CBC_SHA", false},
	{0x0011, "TLS_DHE_DSS_EXPORT_WITH_DES40_CBC_SHA", false},
	{0x0012, "TLS_DHE_DSS_WITH_DES_CBC_SHA", false},
	{0x0013, "TLS_DHE_DSS_WITH_3DES_EDE_CBC_SHA", false},
	{0x0014, "TLS_DHE_RSA_EXPORT_WITH_DES40_CBC_SHA", false},
	{0x0015, "TLS_DHE_RSA_WITH_DES_CBC_SHA", false},
	{0x0016, "TLS_DHE_RSA_WITH_3DES_EDE_CBC_SHA", false},
	{0x0017, "TLS_DH_anon_EXPORT_WITH_RC4_40_MD5", false},
	{0x0018, "TLS_DH_anon_WITH_RC4_128_MD5", false},
	{0x001A, "TLS_DH_anon_WITH_DES_CBC_SHA", false},
	{0x001B, "TLS_DH_anon_WITH_3DES_EDE_CBC_SHA", false},
	{0x002F, "TLS_RSA_WITH_AES_128_CBC_SHA", false},
	{0x0032, "TLS_DHE_DSS_WITH_AES_128_CBC_SHA", false},
	{0x0033, "TLS_DHE_RSA_WITH_AES_128_CBC_SHA", false},
	{0x0034, "TLS_DH_anon_WITH_AES_128_CBC_SHA", false},
	{0x0035, "TLS_RSA_WITH_AES_256_CBC_SHA", false},
	{0x0038, "TLS_DHE_DSS_WITH_AES_256_CBC_SHA", false},
	{0x0039, "TLS_DHE_RSA_WITH_AES_256_CBC_SHA", false},
	{0x003A, "TLS_DH_anon_WITH_AES_256_CBC_SHA", false},
	{0x003B, "TLS_RSA_WITH_NULL_SHA256", false},
	{0x003C, "TLS_RSA_WITH_AES_128_CBC_SHA256", false},
	{0x003D, "TLS_RSA_WITH_AES_256_CBC_SHA256", false},
	{0x0040, "TLS_DHE_DSS_WITH_AES_128_CBC_SHA256", false},
	{0x0041, "TLS_RSA_WITH_CAMELLIA_128_CBC_SHA", false},
	{0x0044, "TLS_DHE_DSS_WITH_CAMELLIA_128_CBC_SHA", false},
	{0x0045, "TLS_DHE_RSA_WITH_CAMELLIA_128_CBC_SHA", false},
	{0x0046, "TLS_DH_anon_WITH_CAMELLIA_128_CBC_SHA", false},
	{0x0067, "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256", false},
	{0x006A, "TLS_DHE_DSS_WITH_AES_256_CBC_SHA256", false},
	{0x006B, "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256", false},
	{0x006C, "TLS_DH_anon_WITH_AES_128_CBC_SHA256", false},
	{0x006D, "TLS_DH_anon_WITH_AES_256_CBC_SHA256", false},
	{0x0084, "TLS_RSA_WITH_CAMELLIA_256_CBC_SHA", false},
	{0x0087, "TLS_DHE_DSS_WITH_CAMELLIA_256_CBC_SHA", false},
	{0x0088, "TLS_DHE_RSA_WITH_CAMELLIA_256_CBC_SHA", false},
	{0x0089, "TLS_DH_anon_WITH_CAMELLIA_256_CBC_SHA", false},
	{0x0096, "TLS_RSA_WITH_SEED_CBC_SHA", false},
	{0x009A, "TLS_DHE_RSA_WITH_SEED_CBC_SHA", false},
	{0x009C, "TLS_RSA_WITH_AES_128_GCM_SHA256", false},
	{0x009D, "TLS_RSA_WITH_AES_256_GCM_SHA384", false},
	{0x009E, "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", false},
	{0x009F, "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384", false},
	{0x00A2, "TLS_DHE_DSS_WITH_AES_128_GCM_SHA256", false},
	{0x00A3, "TLS_DHE_DSS_WITH_AES_256_GCM_SHA384", false},
	{0x00A6, "TLS_DH_anon_WITH_AES_128_GCM_SHA256", false},
	{0x00A7, "TLS_DH_anon_WITH_AES_256_GCM_SHA384", false},
	{0x00BA, "TLS_RSA_WITH_CAMELLIA_128_CBC_SHA256", false},
	{0x00BE, "TLS_DHE_RSA_WITH_CAMELLIA_128_CBC_SHA256", false},
	{0x00BF, "TLS_DH_anon_WITH_CAMELLIA_128_CBC_SHA256", false},
	{0x00C0, "TLS_RSA_WITH_CAMELLIA_256_CBC_SHA256", false},
	{0x00C4, "TLS_DHE_RSA_WITH_CAMELLIA_256_CBC_SHA256", false},
	{0x00C5, "TLS_DH_anon_WITH_CAMELLIA_256_CBC_SHA256", false},
	{0xC001, "TLS_ECDH_ECDSA_WITH_NULL_SHA", false},
	{0xC002, "TLS_ECDH_ECDSA_WITH_RC4_128_SHA", false},
	{0xC003, "TLS_ECDH_ECDSA_WITH_3DES_EDE_CBC_SHA", false},
	{0xC004, "TLS_ECDH_ECDSA_WITH_AES_128_CBC_SHA", false},
	{0xC005, "TLS_ECDH_ECDSA_WITH_AES_256_CBC_SHA", false},
	{0xC006, "TLS_ECDHE_ECDSA_WITH_NULL_SHA", false},
	{0xC007, "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA", false},
	{0xC008, "TLS_ECDHE_ECDSA_WITH_3DES_EDE_CBC_SHA", false},
	{0xC009, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", false},
	{0xC00A, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", false},
	{0xC00B, "TLS_ECDH_RSA_WITH_NULL_SHA", false},
	{0xC00C, "TLS_ECDH_RSA_WITH_RC4_128_SHA", false},
	{0xC00D, "TLS_ECDH_RSA_WITH_3DES_EDE_CBC_SHA", false},
	{0xC00E, "TLS_ECDH_RSA_WITH_AES_128_CBC_SHA", false},
	{0xC00F, "TLS_ECDH_RSA_WITH_AES_256_CBC_SHA", false},
	{0xC010, "TLS_ECDHE_RSA_WITH_NULL_SHA", false},
	{0xC011, "TLS_ECDHE_RSA_WITH_RC4_128_SHA", false},
	{0xC012, "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA", false},
	{0xC013, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", false},
	{0xC014, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", false},
	{0xC015, "TLS_ECDH_anon_WITH_NULL_SHA", false},
	{0xC016, "TLS_ECDH_anon_WITH_RC4_128_SHA", false},
	{0xC017, "TLS_ECDH_anon_WITH_3DES_EDE_CBC_SHA", false},
	{0xC018, "TLS_ECDH_anon_WITH_AES_128_CBC_SHA", false},
	{0xC019, "TLS_ECDH_anon_WITH_AES_256_CBC_SHA", false},
	{0xC023, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", false},
	{0xC024, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384", false},
	{0xC025, "TLS_ECDH_ECDSA_WITH_AES_128_CBC_SHA256", false},
	{0xC026, "TLS_ECDH_ECDSA_WITH_AES_256_CBC_SHA384", false},
	{0xC027, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", false},
	{0xC028, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384", false},
	{0xC029, "TLS_ECDH_RSA_WITH_AES_128_CBC_SHA256", false},
	{0xC02A, "TLS_ECDH_RSA_WITH_AES_256_CBC_SHA384", false},
	{0xC02B, "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", false},
	{0xC02C, "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", false},
	{0xC02D, "TLS_ECDH_ECDSA_WITH_AES_128_GCM_SHA256", false},
	{0xC02E, "TLS_ECDH_ECDSA_WITH_AES_256_GCM_SHA384", false},
	{0xC02F, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", false},
	{0xC030, "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", false},
	{0xC031, "TLS_ECDH_RSA_WITH_AES_128_GCM_SHA256", false},
	{0xC032, "TLS_ECDH_RSA_WITH_AES_256_GCM_SHA384", false},
	{0xC072, "TLS_ECDHE_ECDSA_WITH_CAMELLIA_128_CBC_SHA256", false},
	{0xC073, "TLS_ECDHE_ECDSA_WITH_CAMELLIA_256_CBC_SHA384", false},
	{0xC076, "TLS_ECDHE_RSA_WITH_CAMELLIA_128_CBC_SHA256", false},
	{0xC077, "TLS_ECDHE_RSA_WITH_CAMELLIA_256_CBC_SHA384", false},
	{0xC09C, "TLS_RSA_WITH_AES_128_CCM", false},
	{0xC09D, "TLS_RSA_WITH_AES_256_CCM", false},
	{0xC09E, "TLS_DHE_RSA_WITH_AES_128_CCM", false},
	{0xC09F, "TLS_DHE_RSA_WITH_AES_256_CCM", false},
	{0xC0A0, "TLS_RSA_WITH_AES_128_CCM_8", false},
	{0xC0A1, "TLS_RSA_WITH_AES_256_CCM_8", false},
	{0xC0A2, "TLS_DHE_RSA_WITH_AES_128_CCM_8", false},
	{0xC0A3, "TLS_DHE_RSA_WITH_AES_256_CCM_8", false},
	{0xC0AC, "TLS_ECDHE_ECDSA_WITH_AES_128_CCM", false},
	{0xC0AD, "TLS_ECDHE_ECDSA_WITH_AES_256_CCM", false},
	{0xC0AE, "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8", false},
	{0xC0AF, "TLS_ECDHE_ECDSA_WITH_AES_256_CCM_8", false},
	{0xC050, "TLS_RSA_WITH_ARIA_128_GCM_SHA256", false},
	{0xC051, "TLS_RSA_WITH_ARIA_256_GCM_SHA384", false},
	{0xC052, "TLS_DHE_RSA_WITH_ARIA_128_GCM_SHA256", false},
	{0xC053, "TLS_DHE_RSA_WITH_ARIA_256_GCM_SHA384", false},
	{0xC05C, "TLS_ECDHE_ECDSA_WITH_ARIA_128_GCM_SHA256", false},
	{0xC05D, "TLS_ECDHE_ECDSA_WITH_ARIA_256_GCM_SHA384", false},
	{0xC060, "TLS_ECDHE_RSA_WITH_ARIA_128_GCM_SHA256", false},
	{0xC061, "TLS_ECDHE_RSA_WITH_ARIA_256_GCM_SHA384", false},
	{0xCCA8, "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", false},
	{0xCCA9, "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", false},
	{0xCCAA, "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256", false},
}

// offerOrder is legacySuites in the order a sensible client prefers them
// (forward-secret AEAD first, weak last), so that a server honouring the
// client's order picks what a real client would get: some servers enable
// suites they cannot complete (Dovecot: DHE without ssl_dh).
var offerOrder = func() []Suite {
	out := append([]Suite(nil), legacySuites...)
	sort.SliceStable(out, func(i, j int) bool { return suiteRank(out[i].Name) < suiteRank(out[j].Name) })
	return out
}()

func suiteRank(n string) int {
	r := 0
	switch {
	case strings.HasPrefix(n, "TLS_ECDHE_"):
	case strings.HasPrefix(n, "TLS_DHE_"):
		r += 10
	case strings.HasPrefix(n, "TLS_RSA_"):
		r += 20
	default: // static ECDH/DH, anonymous
		r += 30
	}
	switch {
	case strings.Contains(n, "GCM") || strings.Contains(n, "CHACHA20"):
	case strings.Contains(n, "CCM"):
		r++
	default:
		r += 2
	}
	for _, weak := range []string{"NULL", "EXPORT", "anon", "RC4", "DES", "MD5", "IDEA", "RC2", "SEED"} {
		if strings.Contains(n, weak) {
			r += 100
		}
	}
	return r
}

// tls13Suites are the TLS 1.3 suites (RFC 8446 §B.4).
var tls13Suites = []Suite{
	{0x1301, "TLS_AES_128_GCM_SHA256", true},
	{0x1302, "TLS_AES_256_GCM_SHA384", true},
	{0x1303, "TLS_CHACHA20_POLY1305_SHA256", true},
	{0x1304, "TLS_AES_128_CCM_SHA256", true},
	{0x1305, "TLS_AES_128_CCM_8_SHA256", true},
}

// AllSuites lists every suite the prober knows: legacy ones, then TLS 1.3.
var AllSuites = append(append([]Suite{}, legacySuites...), tls13Suites...)

var suiteNames = func() map[uint16]string {
	m := map[uint16]string{}
	for _, s := range AllSuites {
		m[s.ID] = s.Name
	}
	return m
}()

// SuiteName is the IANA name of a suite id, or its hex value when unknown.
func SuiteName(id uint16) string {
	if n, ok := suiteNames[id]; ok {
		return n
	}
	if n := tls.CipherSuiteName(id); n[0] != '0' {
		return n
	}
	return fmt.Sprintf("0x%04X", id)
}

// Group is a named key-exchange group.
type Group struct {
	ID   uint16
	Name string
}

// AllGroups are the groups probed, in the order reported.
var AllGroups = []Group{
	{0x001D, "x25519"},
	{0x0017, "secp256r1"},
	{0x0018, "secp384r1"},
	{0x0019, "secp521r1"},
	{0x001E, "x448"},
	{0x11EC, "X25519MLKEM768"},
	{0x11EB, "SecP256r1MLKEM768"},
	{0x0100, "ffdhe2048"},
	{0x0101, "ffdhe3072"},
	{0x0102, "ffdhe4096"},
}

// GroupName is a group's name, or its hex value when unknown.
func GroupName(id uint16) string {
	for _, g := range AllGroups {
		if g.ID == id {
			return g.Name
		}
	}
	return fmt.Sprintf("0x%04X", id)
}

// SuiteID is the id of a suite named by its IANA name (false when unknown).
func SuiteID(name string) (uint16, bool) {
	for _, s := range AllSuites {
		if s.Name == name {
			return s.ID, true
		}
	}
	return 0, false
}
