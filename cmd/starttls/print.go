package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"reflect"
	"strings"
	"syscall"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/check"
)

// printer writes human output, with color only on a terminal and never
// when NO_COLOR is set (https://no-color.org).
//
// Everything a printer writes goes through termSafe: greetings, replies,
// capabilities and certificate names come from the peer, often before TLS,
// and a terminal obeys escape sequences in them (clear the screen, set the
// title, rewrite earlier lines, on some terminals write the clipboard or
// answer a query with keystrokes). Security catalogue §(b) 7, UI spoofing.
type printer struct {
	w     io.Writer
	color bool
	// ours holds the colored strings this printer made, so that line can
	// keep their escape sequences while escaping every other one.
	ours map[string]struct{}
}

// maxPainted bounds ours; past it colors degrade to escaped text, never
// to raw peer bytes.
const maxPainted = 4096

func newPrinter(w io.Writer) *printer {
	return &printer{w: w, color: useColor(w), ours: map[string]struct{}{}}
}

func useColor(w io.Writer) bool {
	if _, ok := os.LookupEnv("NO_COLOR"); ok {
		return false
	}
	return isTerminal(w)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func (p *printer) paint(code, s string) string {
	s = termSafe(s)
	if !p.color {
		return s
	}
	out := "\x1b[" + code + "m" + s + "\x1b[0m"
	if len(p.ours) < maxPainted {
		p.ours[out] = struct{}{}
	}
	return out
}

func (p *printer) red(s string) string    { return p.paint("31", s) }
func (p *printer) green(s string) string  { return p.paint("32", s) }
func (p *printer) yellow(s string) string { return p.paint("33", s) }
func (p *printer) bold(s string) string   { return p.paint("1", s) }
func (p *printer) dim(s string) string    { return p.paint("2", s) }

func (p *printer) section(title string) { fmt.Fprintf(p.w, "\n%s\n", p.bold(title)) }

// line prints one line; its string arguments (strings, named string
// types, string slices, errors) are escaped, except the colored pieces
// this printer made.
func (p *printer) line(format string, args ...any) {
	for i, a := range args {
		args[i] = p.safeArg(a)
	}
	fmt.Fprintf(p.w, format+"\n", args...)
}

func (p *printer) safeArg(a any) any {
	switch v := a.(type) {
	case nil:
		return nil
	case string:
		return p.safe(v)
	case []string:
		out := make([]string, len(v))
		for i, s := range v {
			out[i] = p.safe(s)
		}
		return out
	case error:
		return p.safe(v.Error())
	}
	rv := reflect.ValueOf(a)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64, reflect.Bool:
		// Numbers (and their String methods, such as a severity's) are
		// ours, and %d or %x must still see a number.
		return a
	}
	if v, ok := a.(fmt.Stringer); ok {
		return p.safe(v.String())
	}
	if rv.Kind() == reflect.String {
		return p.safe(rv.String())
	}
	return a
}

// safe escapes s but keeps, verbatim, any whole colored piece from
// paint: its text was escaped when it was painted. A peer that sends the
// same bytes gets nothing but that same color around clean text.
func (p *printer) safe(s string) string {
	if !p.color || !strings.Contains(s, "\x1b") {
		return termSafe(s)
	}
	var b strings.Builder
	for s != "" {
		i := strings.IndexByte(s, 0x1b)
		if i < 0 {
			b.WriteString(termSafe(s))
			break
		}
		b.WriteString(termSafe(s[:i]))
		s = s[i:]
		if j := strings.Index(s[1:], "\x1b[0m"); j >= 0 {
			if piece := s[:j+5]; p.isOurs(piece) {
				b.WriteString(piece)
				s = s[len(piece):]
				continue
			}
		}
		b.WriteString(`\x1b`)
		s = s[1:]
	}
	return b.String()
}

func (p *printer) isOurs(piece string) bool {
	_, ok := p.ours[piece]
	return ok
}

// termSafe makes text from the peer inert on a terminal: C0 controls
// (ESC, CR, LF, TAB, BEL...), DEL, C1 controls (U+0080–U+009F, which some
// terminals take as CSI/OSC), Unicode bidirectional and line-separator
// controls (they reorder or break what is displayed) and invalid UTF-8
// become visible Go-style escapes. LF is escaped too: one field must stay
// one line, or a greeting could print a forged "Verification OK" below it.
func termSafe(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			fmt.Fprintf(&b, `\x%02x`, s[i])
		} else {
			writeRuneSafe(&b, r)
		}
		i += n
	}
	return b.String()
}

// writeRuneSafe writes r, or its escape if a terminal would act on it.
func writeRuneSafe(b *strings.Builder, r rune) {
	switch {
	case r == '\t':
		b.WriteString(`\t`)
	case r == '\r':
		b.WriteString(`\r`)
	case r == '\n':
		b.WriteString(`\n`)
	case r < 0x20 || r == 0x7f:
		fmt.Fprintf(b, `\x%02x`, r)
	case unsafeRune(r):
		fmt.Fprintf(b, `\u%04x`, r)
	default:
		b.WriteRune(r)
	}
}

// unsafeRune reports the non-ASCII code points a terminal may act on or
// that change how the surrounding text is displayed.
func unsafeRune(r rune) bool {
	switch {
	case r >= 0x80 && r <= 0x9f: // C1 controls
		return true
	case r == 0x061c, r == 0x200e, r == 0x200f, // bidi marks
		r >= 0x202a && r <= 0x202e, // bidi embeddings and overrides
		r >= 0x2066 && r <= 0x2069, // bidi isolates
		r == 0x2028, r == 0x2029:   // line and paragraph separators
		return true
	}
	return false
}

// peerLines splits a transcript entry into display lines: a multi-line
// reply keeps its lines, each line's CRLF or LF ending is dropped, and a CR
// inside a line is left for termSafe to show.
func peerLines(s string) []string {
	s = strings.TrimSuffix(strings.TrimSuffix(s, "\n"), "\r")
	ls := strings.Split(s, "\n")
	for i, l := range ls {
		ls[i] = strings.TrimSuffix(l, "\r")
	}
	return ls
}

// termWriter is the interactive session's output on a terminal: the
// server's bytes pass as a text stream (LF, CRLF and TAB kept, so that a
// session reads as with openssl s_client) with every other control, C1 and
// bidi code point and invalid UTF-8 escaped as termSafe does. It holds back
// a trailing CR or a cut UTF-8 sequence until the next Write or Flush.
type termWriter struct {
	w    io.Writer
	pend []byte
	buf  strings.Builder
}

func (t *termWriter) Write(b []byte) (int, error) {
	data := b
	if len(t.pend) > 0 {
		data = append(append([]byte(nil), t.pend...), b...)
	}
	t.buf.Reset()
	i := 0
	for i < len(data) {
		c := data[i]
		if c == '\r' {
			if i+1 == len(data) {
				break // a CR alone at the end: wait to see whether LF follows
			}
			if data[i+1] == '\n' {
				t.buf.WriteString("\r\n")
				i += 2
				continue
			}
		}
		if c == '\n' || c == '\t' || (c >= 0x20 && c < 0x7f) {
			t.buf.WriteByte(c)
			i++
			continue
		}
		if c >= 0x80 && !utf8.FullRune(data[i:]) && len(data)-i < utf8.UTFMax {
			break // the rest of this rune is in the next Write
		}
		r, n := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && n == 1 {
			fmt.Fprintf(&t.buf, `\x%02x`, c)
		} else {
			writeRuneSafe(&t.buf, r)
		}
		i += n
	}
	t.pend = append(t.pend[:0], data[i:]...)
	if _, err := io.WriteString(t.w, t.buf.String()); err != nil {
		return 0, err
	}
	return len(b), nil
}

// Flush writes what Write held back, escaped, as the stream has ended.
func (t *termWriter) Flush() error {
	if len(t.pend) == 0 {
		return nil
	}
	s := termSafe(string(t.pend))
	t.pend = t.pend[:0]
	_, err := io.WriteString(t.w, s)
	return err
}

// signalContext is canceled by SIGINT or SIGTERM.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// commandContext is cmd's context (canceled by the caller of
// runContext, so that a test can stop a server) canceled also by SIGINT or
// SIGTERM.
func commandContext(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
}

// findings prints a check's or a mail report's findings, worst colour
// first, the same way in both commands.
func (p *printer) findings(fs []check.Finding) {
	p.section(fmt.Sprintf("Findings (%d)", len(fs)))
	if len(fs) == 0 {
		p.line("  none")
	}
	for _, f := range fs {
		sev := strings.ToUpper(f.Severity.String())
		switch f.Severity {
		case check.Critical, check.High:
			sev = p.red(sev)
		case check.Medium:
			sev = p.yellow(sev)
		}
		p.line("  %-8s %s: %s", sev, p.bold(f.ID), f.Title)
		p.line("           evidence: %s", f.Evidence)
		p.line("           fix: %s", f.Fix)
		if len(f.References) > 0 {
			p.line("           see: %s", strings.Join(f.References, ", "))
		}
	}
}

// transcript prints a dialogue a line at a time, each marked S: or C:
// (and [TLS] inside TLS); line escapes what the peer sent.
func (p *printer) transcript(indent string, t []starttls.Exchange) {
	for _, e := range t {
		dir := "S:"
		if e.Sent {
			dir = "C:"
		}
		if e.TLS {
			dir += " [TLS]"
		}
		for _, l := range peerLines(e.Text) {
			p.line("%s%s %s", indent, p.dim(dir), l)
		}
	}
}
