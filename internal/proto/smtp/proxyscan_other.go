//go:build !amd64

package smtp

// nextReplyStart returns the least j >= 1 with s[j-1] == '\n' and s[j] a
// digit from '2' to '9', or -1.
func nextReplyStart(s []byte) int { return nextReplyStartGeneric(s) }
