//go:build unix

package scan

import "syscall"

// fdLimit is the process's soft limit on open files.
func fdLimit() int {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil || l.Cur > 1<<22 {
		return 1 << 22
	}
	return int(l.Cur)
}
