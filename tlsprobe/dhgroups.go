package tlsprobe

import (
	"crypto/sha256"
	"encoding/hex"
	"math/big"
)

// DHGroup is a well-known finite-field Diffie-Hellman group.
type DHGroup struct {
	Name string
	Bits int
	// PrimeSHA256 is the SHA-256 of the prime's big-endian bytes without
	// leading zeros: a server's dh_p is matched by hash, so that the table
	// stays small and the primes are not restated here.
	PrimeSHA256 string
}

// WellKnownDHGroups are the published groups a server may use unchanged,
// and primes that servers shipped as their default.
// A shared prime matters because precomputation against one group breaks
// every server using it (Logjam, weakdh.org): at 1024 bits that is
// within reach of a state. The MODP primes follow the formula of RFC 2409
// §6.1-6.2 and RFC 3526 (2^n - 2^(n-64) - 1 + 2^64 * (floor(2^(n-130) pi) +
// k)); the table's hashes are checked against that formula and against
// OpenSSL's built-in groups in dhgroups_test.go.
var WellKnownDHGroups = []DHGroup{
	{"RFC 2409 Oakley group 1 (768-bit MODP)", 768, "b52ba6a3026520a6c49d37e4587601801bee500123b3259b6bf03e7cecc3e63d"},
	{"RFC 2409 Oakley group 2 (1024-bit MODP)", 1024, "3f35a3f5f6c4376a744acad409bb22f8d897f949d2311d885adaa890981b67a0"},
	{"RFC 3526 1536-bit MODP group 5", 1536, "64fcc83ec403930bf18393dbc883ccaa1fbb08ac876f77f7aa99748ca945019b"},
	{"RFC 3526 2048-bit MODP group 14", 2048, "d66436f79bbd6b2e38c0ffbd079be904d2641415e2e67140e09448be9a60890e"},
	{"RFC 3526 3072-bit MODP group 15", 3072, "48cf8b092fbce4359d9871abf74f98e25b6163379eaa15cd9087e800c6d1c55c"},
	{"RFC 3526 4096-bit MODP group 16", 4096, "4ee95187682bcb230ad26a95205f6920e84708f6251b3894329b09ec23919e33"},
	{"RFC 3526 6144-bit MODP group 17", 6144, "d1bfe6d0925ce7e4da262b62861514a7755e35831e429f343e7b864848657efd"},
	{"RFC 3526 8192-bit MODP group 18", 8192, "39ab4feab950a3128fb71accb9fc3965d857012e081998a85996e3ea8b3c3bcf"},
	{"RFC 5114 1024-bit MODP with 160-bit subgroup", 1024, "44c55cfee5c075927cf682da5b681bdecbd5c3eb0784c14f5dce7610f0ef133d"},
	{"RFC 5114 2048-bit MODP with 224-bit subgroup", 2048, "bfe545862ca102ad1eeddb5fbfa5bf855ac4995c56a8b408ce3fe099dce93a9d"},
	{"RFC 5114 2048-bit MODP with 256-bit subgroup", 2048, "0b7835722cb619827610c2549fdda5587421686c4409a13865e76225522ddcc9"},
	{"RFC 7919 ffdhe2048", 2048, "9cd3b7f336872f46c09428d1bbc19877a4d440512cda8d1c1cf0cd6e33698966"},
	{"RFC 7919 ffdhe3072", 3072, "0eaf67db3a839156d5013494a5318a772b5697d270d721f37f092efc69ea5a17"},
	{"RFC 7919 ffdhe4096", 4096, "4648414224ac881b3d0dc59b466f96d06a558278776807797ecf1f66ff397b3e"},
	{"RFC 7919 ffdhe6144", 6144, "227ac9066b3ddd9e193670cda2388fa884f65ba0cf98b742d1fe77a6687c79c7"},
	{"RFC 7919 ffdhe8192", 8192, "770b14efaf6f049929c523113b3fa99a8d11dab1b18af3609590122075d19833"},
	// Built into nginx before 1.11.0 for servers without ssl_dhparam.
	{"nginx built-in 1024-bit group (before 1.11.0)", 1024, "8ae47dca3d24e9b64640062686da234dcabada26b0da6f090c5449c1338d9a11"},
}

var dhGroupsByHash = func() map[string]DHGroup {
	m := make(map[string]DHGroup, len(WellKnownDHGroups))
	for _, g := range WellKnownDHGroups {
		m[g.PrimeSHA256] = g
	}
	return m
}()

// LookupDHGroup names the group whose prime is p (big-endian, leading
// zeros allowed), or returns false for a prime not in the table.
func LookupDHGroup(p []byte) (DHGroup, bool) {
	g, ok := dhGroupsByHash[primeHash(p)]
	return g, ok
}

func primeHash(p []byte) string {
	b := new(big.Int).SetBytes(p).Bytes()
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}
