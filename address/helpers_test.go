package address

import (
	"bytes"
	"flag"
	"github.com/dsep-project/dsep/testnet/testtool"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	p2pcrypto "github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestMain checks that the package's tests leave no goroutines behind.
func TestMain(m *testing.M) { testtool.Main(m, 0, 2*time.Second) }

// detRand returns a deterministic entropy stream (ChaCha8) for seed. Only
// for tests: it makes generated keys reproducible.
func detRand(seed byte) io.Reader {
	var s [32]byte
	copy(s[:], "dsep address tests")
	s[31] = seed
	return rand.NewChaCha8(s)
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
		t.Errorf("%s differs from the golden file (run go test -update if the change is intended)\n got: %q\nwant: %q", path, got, want)
	}
}

// newPeer returns a real libp2p peer ID (Ed25519).
func newPeer(t testing.TB) peer.ID {
	t.Helper()
	_, pub, err := p2pcrypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// fpr returns a fixed fingerprint whose bytes are seed, seed+1, ….
func fpr(seed byte) Fingerprint {
	var f Fingerprint
	for i := range f {
		f[i] = seed + byte(i)
	}
	return f
}

// reparse returns k as another party sees it: its public serialization
// read back (so no verification result is cached in it).
func reparse(t testing.TB, k *Key) *Key {
	t.Helper()
	p, err := ReadKey(bytes.NewReader(k.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	return p
}
