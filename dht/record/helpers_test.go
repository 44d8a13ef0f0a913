package record

import (
	"bytes"
	"errors"
	"flag"
	"github.com/dsep-project/dsep/testnet/testtool"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dsep-project/dsep/address"
	p2pcrypto "github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestMain checks that the package's tests leave no goroutines behind.
func TestMain(m *testing.M) { testtool.Main(m, 0, 2*time.Second) }

// testNow is when the test keys are made; records are checked a little
// later, at checkAt.
var (
	testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	checkAt = testNow.Add(3 * time.Hour)
)

// sentinels lists every error Verify may wrap; a rejection must wrap
// exactly the expected one.
var sentinels = []error{
	ErrTooLarge, ErrMalformed, ErrWrongNamespace, ErrVersion, ErrUnsigned, ErrExpired, ErrFuture,
	ErrLifetime, ErrBadSignature, ErrNameMismatch, ErrThirdParty, ErrBadKey, ErrBadRevocation,
	ErrBadBinding, ErrBadCertification, ErrCertificationExpired,
}

// wantErr fails t unless err wraps want and no other sentinel.
func wantErr(t testing.TB, err, want error) {
	t.Helper()
	if err == nil {
		t.Fatalf("accepted, want %v", want)
	}
	if !errors.Is(err, want) {
		t.Fatalf("error %q does not wrap %q", err, want)
	}
	for _, s := range sentinels {
		if s != want && errors.Is(err, s) {
			t.Fatalf("error %q wraps %q as well as %q", err, s, want)
		}
	}
}

// detRand returns a deterministic entropy stream (ChaCha8) for seed.
func detRand(seed byte) io.Reader {
	var s [32]byte
	copy(s[:], "dsep dht record tests")
	s[31] = seed
	return rand.NewChaCha8(s)
}

func mustEmail(t testing.TB, s string) address.Email {
	t.Helper()
	e, err := address.ParseEmail(s)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// newUser makes an identity at testNow; rnd may be nil.
func newUser(t testing.TB, name, email string, rnd io.Reader) *address.Key {
	t.Helper()
	k, err := address.NewIdentity(name, mustEmail(t, email), address.NewIdentityOptions{Now: testNow, Rand: rnd})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// newDomain makes a domain key at testNow; rnd may be nil.
func newDomain(t testing.TB, domain string, rnd io.Reader) *address.Key {
	t.Helper()
	k, err := address.NewDomainKey(domain, address.NewIdentityOptions{Now: testNow, Rand: rnd})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// certify returns user with its User ID for email certified by domain at
// testNow for life (0: the default year).
func certify(t testing.TB, user, domain *address.Key, email string, life time.Duration) *address.Key {
	t.Helper()
	uid, ok := user.UserIDFor(mustEmail(t, email), testNow)
	if !ok {
		t.Fatalf("no User ID for %s", email)
	}
	c, err := address.Certify(user, uid, domain, testNow, life)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newPeer returns a libp2p Ed25519 peer ID; rnd may be nil.
func newPeer(t testing.TB, rnd io.Reader) peer.ID {
	t.Helper()
	_, pub, err := p2pcrypto.GenerateEd25519Key(rnd)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func mustAddr(t testing.TB, s string) multiaddr.Multiaddr {
	t.Helper()
	m, err := multiaddr.NewMultiaddr(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// signer returns a signing function for Sign: by k's primary or signing
// subkey at testNow.
func byPrimary(k *address.Key) func([]byte) ([]byte, error) {
	return func(msg []byte) ([]byte, error) { return k.SignWithPrimary(msg, testNow) }
}

func bySubkey(k *address.Key) func([]byte) ([]byte, error) {
	return func(msg []byte) ([]byte, error) { return k.SignWithSigningSubkey(msg, testNow) }
}

// rec returns a valid-looking record of type t at testNow for a week.
func rec(t Type, seq uint64, body []byte) Record {
	return Record{Type: t, Version: Version, Seq: seq, NotBefore: testNow, EOL: testNow.Add(DefaultTTL), Body: body}
}

func mustSign(t testing.TB, r Record, sign func([]byte) ([]byte, error)) []byte {
	t.Helper()
	v, err := Sign(r, sign)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func mustVerify(t testing.TB, key string, value []byte, now time.Time) *Verified {
	t.Helper()
	v, err := Verify(key, value, now)
	if err != nil {
		t.Fatalf("Verify(%s): %v", key, err)
	}
	return v
}

// golden compares got with testdata/name, or rewrites the file under
// -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("rewrote %s", path)
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (run go test -update if the change is intended)", path)
	}
}
