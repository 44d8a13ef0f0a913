package message

// Interop tests: GnuPG 2.2 opens the payloads Seal writes, and Open opens
// the ones gpg writes, in a fresh home directory, never touching the
// network. They skip (loudly) when gpg is missing, and fail instead under
// CI (see testtool.Require).

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

const (
	// toolTimeout bounds every single invocation of gpg.
	toolTimeout = 30 * time.Second
	// exportPassphrase protects the secret keys handed to gpg.
	exportPassphrase = "correct horse battery staple"
)

// gpgHome is a throw-away GnuPG home directory.
type gpgHome struct {
	t   *testing.T
	gpg string
	dir string
	env []string
}

// newGPG returns a fresh GnuPG home (mode 0700) whose gpg-agent is killed
// when the test ends.
func newGPG(t *testing.T) *gpgHome {
	t.Helper()
	gpg := testtool.Require(t, "gpg")
	gpgconf := testtool.Require(t, "gpgconf")
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	conf := "no-auto-key-retrieve\nauto-key-locate local\nkeyserver hkp://127.0.0.1:1\ntrust-model always\n"
	if err := os.WriteFile(filepath.Join(dir, "gpg.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "gpg-agent.conf"), []byte("allow-loopback-pinentry\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h := &gpgHome{t: t, gpg: gpg, dir: dir, env: []string{
		"HOME=" + dir, "GNUPGHOME=" + dir, "PATH=" + os.Getenv("PATH"), "LC_ALL=C", "LANGUAGE=C", "TZ=UTC",
	}}
	// Registered after t.TempDir, so it runs before the directory is
	// removed (cleanups run last-in, first-out).
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, gpgconf, "--homedir", dir, "--kill", "all")
		cmd.Env = h.env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Logf("gpgconf --kill all: %v\n%s", err, out)
		}
	})
	return h
}

// gpgResult is the outcome of one gpg run.
type gpgResult struct {
	stdout, stderr []byte
	status         []string // the --status-file lines, without "[GNUPG:] "
}

// statusLine returns the first status line with keyword, split in fields.
func (r gpgResult) statusLine(keyword string) ([]string, bool) {
	for _, l := range r.status {
		if f := strings.Fields(l); len(f) > 0 && f[0] == keyword {
			return f, true
		}
	}
	return nil, false
}

// run runs gpg in batch mode with args and stdin, and fails the test on a
// non-zero exit.
func (h *gpgHome) run(stdin []byte, args ...string) gpgResult {
	h.t.Helper()
	statusFile := filepath.Join(h.dir, "status.txt")
	full := append([]string{
		"--batch", "--no-tty", "--pinentry-mode", "loopback", "--passphrase", exportPassphrase,
		"--status-file", statusFile,
	}, args...)
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.gpg, full...)
	cmd.Env = h.env
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := gpgResult{stdout: stdout.Bytes(), stderr: stderr.Bytes()}
	if st, rerr := os.ReadFile(statusFile); rerr == nil {
		for _, l := range strings.Split(string(st), "\n") {
			if l = strings.TrimPrefix(l, "[GNUPG:] "); l != "" {
				res.status = append(res.status, l)
			}
		}
	}
	os.Remove(statusFile)
	if err != nil {
		h.t.Fatalf("gpg %s: %v\nstderr:\n%s\nstatus:\n%s", strings.Join(args, " "), err, res.stderr, strings.Join(res.status, "\n"))
	}
	return res
}

// interopCast makes Alice and Bob a minute ago by the real clock, so that
// gpg sees nothing made in the future, and gives gpg Alice's public key and
// Bob's secret key (or, with reverse, Bob's public and Alice's secret).
func interopCast(t *testing.T, g *gpgHome, reverse bool) (alice, bob party, now time.Time) {
	t.Helper()
	made := time.Now().Add(-time.Minute).Truncate(time.Second)
	alice, bob = newParty(t, "alice", 0, made), newParty(t, "bob", 0, made)
	pub, sec := alice, bob
	if reverse {
		pub, sec = bob, alice
	}
	exported, err := sec.own.ExportSecret([]byte(exportPassphrase))
	if err != nil {
		t.Fatal(err)
	}
	g.run(pub.pub.Armored(), "--import")
	g.run(exported, "--import")
	return alice, bob, made.Add(30 * time.Second)
}

func TestGPGOpensPayload(t *testing.T) {
	g := newGPG(t)
	alice, bob, now := interopCast(t, g, false)
	payload := seal(t, testMail("for gpg", "Hello Bob, from DSEP.\r\n"), alice, bob, now)
	res := g.run(payload, "--decrypt")
	t.Logf("gpg --decrypt status:\n%s", strings.Join(res.status, "\n"))
	for _, kw := range []string{"DECRYPTION_OKAY", "GOODMDC", "GOODSIG"} {
		if _, ok := res.statusLine(kw); !ok {
			t.Errorf("gpg reports no %s", kw)
		}
	}
	// VALIDSIG <signing key fpr> … <primary key fpr>
	if f, ok := res.statusLine("VALIDSIG"); !ok || f[len(f)-1] != strings.ToUpper(alice.pub.Fingerprint().String()) {
		t.Errorf("VALIDSIG %q, want one by Alice's key %s", f, alice.pub.Fingerprint())
	}
	if f, ok := res.statusLine("DECRYPTION_KEY"); !ok || f[2] != strings.ToUpper(bob.pub.Fingerprint().String()) {
		t.Errorf("DECRYPTION_KEY %q, want Bob's key %s", f, bob.pub.Fingerprint())
	}
	// The recipient's key ID is hidden.
	if f, ok := res.statusLine("ENC_TO"); !ok || f[1] != "0000000000000000" {
		t.Errorf("ENC_TO %q, want the hidden key ID 0000000000000000", f)
	}
	for _, want := range []string{
		"DSEP-Recipient: " + bob.pub.Fingerprint().String() + "\r\n",
		"DSEP-Sender: " + alice.pub.Fingerprint().String() + "\r\n",
		"\r\n\r\nHello Bob, from DSEP.\r\n",
	} {
		if !bytes.Contains(res.stdout, []byte(want)) {
			t.Errorf("gpg's output lacks %q:\n%s", want, res.stdout)
		}
	}
}

func TestOpenGPGPayload(t *testing.T) {
	g := newGPG(t)
	alice, bob, now := interopCast(t, g, true)
	m := withParties(testMail("from gpg", "Hello Bob, from gpg.\r\n"), alice.pub.Fingerprint().String(), bob.pub.Fingerprint().String())
	// gpg compresses by default; --hidden-recipient hides the key ID.
	res := g.run(m, "--local-user", alice.pub.Fingerprint().String(), "--sign", "--encrypt",
		"--hidden-recipient", bob.pub.Fingerprint().String())
	o, err := Open(context.Background(), res.stdout, OpenOptions{Own: bob.own, Lookup: newLookup(alice).fn, Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(o.Mail, m) || o.Sender != alice.pub.Fingerprint() || !o.SignedAt.After(now.Add(-time.Minute)) {
		t.Errorf("opened %q from %s signed at %s", o.Mail, o.Sender, o.SignedAt)
	}
	// gpg's message to another DSEP recipient is refused.
	m2 := withParties(testMail("from gpg", "for Carol\r\n"), alice.pub.Fingerprint().String(), strings.Repeat("ab", 20))
	res = g.run(m2, "--local-user", alice.pub.Fingerprint().String(), "--sign", "--encrypt",
		"--hidden-recipient", bob.pub.Fingerprint().String())
	if _, err := Open(context.Background(), res.stdout, OpenOptions{Own: bob.own, Lookup: newLookup(alice).fn}); err == nil ||
		!strings.Contains(err.Error(), "another recipient") {
		t.Errorf("Open a gpg payload for another recipient: %v", err)
	}
}
