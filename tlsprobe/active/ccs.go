package active

import (
	"context"
	"fmt"

	"github.com/starttls-go/starttls/tlsprobe"
)

// CCSInjection (CVE-2014-0224) sends ChangeCipherSpec right after the
// server's first flight, before any key exchange, and then a second one.
// A correct server rejects the first with unexpected_message; a
// vulnerable one takes it, switches to keys derived from an empty master
// secret and fails to decrypt the second (bad_record_mac or
// decryption_failed), or says nothing at all. One connection.
func CCSInjection(ctx context.Context, dial tlsprobe.Dialer, o tlsprobe.Options, v tlsprobe.Version) (VulnResult, error) {
	o = o.WithDefaults()
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	f, err := openFlight(ctx, dial, newHello12(uint16(v), legacySuiteIDs(), o.ServerName))
	if err != nil {
		return VulnResult{}, err
	}
	defer f.close()
	ccs := tlsprobe.Record{Type: tlsprobe.RecordChangeCipherSpec, Version: uint16(v), Body: []byte{1}}.Marshal()
	if _, err := f.conn.Write(append(ccs, ccs...)); err != nil {
		return VulnResult{Evidence: fmt.Sprintf("the server closed the connection at the early ChangeCipherSpec (%v)", err)}, nil
	}
	a, err := f.readAnswer()
	if err != nil {
		return VulnResult{}, err
	}
	switch {
	case a.alert != nil && (a.alert.Description == tlsprobe.AlertBadRecordMAC || a.alert.Description == tlsprobe.AlertDecryptionFailed):
		return VulnResult{Vulnerable: true, Evidence: fmt.Sprintf(
			"after two ChangeCipherSpec before the key exchange the server answered %s: it took the first and tried to decrypt the second", a)}, nil
	case a.timeout:
		return VulnResult{Vulnerable: true, Evidence: "the server accepted two ChangeCipherSpec before the key exchange without an alert"}, nil
	case a.record != nil:
		return VulnResult{}, fmt.Errorf("%w: %s after an early ChangeCipherSpec", tlsprobe.ErrNotTLS, a)
	}
	return VulnResult{Evidence: fmt.Sprintf("the server rejected a ChangeCipherSpec before the key exchange (%s)", a)}, nil
}
