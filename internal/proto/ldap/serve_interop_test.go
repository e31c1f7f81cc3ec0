package ldap_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/peer"
	"github.com/starttls-go/starttls/internal/proto/ldap"
	"github.com/starttls-go/starttls/internal/servetest"
)

// The LDAP application behind serve's upgrade, against the native Debian
// clients (verification on, through STARTTLS) and against our own client.

const (
	whoAmIOID = "1.3.6.1.4.1.4203.1.11.3" // RFC 4532

	noSuchObject       = 32
	invalidCredentials = 49
	unwillingToPerform = 53
)

func TestLdapsearchApp(t *testing.T) {
	bins := peer.Require(t, "ldapsearch", "ldapwhoami")
	servetest.ClientVersion(t, bins["ldapsearch"], "-VV")
	s := servetest.Start(t, starttls.LDAP)
	url := "ldap://127.0.0.1:" + s.Port
	// A throwaway HOME: no ~/.ldaprc of the machine's.
	home := "HOME=" + t.TempDir()
	env := []string{"LDAPTLS_CACERT=" + s.CA, "LDAPTLS_REQCERT=demand", home}
	out, err := servetest.RunClient(t, env, bins["ldapsearch"], "-ZZ", "-H", url, "-x", "-b", "", "-s", "base", "-o", "nettimeout=5", "-l", "5")
	if err != nil {
		t.Fatalf("ldapsearch -ZZ: %v\n%s", err, out)
	}
	servetest.WantAll(t, "ldapsearch root DSE", out, "namingContexts: dc=localhost", "supportedLDAPVersion: 3",
		"supportedExtension: 1.3.6.1.4.1.1466.20037", "supportedExtension: 1.3.6.1.4.1.4203.1.11.3", "result: 0 Success")

	// A simple bind is checked, and WhoAmI tells who is bound.
	out, err = servetest.RunClient(t, env, bins["ldapwhoami"], "-ZZ", "-H", url, "-x", "-D", "cn=user,dc=test", "-w", "secret", "-o", "nettimeout=5")
	if err != nil || !strings.Contains(out, "dn:cn=user,dc=test") {
		t.Errorf("ldapwhoami with the right password: %v\n%s", err, out)
	}
	out, err = servetest.RunClient(t, env, bins["ldapwhoami"], "-ZZ", "-H", url, "-x", "-D", "cn=user,dc=test", "-w", "wrong", "-o", "nettimeout=5")
	if err == nil || !strings.Contains(out, "Invalid credentials (49)") {
		t.Errorf("ldapwhoami with a wrong password: %v\n%s", err, out)
	}
	// Other bases do not exist.
	out, err = servetest.RunClient(t, env, bins["ldapsearch"], "-ZZ", "-H", url, "-x", "-b", "dc=other", "-o", "nettimeout=5")
	if err == nil || !strings.Contains(out, "result: 32 No such object") {
		t.Errorf("ldapsearch -b dc=other: %v\n%s", err, out)
	}
	// Verification is on: with another CA, -ZZ fails before any operation.
	otherCA := servetest.OtherCA(t)
	out, err = servetest.RunClient(t, []string{"LDAPTLS_CACERT=" + otherCA, "LDAPTLS_REQCERT=demand", home}, bins["ldapsearch"], "-ZZ", "-H", url, "-x", "-b", "", "-s", "base", "-o", "nettimeout=5")
	if err == nil || strings.Contains(out, "namingContexts") {
		t.Errorf("ldapsearch trusted a CA it was not given: %v\n%s", err, out)
	}
}

// Our own client against the LDAP application: every operation it answers.
func TestLDAPAppLibraryClient(t *testing.T) {
	s := servetest.Start(t, starttls.LDAP)
	c := s.Dial(t, starttls.LDAP)
	// A second StartTLS inside TLS is refused (RFC 4511 §4.14.2).
	if err := c.UpgradeAgain(context.Background()); !errors.Is(err, starttls.ErrRefused) {
		t.Errorf("second StartTLS: %v, want ErrRefused", err)
	}
	br := bufio.NewReader(c)
	id := 10
	ask := func(op int, body func(b *cryptobyte.Builder)) []*ldap.Message {
		t.Helper()
		id++
		if _, err := c.Write(ldap.Encode(id, op, true, body)); err != nil {
			t.Fatal(err)
		}
		var got []*ldap.Message
		for i := 0; i < 10; i++ {
			raw, err := ldap.ReadMessage(func(b []byte) error { _, err := io.ReadFull(br, b); return err }, 1<<16)
			if err != nil {
				t.Fatalf("reading the answer to op %d: %v", op, err)
			}
			m, err := ldap.ParseMessage(raw)
			if err != nil {
				t.Fatalf("answer to op %d: %v", op, err)
			}
			if m.ID != id {
				t.Fatalf("answer with messageID %d, want %d", m.ID, id)
			}
			got = append(got, m)
			if m.HasResult {
				return got
			}
			if op == ldap.SearchRequest && !strings.Contains(string(raw), "namingContexts") {
				t.Errorf("root DSE entry lacks namingContexts: %q", raw)
			}
		}
		t.Fatal("no final response")
		return nil
	}
	bind := func(name, pass string) int {
		m := ask(ldap.BindRequest, ldap.BindBody(name, pass))
		return m[len(m)-1].ResultCode
	}
	search := func(base string) []*ldap.Message { return ask(ldap.SearchRequest, ldap.SearchBody(base)) }
	for _, tc := range []struct {
		name, pass string
		want       int
	}{{"", "", ldap.Success}, {"cn=user,dc=test", "wrong", invalidCredentials},
		{"cn=user,dc=test", "", unwillingToPerform}, {"cn=user,dc=test", "secret", ldap.Success}} {
		if got := bind(tc.name, tc.pass); got != tc.want {
			t.Errorf("bind %q/%q: resultCode %d, want %d", tc.name, tc.pass, got, tc.want)
		}
	}
	if m := search(""); len(m) != 2 || m[0].Op != ldap.SearchResEntry || m[1].Op != ldap.SearchResDone || m[1].ResultCode != 0 {
		t.Errorf("root DSE search: %v", m)
	}
	if m := search("dc=nowhere"); len(m) != 1 || m[0].ResultCode != noSuchObject {
		t.Errorf("search of another base: %v", m)
	}
	who := ask(ldap.ExtendedRequest, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.Tag(0).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes([]byte(whoAmIOID)) })
	})
	if m := who[0]; m.ResultCode != 0 || !m.HasValue {
		t.Errorf("WhoAmI: %v", m)
	}
	// Unbind ends the session: the server closes.
	if _, err := c.Write(ldap.Encode(99, ldap.UnbindRequest, true, func(*cryptobyte.Builder) {})); err != nil {
		t.Fatal(err)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("after Unbind: %v, want EOF", err)
	}
}
