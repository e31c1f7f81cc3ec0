package scan

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"

	"github.com/mattn/go-isatty"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/starttls-go/starttls"
)

// IsTerminal reports whether fd is a terminal (the progress bar's condition).
func IsTerminal(fd uintptr) bool { return isatty.IsTerminal(fd) || isatty.IsCygwinTerminal(fd) }

// Bar is a progress bar with rate, ETA (when the total is known) and the
// outcome counts. Use it only on a terminal.
type Bar struct {
	p      *mpb.Progress
	bar    *mpb.Bar
	mu     sync.Mutex
	counts map[starttls.Status]int64
}

// NewBar draws on w; total 0 means unknown (no ETA).
func NewBar(w io.Writer, total int64) *Bar {
	b := &Bar{counts: map[starttls.Status]int64{}}
	b.p = mpb.New(mpb.WithOutput(w), mpb.WithWidth(40))
	b.bar = b.p.New(total, mpb.BarStyle(),
		mpb.PrependDecorators(decor.CountersNoUnit("%d / %d", decor.WCSyncWidth), decor.AverageSpeed(0, " %.0f/s")),
		mpb.AppendDecorators(decor.OnComplete(decor.AverageETA(decor.ET_STYLE_GO), "done"), decor.Any(func(decor.Statistics) string { return " " + b.outcomes() })),
	)
	if total <= 0 {
		b.bar.SetTotal(-1, false)
	}
	return b
}

func (b *Bar) outcomes() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var parts []string
	for k, v := range b.counts {
		parts = append(parts, fmt.Sprintf("%s %d", k, v))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

// Done counts one finished target.
func (b *Bar) Done(s starttls.Status) {
	b.mu.Lock()
	b.counts[s]++
	b.mu.Unlock()
	b.bar.Increment()
}

// Finish completes the bar and waits for its last frame.
func (b *Bar) Finish() {
	b.bar.SetTotal(-1, true)
	b.p.Wait()
}
