package receipt

// Interop: GnuPG 2.2 verifies a receipt's signature over
// "dsep-receipt-v1" ‖ 0x00 ‖ body with the recipient's public key alone.
// Skips (loudly) without gpg, fails under CI (see testtool.Require).

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dsep-project/dsep/testnet/testtool"
)

func TestGPGVerifiesReceipt(t *testing.T) {
	gpg := testtool.Require(t, "gpg")
	gpgconf := testtool.Require(t, "gpgconf")
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	env := []string{"HOME=" + dir, "GNUPGHOME=" + dir, "PATH=" + os.Getenv("PATH"), "LC_ALL=C", "TZ=UTC"}
	run := func(stdin []byte, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, gpg, append([]string{"--batch", "--no-tty", "--no-auto-key-retrieve", "--status-fd", "1"}, args...)...)
		cmd.Env = env
		cmd.Stdin = bytes.NewReader(stdin)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.String(), err
	}
	t.Cleanup(func() {
		cmd := exec.Command(gpgconf, "--homedir", dir, "--kill", "all")
		cmd.Env = env
		cmd.Run()
	})

	// Keys made a minute ago by the real clock: gpg refuses keys and
	// signatures from its future.
	now := time.Now().Add(-time.Minute).Truncate(time.Second)
	alice, bob := newKeyAt(t, "alice", now), newKeyAt(t, "bob", now)
	w, err := sample(alice, bob, StatusRejected, ReasonBlocked).Sign(bob, now.Add(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	s, err := Parse(w)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := run(bob.PublicOnly().Armored(), "--import"); err != nil {
		t.Fatalf("gpg --import: %v\n%s", err, out)
	}
	sigFile, dataFile := filepath.Join(dir, "receipt.sig"), filepath.Join(dir, "receipt.data")
	if err := os.WriteFile(sigFile, s.Signature, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dataFile, SigningInput(s.Body), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := run(nil, "--verify", sigFile, dataFile)
	t.Logf("gpg --verify:\n%s", out)
	if err != nil {
		t.Fatalf("gpg --verify: %v", err)
	}
	want := "VALIDSIG "
	var valid string
	for _, l := range strings.Split(out, "\n") {
		if i := strings.Index(l, want); i >= 0 {
			valid = l[i:]
		}
	}
	if f := strings.Fields(valid); len(f) == 0 || f[len(f)-1] != strings.ToUpper(bob.Fingerprint().String()) {
		t.Errorf("no VALIDSIG by Bob's key %s: %q", bob.Fingerprint(), valid)
	}
	// And not over the body without its context.
	if err := os.WriteFile(dataFile, s.Body, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := run(nil, "--verify", sigFile, dataFile); err == nil || !strings.Contains(out, "BADSIG") {
		t.Errorf("gpg accepts the signature over the bare body: %v\n%s", err, out)
	}
}
