package smtp

import "github.com/starttls-go/starttls/internal/proto/registry"

// SMTP, submission and LMTP as check probes them: RSET pipelined after
// STARTTLS, and our own EHLO (LHLO) inside TLS as the sentinel, whose
// multi-line reply tells it from RSET's single line. hello is EHLO, or LHLO
// for LMTP.
func probes(hello string) registry.Probes {
	return registry.Probes{
		Injection: "RSET\r\n",
		Partial:   "RSET",
		Sentinel:  hello + " starttls-check\r\n",
		Judge:     registry.FirstReply(registry.Prefix("250-"), nil),
		ReplyEnds: ReplyEnds,
		Conn:      loginProbes(hello),
	}
}

// ReplyEnds reports whether line is the last line of a three-digit-code
// reply (SMTP, FTP): anything but "NNN-".
func ReplyEnds(line string) bool { return len(line) < 4 || line[3] != '-' }
