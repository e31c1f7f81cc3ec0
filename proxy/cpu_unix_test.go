//go:build unix

package proxy

import (
	"syscall"
	"time"
)

// processCPU is the CPU time (user and system) of the whole test process:
// on a shared machine CPU per operation is steadier than wall time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
