package record

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/dsep-project/dsep/address"
	"github.com/dsep-project/dsep/testnet/testtool"
)

// TestRecordSignaturesGPG checks that record signatures are ordinary
// OpenPGP detached signatures over SigningInput, as GnuPG 2.2 verifies
// them: a second implementation can check records with any OpenPGP
// library that verifies at packet level.
func TestRecordSignaturesGPG(t *testing.T) {
	now := time.Now().Add(-time.Minute).Truncate(time.Second)
	alice, err := address.NewIdentity("Alice", mustEmail(t, "alice@example.org"), address.NewIdentityOptions{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	ss, err := alice.SigningSubkey(now)
	if err != nil {
		t.Fatal(err)
	}
	keyK, keyV, err := NewKey(alice, 1, now, 0)
	if err != nil {
		t.Fatal(err)
	}
	reachK, reachV, err := NewReach(alice, Reach{}, 1, now, 0)
	if err != nil {
		t.Fatal(err)
	}
	// GnuPG applies key-usage rules to data signatures, and the primary is
	// certify-only. To show that the primary's record signature is an
	// ordinary signature all the same, a second home holds a copy of the
	// key whose self-signature also grants the primary the signing flag
	// (same key material, so the same signatures verify).
	usable := alice.Clone()
	e := usable.Entity()
	for _, id := range e.Identities {
		self := id.SelfCertifications[0].Packet
		self.FlagSign = true
		if err := self.SignUserId(id.Name, e.PrimaryKey, e.PrivateKey, &packet.Config{Time: func() time.Time { return now }}); err != nil {
			t.Fatal(err)
		}
	}

	stock, relaxed := newGPGHome(t, alice.PublicOnly().Bytes()), newGPGHome(t, usable.PublicOnly().Bytes())
	for _, c := range []struct {
		name, key string
		value     []byte
		signer    address.Fingerprint
		home      *gpgHome
	}{
		{"key record, signed by the primary", keyK, keyV, alice.Fingerprint(), relaxed},
		{"reach record, signed by the subkey", reachK, reachV, ss.Subkey.Fingerprint(), stock},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := mustVerify(t, c.key, c.value, now)
			out, err := c.home.verify(SigningInput(v.Type, v.Signed.Raw), v.Signed.Signature)
			want := "VALIDSIG " + strings.ToUpper(c.signer.String())
			if err != nil || !strings.Contains(out, want) {
				t.Fatalf("gpg --verify: %v, want %q in\n%s", err, want, out)
			}
			// The namespace is part of what is signed.
			if out, err := c.home.verify(SigningInput(EmailType, v.Signed.Raw), v.Signed.Signature); err == nil || !strings.Contains(out, "BADSIG") {
				t.Fatalf("gpg accepted the signature for another namespace:\n%s", out)
			}
		})
	}
	// Stock GnuPG refuses the primary's data signature for its key usage,
	// which is why verifiers check record signatures at packet level.
	v := mustVerify(t, keyK, keyV, now)
	if out, err := stock.verify(SigningInput(KeyType, v.Signed.Raw), v.Signed.Signature); err == nil || !strings.Contains(out, "Wrong key usage") {
		t.Fatalf("gpg on a certify-only primary's signature: %v\n%s", err, out)
	}
}

// gpgHome is a throw-away GnuPG home holding one public key.
type gpgHome struct {
	t        *testing.T
	gpg, dir string
	env      []string
}

func newGPGHome(t *testing.T, key []byte) *gpgHome {
	t.Helper()
	gpg := testtool.Require(t, "gpg")
	gpgconf := testtool.Require(t, "gpgconf")
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	h := &gpgHome{t: t, gpg: gpg, dir: dir, env: []string{"HOME=" + dir, "GNUPGHOME=" + dir, "PATH=" + os.Getenv("PATH"), "LC_ALL=C", "TZ=UTC"}}
	t.Cleanup(func() {
		cmd := exec.Command(gpgconf, "--homedir", dir, "--kill", "all")
		cmd.Env = h.env
		cmd.Run()
	})
	if out, err := h.run(key, "--import"); err != nil {
		t.Fatalf("gpg --import: %v\n%s", err, out)
	}
	return h
}

func (h *gpgHome) run(stdin []byte, args ...string) (string, error) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.gpg, append([]string{"--batch", "--no-tty", "--status-fd", "1"}, args...)...)
	cmd.Env = h.env
	cmd.Stdin = bytes.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// verify runs gpg --verify on a detached signature of data.
func (h *gpgHome) verify(data, sig []byte) (string, error) {
	h.t.Helper()
	d, s := filepath.Join(h.dir, "input"), filepath.Join(h.dir, "input.sig")
	if err := os.WriteFile(d, data, 0o600); err != nil {
		h.t.Fatal(err)
	}
	if err := os.WriteFile(s, sig, 0o600); err != nil {
		h.t.Fatal(err)
	}
	return h.run(nil, "--verify", s, d)
}
