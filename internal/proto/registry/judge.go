package registry

import "strings"

// Prefix matches a line that starts with one of prefixes; PrefixFold
// ignores case.
func Prefix(prefixes ...string) func(string) bool {
	return func(line string) bool {
		for _, p := range prefixes {
			if strings.HasPrefix(line, p) {
				return true
			}
		}
		return false
	}
}

// PrefixFold is Prefix ignoring case.
func PrefixFold(prefixes ...string) func(string) bool {
	upper := Prefix(prefixes...)
	return func(line string) bool { return upper(strings.ToUpper(line)) }
}

// Contains matches a line that holds s.
func Contains(s string) func(string) bool {
	return func(line string) bool { return strings.Contains(line, s) }
}

// FirstReply is a Probes.Judge for protocols whose replies the probe
// tells apart by their first line: the first reply answers the sentinel
// when ours matches it, the pipelined command when pipelined does (nil:
// never); anything else is Undecided.
func FirstReply(ours, pipelined func(string) bool) func(line string, replies int, capa bool) int {
	return func(line string, replies int, _ bool) int {
		switch {
		case replies > 0:
		case ours != nil && ours(line):
			return Ours
		case pipelined != nil && pipelined(line):
			return Pipelined
		}
		return Undecided
	}
}

// Marked is a Probes.Judge for protocols that echo a token of the
// command (IMAP tags, IRC PING tokens): a line matching ours answers the
// sentinel, one matching pipelined the pipelined command, and any other
// line is not a reply (Ignore).
func Marked(ours, pipelined func(string) bool) func(line string, replies int, capa bool) int {
	return func(line string, _ int, _ bool) int {
		switch {
		case ours(line):
			return Ours
		case pipelined(line):
			return Pipelined
		}
		return Ignore
	}
}
