package postgres_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/peer"
	"github.com/starttls-go/starttls/internal/servetest"
)

// The PostgreSQL application behind serve's upgrade, against psql
// (verification on) and against our own client.

func TestPsqlApp(t *testing.T) {
	bins := peer.Require(t, "psql")
	servetest.ClientVersion(t, bins["psql"], "--version")
	s := servetest.Start(t, starttls.Postgres)
	psql := func(pass, ca, query string) (string, error) {
		conn := "host=localhost hostaddr=127.0.0.1 port=" + s.Port + " user=user dbname=db sslmode=verify-full sslrootcert=" + ca
		// A throwaway HOME: no ~/.pgpass, ~/.postgresql or psqlrc of the machine's.
		return servetest.RunClient(t, []string{"HOME=" + t.TempDir(), "PGPASSWORD=" + pass, "PGCONNECT_TIMEOUT=5"},
			bins["psql"], "-X", "-w", conn, "-c", query)
	}
	out, err := psql("secret", s.CA, "SELECT 1")
	if err != nil {
		t.Fatalf("psql: %v\n%s", err, out)
	}
	servetest.WantAll(t, "psql SELECT 1", out, "?column?", "1", "(1 row)")
	out, err = psql("secret", s.CA, "select version()")
	if err != nil || !strings.Contains(out, "starttls-go") {
		t.Errorf("psql select version(): %v\n%s", err, out)
	}
	out, err = psql("secret", s.CA, "SELECT * FROM pg_tables")
	if err == nil || !strings.Contains(out, "ERROR") {
		t.Errorf("psql with an unsupported query: %v\n%s", err, out)
	}
	out, err = psql("wrong", s.CA, "SELECT 1")
	if err == nil || !strings.Contains(out, "password authentication failed") {
		t.Errorf("psql with a wrong password: %v\n%s", err, out)
	}
	out, err = psql("secret", "/dev/null", "SELECT 1")
	if err == nil || strings.Contains(out, "(1 row)") {
		t.Errorf("psql trusted a CA it was not given: %v\n%s", err, out)
	}
}

// pgRead reads one backend message.
func pgRead(t *testing.T, br *bufio.Reader) (byte, []byte) {
	t.Helper()
	var hdr [5]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		t.Fatalf("reading a backend message: %v", err)
	}
	body := make([]byte, binary.BigEndian.Uint32(hdr[1:])-4)
	if _, err := io.ReadFull(br, body); err != nil {
		t.Fatal(err)
	}
	return hdr[0], body
}

func cstr(s string) []byte { return append([]byte(s), 0) }

func TestPostgresAppLibraryClient(t *testing.T) {
	s := servetest.Start(t, starttls.Postgres)
	login := func(pass string) (*starttls.Conn, *bufio.Reader, byte) {
		c := s.Dial(t, starttls.Postgres)
		br := bufio.NewReader(c)
		params := "user\x00user\x00database\x00db\x00\x00"
		pkt := binary.BigEndian.AppendUint32(nil, uint32(8+len(params)))
		pkt = binary.BigEndian.AppendUint32(pkt, 3<<16)
		if _, err := c.Write(append(pkt, params...)); err != nil {
			t.Fatal(err)
		}
		if typ, body := pgRead(t, br); typ != 'R' || binary.BigEndian.Uint32(body) != 3 {
			t.Fatalf("first answer %q %q, want AuthenticationCleartextPassword", typ, body)
		}
		c.Write(append([]byte{'p', 0, 0, 0, byte(5 + len(pass))}, cstr(pass)...))
		for i := 0; i < 30; i++ {
			typ, _ := pgRead(t, br)
			if typ == 'Z' || typ == 'E' {
				return c, br, typ
			}
		}
		t.Fatal("no ReadyForQuery")
		return nil, nil, 0
	}
	if _, _, typ := login("wrong"); typ != 'E' {
		t.Errorf("wrong password: %q, want an ErrorResponse", typ)
	}
	c, br, typ := login("secret")
	if typ != 'Z' {
		t.Fatalf("login: %q", typ)
	}
	query := func(q string) string {
		msg := append([]byte{'Q'}, binary.BigEndian.AppendUint32(nil, uint32(5+len(q)))...)
		if _, err := c.Write(append(msg, cstr(q)...)); err != nil {
			t.Fatal(err)
		}
		var types []byte
		for i := 0; i < 10; i++ {
			typ, _ := pgRead(t, br)
			types = append(types, typ)
			if typ == 'Z' {
				break
			}
		}
		return string(types)
	}
	for q, want := range map[string]string{"SELECT 1": "TDCZ", "select 42;": "TDCZ", "SELECT now()": "EZ", "": "IZ"} {
		if got := query(q); got != want {
			t.Errorf("query %q: messages %q, want %q", q, got, want)
		}
	}
	c.Write([]byte{'X', 0, 0, 0, 4})
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("after Terminate: %v, want EOF", err)
	}
	// A second SSLRequest inside TLS is refused.
	again := s.Dial(t, starttls.Postgres)
	if err := again.UpgradeAgain(context.Background()); !errors.Is(err, starttls.ErrRefused) {
		t.Errorf("second SSLRequest: %v, want ErrRefused", err)
	}
}
