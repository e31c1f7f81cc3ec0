package peer

import (
	"context"
	"io"
	"os"
	"os/exec"
	"testing"
	"time"
)

// SieveConnectList runs Debian's sieve-connect (bin) against localhost:port:
// STARTTLS verified against the CA file ca, AUTHENTICATE as "user" with
// pass, and LISTSCRIPTS, with the dialogue in the output (--debug). The
// password goes through a pipe on fd 3, as sieve-connect reads no
// password from its arguments.
func SieveConnectList(t testing.TB, bin, port, ca, pass string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	go func() { _, _ = io.WriteString(pw, pass+"\n"); pw.Close() }()
	cmd := exec.CommandContext(ctx, bin, "--server", "localhost", "--port", port, "--user", "user",
		"--passwordfd", "3", "--tlscafile", ca, "--list", "--debug")
	cmd.ExtraFiles = []*os.File{pr}
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	cmd.WaitDelay = 2 * time.Second
	out, err := cmd.CombinedOutput()
	return string(out), err
}
