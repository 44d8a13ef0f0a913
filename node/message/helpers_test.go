package message

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/packet"
	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"

	"github.com/dsep-project/dsep/address"
	"github.com/dsep-project/dsep/testnet/testtool"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestMain checks that the package's tests leave no goroutines behind.
func TestMain(m *testing.M) { testtool.Main(m, 0, 2*time.Second) }

// testNow is when the test keys are made; checkNow is when the tests seal
// and open.
var (
	testNow  = time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	checkNow = testNow.Add(time.Hour)
)

// detRand returns a deterministic entropy stream (ChaCha8) for seed. Only
// for tests: it makes generated keys reproducible.
func detRand(seed byte) io.Reader {
	var s [32]byte
	copy(s[:], "dsep message tests")
	s[31] = seed
	return mrand.NewChaCha8(s)
}

// party is a test identity: its own key (with secret) and its public key
// as others fetch it.
type party struct {
	own *address.Key
	pub *address.Key
}

func newParty(t testing.TB, name string, seed byte, now time.Time) party {
	t.Helper()
	email, err := address.ParseEmail(name + "@example.org")
	if err != nil {
		t.Fatal(err)
	}
	var r io.Reader
	if seed != 0 {
		r = detRand(seed)
	}
	k, err := address.NewIdentity(name, email, address.NewIdentityOptions{Now: now, Rand: r})
	if err != nil {
		t.Fatal(err)
	}
	return party{own: k, pub: k.PublicOnly()}
}

// cast is the usual set of parties: Alice writes to Bob; Carol is a third
// party; Mallory an attacker.
type cast struct{ alice, bob, carol, mallory party }

func newCast(t testing.TB) cast {
	t.Helper()
	return cast{
		alice:   newParty(t, "alice", 1, testNow),
		bob:     newParty(t, "bob", 2, testNow),
		carol:   newParty(t, "carol", 3, testNow),
		mallory: newParty(t, "mallory", 4, testNow),
	}
}

// lookup answers with the public keys of ps, as the DHT would, and counts
// its calls.
type lookup struct {
	keys  map[address.Fingerprint]*address.Key
	calls int
}

func newLookup(ps ...party) *lookup {
	l := &lookup{keys: map[address.Fingerprint]*address.Key{}}
	for _, p := range ps {
		l.keys[p.pub.Fingerprint()] = p.pub
	}
	return l
}

var errNotFound = errors.New("test lookup: no such key")

func (l *lookup) fn(ctx context.Context, f address.Fingerprint) (*address.Key, error) {
	l.calls++
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	k, ok := l.keys[f]
	if !ok {
		return nil, fmt.Errorf("%w: %s", errNotFound, f)
	}
	return k, nil
}

// testMail is a small RFC 5322 message.
func testMail(subject, body string) []byte {
	return []byte("From: Alice <alice@example.org>\r\n" +
		"To: Bob <bob@example.org>\r\n" +
		"Subject: " + subject + "\r\n" +
		"Date: Sun, 01 Nov 2026 10:00:00 +0000\r\n" +
		"Message-Id: <1@example.org>\r\n" +
		"\r\n" + body)
}

// withParties adds DSEP-Recipient and DSEP-Sender fields (raw, for
// payloads Seal would not write) in front of m.
func withParties(m []byte, from, to string) []byte {
	var b bytes.Buffer
	if to != "" {
		fmt.Fprintf(&b, "DSEP-Recipient: %s\r\n", to)
	}
	if from != "" {
		fmt.Fprintf(&b, "DSEP-Sender: %s\r\n", from)
	}
	b.Write(m)
	return b.Bytes()
}

// pgpConfig is a go-crypto config at now.
func pgpConfig(now time.Time) *packet.Config {
	return &packet.Config{Time: func() time.Time { return now }}
}

// signedPackets returns m, signed by signers (none: a bare literal data
// packet), as a sequence of OpenPGP packets, unencrypted.
func signedPackets(t testing.TB, m []byte, signers []*address.Key, now time.Time) []byte {
	t.Helper()
	var b bytes.Buffer
	if len(signers) == 0 {
		w, err := packet.SerializeLiteral(nopCloser{&b}, true, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(m)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	var es []*openpgp.Entity
	for _, s := range signers {
		es = append(es, s.Entity())
	}
	w, err := openpgp.Sign(&b, es, nil, pgpConfig(now))
	if err != nil {
		t.Fatal(err)
	}
	w.Write(m)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// compressed wraps packets in a ZLIB compressed data packet.
func compressed(t testing.TB, packets []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := packet.SerializeCompressed(nopCloser{&b}, packet.CompressionZLIB, &packet.CompressionConfig{Level: 9})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(packets)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// encryptPackets encrypts inner (any packet sequence) to to's encryption
// subkey with its key ID hidden, writing pkesks session key packets
// (normally 1), in SEIPD v1 with AES-256.
func encryptPackets(t testing.TB, inner []byte, to *address.Key, pkesks int) []byte {
	t.Helper()
	k, ok := to.Entity().EncryptionKey(checkNow, nil)
	if !ok {
		t.Fatal("no encryption key")
	}
	sk := make([]byte, 32)
	rand.Read(sk)
	var b bytes.Buffer
	for range pkesks {
		if err := packet.SerializeEncryptedKeyAEADwithHiddenOption(&b, k.PublicKey, packet.CipherAES256, false, sk, true, &packet.Config{}); err != nil {
			t.Fatal(err)
		}
	}
	w, err := packet.SerializeSymmetricallyEncrypted(&b, packet.CipherAES256, false, packet.CipherSuite{}, sk, &packet.Config{})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(inner)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// rawPayload is a payload Seal would not write: m exactly as given,
// signed by signers, encrypted to to.
func rawPayload(t testing.TB, m []byte, to *address.Key, signers ...*address.Key) []byte {
	t.Helper()
	return encryptPackets(t, signedPackets(t, m, signers, checkNow), to, 1)
}

// forward is Bob's surreptitious forwarding: he decrypts a payload Alice
// sealed for him and encrypts her signed mail, with her very signature,
// to Carol.
func forward(t testing.TB, payload []byte, bob, carol *address.Key) []byte {
	t.Helper()
	md, err := openpgp.ReadMessage(bytes.NewReader(payload), openpgp.EntityList{bob.Entity()}, nil, pgpConfig(checkNow))
	if err != nil {
		t.Fatal(err)
	}
	m, err := io.ReadAll(md.UnverifiedBody)
	if err != nil {
		t.Fatal(err)
	}
	var sig bytes.Buffer
	if err := md.SignatureCandidates[0].CorrespondingSig.Serialize(&sig); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	w, err := openpgp.EncryptWithParams(&out, nil, []*openpgp.Entity{carol.Entity()}, &openpgp.EncryptParams{
		OutsideSig: sig.Bytes(),
		Config:     pgpConfig(checkNow),
	})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(m)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
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
