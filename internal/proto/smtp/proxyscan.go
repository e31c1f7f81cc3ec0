package smtp

import "bytes"

// The SMTP reply filter must look at every line the backend sends, but
// only a line starting with a digit from 2 to 9 can be a reply line (codes
// 200 to 999): one that starts a "250-" reply or ends a reply. A stream of
// other lines (the bulk of what a filter sees when the server sends more
// than replies) needs no look at each line: nextReplyStart finds the next
// line that could matter in one pass, 16 bytes at a time on amd64.

// nextReplyStartGeneric returns the least j >= 1 with s[j-1] == '\n' and
// s[j] a digit from '2' to '9', or -1: one IndexByte per line.
func nextReplyStartGeneric(s []byte) int {
	for i := 0; i < len(s); {
		k := bytes.IndexByte(s[i:], '\n')
		if k < 0 {
			return -1
		}
		i += k + 1
		if i < len(s) && s[i]-'2' <= 7 {
			return i
		}
	}
	return -1
}
