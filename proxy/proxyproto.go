package proxy

import (
	"crypto/tls"
	"encoding/binary"
	"net"
)

// PROXY protocol version 2 (haproxy's proxy-protocol.txt §2.2), as
// Postfix (smtpd_upstream_proxy_protocol = haproxy) and Dovecot
// (haproxy_trusted_networks) read it.

var proxySig = []byte("\r\n\r\n\x00\r\nQUIT\n")

// TLV types and the SSL client bits.
const (
	pp2TypeSSL          = 0x20
	pp2SubtypeSSLVer    = 0x21
	pp2SubtypeSSLCipher = 0x23
	pp2ClientSSL        = 0x01
)

// proxyHeader is a PROXY v2 header for a TCP connection from src to dst.
// When st is set (the client is on TLS), a PP2_TYPE_SSL TLV says so:
// Dovecot then treats the session as secured.
func proxyHeader(src, dst net.Addr, st *tls.ConnectionState) []byte {
	s, _ := src.(*net.TCPAddr)
	d, _ := dst.(*net.TCPAddr)
	h := append([]byte{}, proxySig...)
	if s == nil || d == nil {
		// LOCAL command: the backend uses the real connection's addresses.
		return append(h, 0x20, 0x00, 0x00, 0x00)
	}
	var addr []byte
	fam := byte(0x11) // TCP over IPv4
	if s4, d4 := s.IP.To4(), d.IP.To4(); s4 != nil && d4 != nil {
		addr = append(append(addr, s4...), d4...)
	} else {
		fam = 0x21 // TCP over IPv6
		addr = append(append(addr, s.IP.To16()...), d.IP.To16()...)
	}
	addr = binary.BigEndian.AppendUint16(addr, uint16(s.Port))
	addr = binary.BigEndian.AppendUint16(addr, uint16(d.Port))
	if st != nil {
		var sub []byte
		sub = tlv(sub, pp2SubtypeSSLVer, []byte(opensslVersion(st.Version)))
		sub = tlv(sub, pp2SubtypeSSLCipher, []byte(tls.CipherSuiteName(st.CipherSuite)))
		// client bits, then verify (0: the client presented no failing certificate).
		v := append([]byte{pp2ClientSSL, 0, 0, 0, 0}, sub...)
		addr = tlv(addr, pp2TypeSSL, v)
	}
	h = append(h, 0x21, fam)
	h = binary.BigEndian.AppendUint16(h, uint16(len(addr)))
	return append(h, addr...)
}

func tlv(b []byte, typ byte, v []byte) []byte {
	b = append(b, typ)
	b = binary.BigEndian.AppendUint16(b, uint16(len(v)))
	return append(b, v...)
}

// opensslVersion names a version as haproxy does in the TLV ("TLSv1.3").
func opensslVersion(v uint16) string {
	switch v {
	case tls.VersionTLS10:
		return "TLSv1"
	case tls.VersionTLS11:
		return "TLSv1.1"
	case tls.VersionTLS12:
		return "TLSv1.2"
	case tls.VersionTLS13:
		return "TLSv1.3"
	}
	return tls.VersionName(v)
}
