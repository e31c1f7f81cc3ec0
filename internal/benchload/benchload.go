// Package benchload is the SMTP-shaped backend that the relay benchmarks
// put behind a proxy: bench/loadgen across processes and proxy's Go
// benchmarks in one, so that both measure against the same load.
package benchload

import (
	"bufio"
	"net"
	"strconv"
	"strings"
	"time"
)

// Line is what the backend sends and a client uploads: a base64-like line
// that cannot start a reply or end a message.
var Line = []byte(strings.Repeat("QUJDRGVm", 9) + "QUJD\r\n") // 78 bytes

// maxCommands bounds one connection's loop; a benchmark sends far fewer.
const maxCommands = 1 << 20

// Serve answers one connection until QUIT, an error or idle without a
// command: greeting, EHLO, NOOP (any other verb gets 250), QUIT; DATA
// reads a dot-terminated body and drops it; BULK N reads N bytes and
// drops them; BLOB N sends N bytes of Line (whole lines). It neither
// records nor hashes, so that the relay's cost is what a benchmark sees.
func Serve(c net.Conn, idle time.Duration) {
	defer c.Close()
	br := bufio.NewReaderSize(c, 64<<10)
	bw := bufio.NewWriterSize(c, 64<<10)
	bw.WriteString("220 bench.test ESMTP\r\n")
	if bw.Flush() != nil {
		return
	}
	buf := make([]byte, 64<<10)
	for range maxCommands {
		_ = c.SetReadDeadline(time.Now().Add(idle))
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(strings.TrimRight(line, "\r\n"), " ")
		switch strings.ToUpper(verb) {
		case "EHLO":
			bw.WriteString("250-bench.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
		case "QUIT":
			bw.WriteString("221 bye\r\n")
			bw.Flush()
			return
		case "BULK":
			n, _ := strconv.ParseInt(arg, 10, 64)
			bw.WriteString("354 go\r\n")
			if bw.Flush() != nil {
				return
			}
			for n > 0 {
				k, err := br.Read(buf[:min(int64(len(buf)), n)])
				if err != nil {
					return
				}
				n -= int64(k)
			}
			bw.WriteString("250 bulk done\r\n")
		case "DATA":
			bw.WriteString("354 go\r\n")
			if bw.Flush() != nil {
				return
			}
			for {
				l, err := br.ReadSlice('\n')
				if err == bufio.ErrBufferFull {
					continue
				}
				if err != nil {
					return
				}
				if len(l) == 3 && l[0] == '.' {
					break
				}
			}
			bw.WriteString("250 data done\r\n")
		case "BLOB":
			n, _ := strconv.ParseInt(arg, 10, 64)
			for sent := int64(0); sent < n; sent += int64(len(Line)) {
				if _, err := bw.Write(Line); err != nil {
					return
				}
			}
			bw.WriteString("250 blob done\r\n")
		default:
			bw.WriteString("250 ok\r\n")
		}
		if bw.Flush() != nil {
			return
		}
	}
}
