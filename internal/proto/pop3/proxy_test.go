package pop3

import (
	"bufio"
	"io"
	"strings"
	"testing"

	"github.com/starttls-go/starttls/internal/relayq"
	"github.com/starttls-go/starttls/internal/relayq/relayqtest"
)

func TestProxyUpDown(t *testing.T) {
	q := relayq.NewQueue(nil, nil)
	up := "CAPA\r\nRETR 1\r\nLIST 1\r\nLIST\r\nAUTH PLAIN\r\ndGVzdA==\r\n"
	if err := proxyUp(io.Discard, bufio.NewReader(strings.NewReader(up)), q); err != io.EOF {
		t.Fatalf("up: %v", err)
	}
	down := "+OK\r\nSTLS\r\nUSER\r\n.\r\n" + // CAPA
		"+OK\r\nSTLS\r\n.\r\n" + // RETR: a body line, kept
		"+OK 1 100\r\n" + // LIST 1
		"+OK\r\n1 100\r\n.\r\n" + // LIST
		"+ \r\n" + // AUTH PLAIN
		"+OK logged in\r\n"
	want := "+OK\r\nUSER\r\n.\r\n+OK\r\nSTLS\r\n.\r\n+OK 1 100\r\n+OK\r\n1 100\r\n.\r\n+ \r\n+OK logged in\r\n"
	if got := relayqtest.Down(proxyDown, down, q); got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
}
