//go:build !unix

package scan

// fdLimit is a guess where there is no getrlimit.
func fdLimit() int { return 8192 }
