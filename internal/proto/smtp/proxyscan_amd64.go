package smtp

// replyStartBlocks tests the pairs (s[i], s[i+1]) for i from 0 in blocks of
// 16 while a whole block fits, with SSE2 (part of amd64's baseline): j is
// the least i+1 whose pair is a line end followed by a digit from '2' to
// '9' (-1 if none), scanned the number of pairs tested.
//
//go:noescape
func replyStartBlocks(s []byte) (j, scanned int)

// nextReplyStart returns the least j >= 1 with s[j-1] == '\n' and s[j] a
// digit from '2' to '9', or -1.
func nextReplyStart(s []byte) int {
	j, i := replyStartBlocks(s)
	if j >= 0 {
		return j
	}
	for ; i+1 < len(s); i++ {
		if s[i] == '\n' && s[i+1]-'2' <= 7 {
			return i + 1
		}
	}
	return -1
}
