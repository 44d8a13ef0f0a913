package receipt

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"flag"
	"io"
	mrand "math/rand/v2"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/dsep-project/dsep/address"
	"github.com/dsep-project/dsep/node/envelope"
	"github.com/dsep-project/dsep/testnet/testtool"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestMain checks that the package's tests leave no goroutines behind.
func TestMain(m *testing.M) { testtool.Main(m, 0, 2*time.Second) }

// testNow is when the test keys are made; checkNow is when receipts are
// signed and checked.
var (
	testNow  = time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	checkNow = testNow.Add(time.Hour)
)

// detRand returns a deterministic entropy stream (ChaCha8) for seed.
func detRand(seed byte) io.Reader {
	var s [32]byte
	copy(s[:], "dsep receipt tests")
	s[31] = seed
	return mrand.NewChaCha8(s)
}

// newKey makes a reproducible identity at testNow.
func newKey(t testing.TB, name string, seed byte) *address.Key {
	t.Helper()
	return makeKey(t, name, address.NewIdentityOptions{Now: testNow, Rand: detRand(seed)})
}

// newKeyAt makes a random identity at now.
func newKeyAt(t testing.TB, name string, now time.Time) *address.Key {
	t.Helper()
	return makeKey(t, name, address.NewIdentityOptions{Now: now})
}

func makeKey(t testing.TB, name string, opt address.NewIdentityOptions) *address.Key {
	t.Helper()
	email, err := address.ParseEmail(name + "@example.org")
	if err != nil {
		t.Fatal(err)
	}
	k, err := address.NewIdentity(name, email, opt)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// sample returns a receipt from bob for a message of alice's.
func sample(alice, bob *address.Key, status Status, reason string) Receipt {
	return Receipt{
		MessageID: sha256.Sum256([]byte("payload")),
		Recipient: bob.Fingerprint(),
		Sender:    alice.Fingerprint(),
		Received:  checkNow.Add(-time.Minute),
		Status:    status,
		Reason:    reason,
	}
}

func TestSignParseVerify(t *testing.T) {
	alice, bob, carol := newKey(t, "alice", 1), newKey(t, "bob", 2), newKey(t, "carol", 3)
	for _, r := range []Receipt{
		sample(alice, bob, StatusDelivered, ""),
		sample(alice, bob, StatusRejected, ReasonRevokedSender),
		sample(alice, bob, StatusRejected, strings.Repeat("x", MaxReason)),
	} {
		wire, err := r.Sign(bob, checkNow)
		if err != nil {
			t.Fatal(err)
		}
		if len(wire) > MaxSize {
			t.Errorf("%d bytes, over %d", len(wire), MaxSize)
		}
		s, err := Parse(wire)
		if err != nil {
			t.Fatal(err)
		}
		if s.Receipt != r {
			t.Errorf("parsed %+v, want %+v", s.Receipt, r)
		}
		if !bytes.Equal(s.Marshal(), wire) {
			t.Error("Marshal(Parse(wire)) != wire")
		}
		if err := s.Verify(bob.PublicOnly(), checkNow); err != nil {
			t.Errorf("Verify: %v", err)
		}
		if err := s.Verify(carol.PublicOnly(), checkNow); !errors.Is(err, ErrWrongRecipient) {
			t.Errorf("Verify with Carol's key: %v", err)
		}
		if err := s.Verify(bob.PublicOnly(), r.Received.Add(-MaxClockSkew-time.Second)); !errors.Is(err, ErrFuture) {
			t.Errorf("Verify before it was received: %v", err)
		}
		// Carol signs a receipt in Bob's name: the signature is hers.
		forged := &Signed{Receipt: s.Receipt, Body: s.Body}
		forged.Signature, err = carol.SignDetached(signingContext, s.Body, checkNow)
		if err != nil {
			t.Fatal(err)
		}
		if err := forged.Verify(bob.PublicOnly(), checkNow); !errors.Is(err, ErrBadSignature) {
			t.Errorf("Verify Carol's signature as Bob's: %v", err)
		}
		// Bob's signature over the body in another context does not count.
		other := &Signed{Receipt: s.Receipt, Body: s.Body}
		other.Signature, err = bob.SignDetached("dsep-delegation-v1\x00", s.Body, checkNow)
		if err != nil {
			t.Fatal(err)
		}
		if err := other.Verify(bob.PublicOnly(), checkNow); !errors.Is(err, ErrBadSignature) {
			t.Errorf("Verify a signature in another context: %v", err)
		}
	}
	// Sign fills in the recipient and the time.
	r := sample(alice, bob, StatusDelivered, "")
	r.Recipient, r.Received = address.Fingerprint{}, time.Time{}
	wire, err := r.Sign(bob, checkNow.Add(500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	s, err := Parse(wire)
	if err != nil || s.Receipt.Recipient != bob.Fingerprint() || !s.Receipt.Received.Equal(checkNow) {
		t.Errorf("Sign with zero recipient and time: %+v, %v", s, err)
	}
	// A receipt signed before a soft revocation of Bob's key stays valid.
	rev, err := address.Revoke(bob, address.ReasonRetired, "", checkNow.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	revoked := bob.PublicOnly()
	if err := revoked.AddRevocation(rev); err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(revoked, checkNow.Add(2*time.Hour)); err != nil {
		t.Errorf("Verify a receipt signed before a soft revocation: %v", err)
	}
}

func TestSignErrors(t *testing.T) {
	alice, bob := newKey(t, "alice", 1), newKey(t, "bob", 2)
	good := sample(alice, bob, StatusDelivered, "")
	tests := []struct {
		name string
		r    Receipt
		k    *address.Key
		want error // nil: any error
	}{
		{"public key only", good, bob.PublicOnly(), nil},
		{"another recipient", good, alice, ErrWrongRecipient},
		{"unknown status", func() Receipt { r := good; r.Status = 3; return r }(), bob, ErrMalformed},
		{"no status", func() Receipt { r := good; r.Status = 0; return r }(), bob, ErrMalformed},
		{"delivered with a reason", func() Receipt { r := good; r.Reason = "x"; return r }(), bob, ErrMalformed},
		{"rejected without a reason", func() Receipt { r := good; r.Status = StatusRejected; return r }(), bob, ErrMalformed},
		{"reason too long", func() Receipt {
			r := good
			r.Status, r.Reason = StatusRejected, strings.Repeat("x", MaxReason+1)
			return r
		}(), bob, ErrMalformed},
		{"reason upper-case", func() Receipt { r := good; r.Status, r.Reason = StatusRejected, "Blocked"; return r }(), bob, ErrMalformed},
		{"reason with a space", func() Receipt { r := good; r.Status, r.Reason = StatusRejected, "no way"; return r }(), bob, ErrMalformed},
		{"no sender", func() Receipt { r := good; r.Sender = address.Fingerprint{}; return r }(), bob, ErrMalformed},
		{"received before 1970", func() Receipt { r := good; r.Received = time.Unix(-5, 0); return r }(), bob, ErrMalformed},
		{"received too late", func() Receipt { r := good; r.Received = time.Unix(maxUnix+1, 0); return r }(), bob, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.r.Sign(tt.k, checkNow)
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Fatalf("Sign: %v, want %v", err, tt.want)
			}
		})
	}
}

// wire builds protobuf fields for malformed inputs.
type wire []byte

func (w wire) varint(num protowire.Number, v uint64) wire {
	b := protowire.AppendTag([]byte(w), num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func (w wire) bytes(num protowire.Number, v []byte) wire {
	b := protowire.AppendTag([]byte(w), num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

func (w wire) raw(b ...byte) wire { return append(w, b...) }

func TestParseRejects(t *testing.T) {
	alice, bob := newKey(t, "alice", 1), newKey(t, "bob", 2)
	good, err := sample(alice, bob, StatusRejected, ReasonBlocked).Sign(bob, checkNow)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Parse(good)
	if err != nil {
		t.Fatal(err)
	}
	sig := s.Signature
	id := sha256.Sum256([]byte("x"))
	af, bf := alice.Fingerprint(), bob.Fingerprint()
	// body returns a body with the fields up to (not including) field
	// stop, in order.
	body := func(stop protowire.Number) wire {
		w := wire(nil)
		for _, f := range []func(wire) wire{
			func(w wire) wire { return w.varint(1, 1) },
			func(w wire) wire { return w.bytes(2, id[:]) },
			func(w wire) wire { return w.bytes(3, bf[:]) },
			func(w wire) wire { return w.bytes(4, af[:]) },
			func(w wire) wire { return w.varint(5, uint64(checkNow.Unix())) },
			func(w wire) wire { return w.varint(6, 1) },
		}[:stop-1] {
			w = f(w)
		}
		return w
	}
	full := body(7)
	signed := func(b wire) []byte { return wire(nil).bytes(1, b).bytes(2, sig) }
	if _, err := Parse(signed(full)); err != nil {
		t.Fatalf("the table's base receipt does not parse: %v", err)
	}

	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrMalformed},
		{"garbage", []byte("not a receipt"), ErrMalformed},
		{"over MaxSize", wire(nil).bytes(1, full).bytes(2, make([]byte, MaxSize)), ErrTooLarge},
		{"truncated", good[:len(good)-1], ErrMalformed},
		{"trailing byte", append(bytes.Clone(good), 0), ErrMalformed},
		{"no signature", wire(nil).bytes(1, full), ErrMalformed},
		{"empty signature", wire(nil).bytes(1, full).bytes(2, nil), ErrMalformed},
		{"signature too long", wire(nil).bytes(1, full).bytes(2, make([]byte, MaxSignature+1)), ErrMalformed},
		{"no body", wire(nil).bytes(2, sig), ErrMalformed},
		{"fields swapped", wire(nil).bytes(2, sig).bytes(1, full), ErrMalformed},
		{"body twice", wire(nil).bytes(1, full).bytes(1, full).bytes(2, sig), ErrMalformed},
		{"unknown outer field", wire(nil).bytes(1, full).bytes(2, sig).bytes(3, nil), ErrMalformed},
		{"outer varint", wire(nil).varint(1, 5).bytes(2, sig), ErrMalformed},
		{"non-minimal outer length", wire(nil).raw(0x0a, 0x80|byte(len(full)), 0x00).raw(full...).bytes(2, sig), ErrMalformed},
		{"field number 0", wire(nil).raw(0x02, 0x00), ErrMalformed},
		{"fixed64 field", wire(nil).raw(0x09, 1, 2, 3, 4, 5, 6, 7, 8), ErrMalformed},
		{"version 2", signed(wire(nil).varint(1, 2).raw(full[2:]...)), ErrVersion},
		{"no version", signed(full[2:]), ErrMalformed},
		{"short message ID", signed(body(2).bytes(2, id[:31]).raw(body(7)[len(body(3)):]...)), ErrMalformed},
		{"long recipient", signed(body(3).bytes(3, append(bf[:], 0)).raw(body(7)[len(body(4)):]...)), ErrMalformed},
		{"no received", signed(body(5).varint(6, 1)), ErrMalformed},
		{"no status", signed(body(6)), ErrMalformed},
		{"status 3", signed(body(6).varint(6, 3)), ErrMalformed},
		{"status 257", signed(body(6).varint(6, 257)), ErrMalformed},
		{"received 0", signed(body(5).varint(5, 0).varint(6, 1)), ErrMalformed},
		{"received past 2^40", signed(body(5).varint(5, maxUnix+1).varint(6, 1)), ErrMalformed},
		{"reason with delivered", signed(full.bytes(7, []byte("blocked"))), ErrMalformed},
		{"rejected without reason", signed(body(6).varint(6, 2)), ErrMalformed},
		{"empty reason", signed(body(6).varint(6, 2).bytes(7, nil)), ErrMalformed},
		{"reason too long", signed(body(6).varint(6, 2).bytes(7, bytes.Repeat([]byte("x"), MaxReason+1))), ErrMalformed},
		{"reason not a token", signed(body(6).varint(6, 2).bytes(7, []byte("Blocked!"))), ErrMalformed},
		{"unknown body field", signed(full.varint(8, 0)), ErrMalformed},
		{"body field repeated", signed(full.varint(6, 1)), ErrMalformed},
		{"body fields out of order", signed(body(5).varint(6, 1).varint(5, uint64(checkNow.Unix()))), ErrMalformed},
		{"body field of wrong type", signed(body(5).bytes(5, []byte{1}).varint(6, 1)), ErrMalformed},
		{"non-minimal varint", signed(body(6).raw(0x30, 0x81, 0x00)), ErrMalformed},
		{"body truncated", signed(full[:len(full)-1]), ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Parse(tt.in)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Parse = %+v, %v; want %v", s, err, tt.want)
			}
		})
	}
}

// TestVerifyRejects changes a signed receipt after the fact.
func TestVerifyRejects(t *testing.T) {
	alice, bob := newKey(t, "alice", 1), newKey(t, "bob", 2)
	good, err := sample(alice, bob, StatusDelivered, "").Sign(bob, checkNow)
	if err != nil {
		t.Fatal(err)
	}
	pub := bob.PublicOnly()
	// Every single-bit change either fails to parse or fails to verify.
	for i := range good {
		for bit := range 8 {
			bad := bytes.Clone(good)
			bad[i] ^= 1 << bit
			s, err := Parse(bad)
			if err != nil {
				continue
			}
			if err := s.Verify(pub, checkNow); err == nil {
				t.Errorf("byte %d bit %d flipped: the receipt still verifies", i, bit)
			}
		}
	}
	// A receipt made with the body of another one does not verify.
	s, _ := Parse(good)
	other, err := sample(alice, bob, StatusRejected, ReasonBlocked).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	swapped := &Signed{Body: other, Signature: s.Signature}
	if s2, err := Parse(swapped.Marshal()); err != nil {
		t.Fatal(err)
	} else if err := s2.Verify(pub, checkNow); !errors.Is(err, ErrBadSignature) {
		t.Errorf("Verify a signature over another body: %v", err)
	}
}

// envelopeID checks that a message ID is the envelope's.
var _ envelope.ID = Receipt{}.MessageID
