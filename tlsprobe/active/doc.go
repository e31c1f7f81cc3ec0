// Package active holds tlsprobe's minimal TLS 1.2 client (ECDHE or RSA key
// exchange, AES-GCM) and the active vulnerability probes built on it:
// Heartbleed, CCS injection, ROBOT, client-initiated renegotiation and
// session resumption. Unlike tlsprobe, whose probes stop at the server's
// first answer, these complete or deliberately break a handshake. The
// records are read by tlsprobe.ReadRecord and errors wrap tlsprobe's
// ErrDeclined and ErrNotTLS.
package active
