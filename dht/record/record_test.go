package record

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dsep-project/dsep/address"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
	"google.golang.org/protobuf/encoding/protowire"
)

// world holds the keys most tests need.
type world struct {
	alice, bob, dom, dom2 *address.Key
	aliceCert             *address.Key // alice, certified by dom
	email                 address.Email
	uid                   string
	dev, mbox             peer.ID
}

func newWorld(t testing.TB) *world {
	t.Helper()
	w := &world{
		alice: newUser(t, "Alice", "alice@example.org", nil),
		bob:   newUser(t, "Bob", "bob@example.org", nil),
		dom:   newDomain(t, "example.org", nil),
		dom2:  newDomain(t, "example.org", nil),
		email: mustEmail(t, "alice@example.org"),
		uid:   "Alice <alice@example.org>",
		dev:   newPeer(t, nil),
		mbox:  newPeer(t, nil),
	}
	w.aliceCert = certify(t, w.alice, w.dom, "alice@example.org", 0)
	return w
}

func (w *world) reach() Reach {
	return Reach{
		Delegations: []address.Delegation{
			{Peer: w.dev, Role: address.RoleDevice, NotAfter: testNow.Add(90 * 24 * time.Hour)},
			{Peer: w.mbox, Role: address.RoleMailbox, NotAfter: testNow.Add(30 * 24 * time.Hour)},
		},
		Addrs: map[peer.ID][]multiaddr.Multiaddr{
			w.mbox: {multiaddr.StringCast("/ip4/192.0.2.7/tcp/4001"), multiaddr.StringCast("/ip6/2001:db8::7/udp/4001/quic-v1")},
		},
		StampBits: 22,
		Hidden:    true,
	}
}

func TestTypes(t *testing.T) {
	if got := Namespaces(); !slices.Equal(got, []string{"dsep-key", "dsep-rev", "dsep-reach", "dsep-email"}) {
		t.Fatalf("Namespaces() = %v", got)
	}
	for i, ns := range Namespaces() {
		typ := Type(i + 1)
		if typ.Namespace() != ns || typ.String() != ns {
			t.Errorf("type %d: namespace %q", typ, typ.Namespace())
		}
		if got, ok := typeOfNamespace(ns); !ok || got != typ {
			t.Errorf("namespace %q: type %d", ns, got)
		}
	}
	if Type(0).Namespace() != "" || Type(5).Namespace() != "" || Type(5).String() != "type(5)" || Type(9).MaxSize() != 0 {
		t.Fatal("unknown types")
	}
	if KeyType.MaxSize() != 16<<10 || RevType.MaxSize() != 8<<10 || ReachType.MaxSize() != 16<<10 || EmailType.MaxSize() != 16<<10 {
		t.Fatal("size limits differ from docs/protocol.md §9.2")
	}
}

func TestDHTKeys(t *testing.T) {
	f, _ := address.ParseFingerprint("0123456789abcdef0123456789abcdef01234567")
	if got := KeyOf(KeyType, f); got != "/dsep-key/0123456789abcdef0123456789abcdef01234567" {
		t.Fatal(got)
	}
	if got := DHTKey(ReachType, f.String()); got != "/dsep-reach/"+f.String() {
		t.Fatal(got)
	}
	e := mustEmail(t, "Alice@Example.ORG")
	slot := EmailSlot(e, f)
	if len(slot) != 64 || !isLowerHex(slot) {
		t.Fatalf("slot %q", slot)
	}
	// The slot is of the canonical email: the same for every spelling,
	// different for another email or another domain key.
	if EmailSlot(mustEmail(t, "alice@example.org"), f) != slot {
		t.Fatal("slot depends on the spelling of the email")
	}
	g := f
	g[19] ^= 1
	if EmailSlot(e, g) == slot || EmailSlot(mustEmail(t, "bob@example.org"), f) == slot {
		t.Fatal("slot collision")
	}
	if EmailKey(e, f) != "/dsep-email/"+slot {
		t.Fatal("EmailKey")
	}
	for _, c := range []struct {
		key  string
		typ  Type
		want error
	}{
		{"/dsep-key/" + f.String(), KeyType, nil},
		{"/dsep-rev/" + f.String(), RevType, nil},
		{"/dsep-reach/" + f.String(), ReachType, nil},
		{"/dsep-email/" + slot, EmailType, nil},
		{"/dsep-key/" + strings.ToUpper(f.String()), 0, ErrNameMismatch},
		{"/dsep-key/" + f.String()[:39], 0, ErrNameMismatch},
		{"/dsep-key/" + slot, 0, ErrNameMismatch},
		{"/dsep-email/" + f.String(), 0, ErrNameMismatch},
		{"/dsep-key/" + f.String() + "/x", 0, ErrNameMismatch},
		{"/dsep-key/", 0, ErrNameMismatch},
		{"/ipns/" + f.String(), 0, ErrWrongNamespace},
		{"/pk/x", 0, ErrWrongNamespace},
		{"dsep-key/" + f.String(), 0, ErrWrongNamespace},
		{"/dsep-key", 0, ErrWrongNamespace},
		{"", 0, ErrWrongNamespace},
	} {
		typ, name, err := ParseDHTKey(c.key)
		if c.want != nil {
			wantErr(t, err, c.want)
			continue
		}
		if err != nil || typ != c.typ || DHTKey(typ, name) != c.key {
			t.Errorf("ParseDHTKey(%q) = %d, %q, %v", c.key, typ, name, err)
		}
	}
}

func TestRecordEncoding(t *testing.T) {
	r := Record{Type: ReachType, Version: 1, Seq: 300, NotBefore: testNow, EOL: testNow.Add(time.Hour), Body: []byte("body")}
	b := r.Marshal()
	// The exact encoding: every field, in order, minimal varints.
	want := []byte{0x08, 3, 0x10, 1, 0x18, 0xac, 0x02, 0x20}
	want = protowire.AppendVarint(want, uint64(testNow.Unix()))
	want = append(want, 0x28)
	want = protowire.AppendVarint(want, uint64(testNow.Unix()+3600))
	want = append(want, 0x32, 4, 'b', 'o', 'd', 'y')
	if !bytes.Equal(b, want) {
		t.Fatalf("Marshal = % x\nwant      % x", b, want)
	}
	got, err := Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Type != r.Type || got.Version != r.Version || got.Seq != r.Seq || !got.NotBefore.Equal(r.NotBefore) || !got.EOL.Equal(r.EOL) || !bytes.Equal(got.Body, r.Body) {
		t.Fatalf("round trip: %+v", got)
	}
	// Zero values are written too.
	z := Record{}.Marshal()
	if !bytes.Equal(z, []byte{0x08, 0, 0x10, 0, 0x18, 0, 0x20, 0, 0x28, 0, 0x32, 0}) {
		t.Fatalf("zero record % x", z)
	}
	if _, err := Unmarshal(z); err != nil {
		t.Fatal(err)
	}

	s := &Signed{Raw: b, Signature: []byte("sig")}
	v := s.Marshal()
	back, err := UnmarshalSigned(v)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back.Raw, b) || !bytes.Equal(back.Signature, []byte("sig")) || back.Record.Seq != 300 {
		t.Fatalf("UnmarshalSigned: %+v", back)
	}

	in := SigningInput(EmailType, []byte{1, 2})
	if string(in) != "dsep-record-v1\x00dsep-email\x00\x01\x02" {
		t.Fatalf("SigningInput = %q", in)
	}
}

// field encodes one protobuf field (varint if v is a uint64, bytes
// otherwise).
func field(num protowire.Number, v any) []byte {
	switch v := v.(type) {
	case int:
		return appendVarintField(nil, num, uint64(v))
	case uint64:
		return appendVarintField(nil, num, v)
	case []byte:
		return appendBytesField(nil, num, v)
	case string:
		return appendBytesField(nil, num, []byte(v))
	}
	panic("field type")
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestRecordDecodingRejects(t *testing.T) {
	nb, eol := uint64(testNow.Unix()), uint64(testNow.Unix()+60)
	good := cat(field(1, 1), field(2, 1), field(3, 0), field(4, nb), field(5, eol), field(6, "x"))
	if _, err := Unmarshal(good); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"missing body", cat(field(1, 1), field(2, 1), field(3, 0), field(4, nb), field(5, eol))},
		{"missing seq", cat(field(1, 1), field(2, 1), field(4, nb), field(5, eol), field(6, "x"))},
		{"out of order", cat(field(2, 1), field(1, 1), field(3, 0), field(4, nb), field(5, eol), field(6, "x"))},
		{"repeated field", cat(field(1, 1), field(1, 1), field(2, 1), field(3, 0), field(4, nb), field(5, eol), field(6, "x"))},
		{"unknown field", cat(good, field(7, 1))},
		{"trailing bytes", cat(good, []byte{0})},
		{"wrong wire type", cat(field(1, "x"), field(2, 1), field(3, 0), field(4, nb), field(5, eol), field(6, "x"))},
		{"body as varint", cat(field(1, 1), field(2, 1), field(3, 0), field(4, nb), field(5, eol), field(6, 1))},
		{"non-minimal varint", cat(field(1, 1), field(2, 1), []byte{0x18, 0x80, 0x00}, field(4, nb), field(5, eol), field(6, "x"))},
		{"non-minimal tag", cat([]byte{0x88, 0x00, 1}, field(2, 1), field(3, 0), field(4, nb), field(5, eol), field(6, "x"))},
		{"type out of range", cat(field(1, 256), field(2, 1), field(3, 0), field(4, nb), field(5, eol), field(6, "x"))},
		{"version out of range", cat(field(1, 1), field(2, uint64(1)<<32), field(3, 0), field(4, nb), field(5, eol), field(6, "x"))},
		{"time out of range", cat(field(1, 1), field(2, 1), field(3, 0), field(4, nb), field(5, uint64(1)<<41), field(6, "x"))},
		{"truncated", good[:len(good)-1]},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Unmarshal(c.b)
			wantErr(t, err, ErrMalformed)
		})
	}
	sig := []byte("s")
	for _, c := range []struct {
		name string
		b    []byte
		want error
	}{
		{"no signature", field(1, good), ErrUnsigned},
		{"empty signature", cat(field(1, good), field(2, "")), ErrUnsigned},
		{"no record", field(2, sig), ErrMalformed},
		{"swapped", cat(field(2, sig), field(1, good)), ErrMalformed},
		{"repeated signature", cat(field(1, good), field(2, sig), field(2, sig)), ErrMalformed},
		{"unknown field", cat(field(1, good), field(2, sig), field(3, 1)), ErrMalformed},
		{"trailing byte", cat(field(1, good), field(2, sig), []byte{0}), ErrMalformed},
		{"record as varint", cat(field(1, 5), field(2, sig)), ErrMalformed},
		{"bad record", cat(field(1, "xyz"), field(2, sig)), ErrMalformed},
		{"non-minimal length", cat([]byte{0x0a, 0x80 | byte(len(good)), 0}, good, field(2, sig)), ErrMalformed},
		{"oversized signature", cat(field(1, good), field(2, bytes.Repeat([]byte{1}, MaxSignatureBytes+1))), ErrTooLarge},
		{"oversized value", cat(field(1, good), field(2, sig), field(3, bytes.Repeat([]byte{1}, MaxValueBytes))), ErrTooLarge},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := UnmarshalSigned(c.b)
			wantErr(t, err, c.want)
		})
	}
}

func TestKeyRecord(t *testing.T) {
	w := newWorld(t)
	key, val, err := NewKey(w.aliceCert, 7, testNow, 0)
	if err != nil {
		t.Fatal(err)
	}
	if key != "/dsep-key/"+w.alice.Fingerprint().String() {
		t.Fatalf("key %q", key)
	}
	v := mustVerify(t, key, val, checkAt)
	if v.Type != KeyType || v.Seq != 7 || v.Key == nil || v.Rev != nil || v.Reach != nil || v.Email != nil || v.DHTKey != key {
		t.Fatalf("verified %+v", v)
	}
	r := v.Signed.Record
	if !r.NotBefore.Equal(testNow) || !r.EOL.Equal(testNow.Add(DefaultTTL)) || r.Version != 1 {
		t.Fatalf("record %+v", r)
	}
	k := v.Key.Key
	if k.Fingerprint() != w.alice.Fingerprint() || k.HasSecret() || k.Check(checkAt) != nil {
		t.Fatal("published key")
	}
	// The domain's certification was stripped: the key record carries
	// self-signed material only.
	if _, err := address.FindCertification(k, w.uid, w.dom, checkAt); err != address.ErrNoCertification {
		t.Fatalf("certification in a key record: %v", err)
	}
	if err := (Validator{Now: func() time.Time { return checkAt }}).Validate(key, val); err != nil {
		t.Fatal(err)
	}
	// A revoked key can still publish its key; the revocation is stripped
	// (it goes in a rev record).
	if _, err := address.Revoke(w.bob, address.ReasonRetired, "", testNow); err != nil {
		t.Fatal(err)
	}
	kb, vb, err := NewKey(w.bob, 1, testNow, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if got := mustVerify(t, kb, vb, testNow.Add(30*time.Minute)); got.Key.Key.Revocation() != nil {
		t.Fatal("revocation in a key record")
	}
	// A public key cannot sign its record.
	if _, _, err := NewKey(w.alice.PublicOnly(), 1, testNow, 0); err == nil {
		t.Fatal("NewKey signed without a private key")
	}
	if _, _, err := NewKey(w.alice, 1, testNow, MaxLifetime+time.Second); err == nil {
		t.Fatal("NewKey accepted a lifetime over 30 days")
	}
	if _, _, err := NewKey(w.alice, 1, testNow, MaxLifetime); err != nil {
		t.Fatalf("30 days: %v", err)
	}
}

func TestRevRecord(t *testing.T) {
	w := newWorld(t)
	rev, err := address.Revoke(w.alice, address.ReasonCompromised, "laptop stolen", testNow)
	if err != nil {
		t.Fatal(err)
	}
	key, val, err := NewRev(w.alice, rev, 3, testNow, 0)
	if err != nil {
		t.Fatal(err)
	}
	if key != "/dsep-rev/"+w.alice.Fingerprint().String() {
		t.Fatalf("key %q", key)
	}
	v := mustVerify(t, key, val, checkAt)
	got := v.Rev.Revocation
	if v.Seq != 3 || got.Key != w.alice.Fingerprint() || got.Kind() != "compromised" || got.Text != "laptop stolen" ||
		v.Rev.Primary.Fingerprint() != w.alice.Fingerprint() {
		t.Fatalf("revocation %+v", got)
	}
	if !bytes.Equal(got.Bytes(), rev.Bytes()) {
		t.Fatal("revocation packet changed")
	}
	// A superseded revocation names its successor.
	succ, sup, err := address.Rotate(w.bob, testNow, address.NewIdentityOptions{})
	if err != nil {
		t.Fatal(err)
	}
	key, val, err = NewRev(w.bob, sup, 1, testNow, 0)
	if err != nil {
		t.Fatal(err)
	}
	v = mustVerify(t, key, val, checkAt)
	if v.Rev.Revocation.Kind() != "superseded" || *v.Rev.Revocation.Successor != succ.Fingerprint() {
		t.Fatalf("superseded: %+v", v.Rev.Revocation)
	}
	if _, _, err := NewRev(w.alice, sup, 1, testNow, 0); err == nil {
		t.Fatal("NewRev published bob's revocation as alice's")
	}
}

func TestReachRecord(t *testing.T) {
	w := newWorld(t)
	key, val, err := NewReach(w.alice, w.reach(), 2, testNow, 12*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if key != "/dsep-reach/"+w.alice.Fingerprint().String() {
		t.Fatalf("key %q", key)
	}
	v := mustVerify(t, key, val, checkAt)
	r := v.Reach
	if r.Identity != w.alice.Fingerprint() || r.StampBits != 22 || r.Price() != 22 || !r.Hidden || len(r.Delegations) != 2 {
		t.Fatalf("reach %+v", r)
	}
	if r.Signing.Primary.Fingerprint() != w.alice.Fingerprint() {
		t.Fatal("signing subkey of another primary")
	}
	if r.Signing.Subkey.Fingerprint() == w.alice.Fingerprint() {
		t.Fatal("reach record signed by the primary")
	}
	if d, err := r.Delegate(w.mbox, address.RoleMailbox, checkAt); err != nil || d.Peer != w.mbox {
		t.Fatalf("mailbox delegate: %v", err)
	}
	if _, err := r.Delegate(w.mbox, address.RoleDevice, checkAt); err == nil {
		t.Fatal("mailbox delegated as device")
	}
	if _, err := r.Delegate(w.dev, address.RoleDevice, testNow.Add(91*24*time.Hour)); err == nil {
		t.Fatal("expired delegation accepted")
	}
	as := r.Addrs[w.mbox]
	if len(r.Addrs) != 1 || len(as) != 2 || !as[0].Equal(multiaddr.StringCast("/ip4/192.0.2.7/tcp/4001")) {
		t.Fatalf("addrs %v", r.Addrs)
	}

	// A default price, not hidden, the device listed.
	plain := w.reach()
	plain.StampBits, plain.Hidden = 0, false
	plain.Addrs[w.dev] = []multiaddr.Multiaddr{mustAddr(t, "/ip4/127.0.0.1/tcp/4001")}
	plain.Addrs[newPeer(t, nil)] = nil // no addresses: left out
	key, val, err = NewReach(w.alice, plain, 3, testNow, 0)
	if err != nil {
		t.Fatal(err)
	}
	v = mustVerify(t, key, val, checkAt)
	if v.Reach.Price() != DefaultStampBits || v.Reach.Hidden || len(v.Reach.Addrs) != 2 {
		t.Fatalf("reach %+v", v.Reach)
	}

	for name, bad := range map[string]func(r *Reach){
		"hidden device":       func(r *Reach) { r.Addrs[w.dev] = []multiaddr.Multiaddr{mustAddr(t, "/ip4/127.0.0.1/tcp/1")} },
		"addrs of a stranger": func(r *Reach) { r.Addrs[newPeer(t, nil)] = []multiaddr.Multiaddr{mustAddr(t, "/ip4/127.0.0.1/tcp/1")} },
		"expired delegation":  func(r *Reach) { r.Delegations[0].NotAfter = testNow },
		"duplicate":           func(r *Reach) { r.Delegations = append(r.Delegations, r.Delegations[0]) },
		"price":               func(r *Reach) { r.StampBits = MaxStampBits + 1 },
		"negative price":      func(r *Reach) { r.StampBits = -1 },
		"too many addrs": func(r *Reach) {
			for i := range MaxAddrsPerDelegate {
				r.Addrs[w.mbox] = append(r.Addrs[w.mbox], multiaddr.StringCast("/ip4/10.0.0.1/tcp/"+string(rune('1'+i))))
			}
		},
		"too many delegations": func(r *Reach) {
			for range MaxDelegations {
				r.Delegations = append(r.Delegations, address.Delegation{Peer: newPeer(t, nil), Role: address.RoleMailbox, NotAfter: testNow.Add(time.Hour)})
			}
		},
	} {
		r := w.reach()
		bad(&r)
		if _, _, err := NewReach(w.alice, r, 1, testNow, 0); err == nil {
			t.Errorf("%s: NewReach accepted it", name)
		}
	}
	// The signing subkey must be unlocked; the primary need not be.
	if _, _, err := NewReach(w.alice.PublicOnly(), w.reach(), 1, testNow, 0); err == nil {
		t.Fatal("NewReach signed without a private key")
	}
}

func TestEmailRecord(t *testing.T) {
	w := newWorld(t)
	key, val, err := NewEmail(w.dom, w.aliceCert, w.email, 4, testNow, 0)
	if err != nil {
		t.Fatal(err)
	}
	if key != EmailKey(w.email, w.dom.Fingerprint()) {
		t.Fatalf("key %q", key)
	}
	v := mustVerify(t, key, val, checkAt)
	e := v.Email
	if e.Email != w.email || e.UserID != w.uid || e.User != w.alice.Fingerprint() || e.Domain != w.dom.Fingerprint() ||
		e.Certification.Signer != w.dom.Fingerprint() || e.Certification.UserID != w.uid ||
		!e.Certification.Expires.Equal(testNow.Add(address.DefaultCertificationLifetime)) ||
		e.UserPrimary.Fingerprint() != e.User || e.DomainPrimary.Fingerprint() != e.Domain {
		t.Fatalf("email %+v", e)
	}
	if !v.Signed.Record.EOL.Equal(testNow.Add(DefaultTTL)) {
		t.Fatal("eol")
	}
	// The record ends when the certification does.
	short := certify(t, w.alice, w.dom, "alice@example.org", 48*time.Hour)
	_, val, err = NewEmail(w.dom, short, w.email, 5, testNow, 0)
	if err != nil {
		t.Fatal(err)
	}
	v = mustVerify(t, key, val, checkAt)
	if !v.Signed.Record.EOL.Equal(testNow.Add(48 * time.Hour)) {
		t.Fatalf("eol %v, want the certification's expiry", v.Signed.Record.EOL)
	}
	// No certification, or one by another domain key: nothing to publish.
	if _, _, err := NewEmail(w.dom, w.alice, w.email, 1, testNow, 0); err == nil {
		t.Fatal("NewEmail without a certification")
	}
	if _, _, err := NewEmail(w.dom2, w.aliceCert, w.email, 1, testNow, 0); err == nil {
		t.Fatal("NewEmail with another domain key's certification")
	}
	if _, _, err := NewEmail(w.dom, w.aliceCert, mustEmail(t, "bob@example.org"), 1, testNow, 0); err == nil {
		t.Fatal("NewEmail for an email the key does not hold")
	}
	if _, _, err := NewEmail(w.dom, w.aliceCert, w.email, 1, testNow.Add(address.DefaultCertificationLifetime), 0); err == nil {
		t.Fatal("NewEmail with an expired certification")
	}
}

func TestUnknownBodyFieldsSkipped(t *testing.T) {
	w := newWorld(t)
	ss, err := w.alice.SigningSubkey(testNow)
	if err != nil {
		t.Fatal(err)
	}
	body := ReachBody{Primary: ss.Primary.Bytes(), Signing: ss.Subkey.Bytes(), Binding: ss.Binding}.Marshal()
	body = cat(body, field(99, "future"), field(100, 5))
	val := mustSign(t, rec(ReachType, 1, body), bySubkey(w.alice))
	v := mustVerify(t, KeyOf(ReachType, w.alice.Fingerprint()), val, checkAt)
	if len(v.Reach.Delegations) != 0 || v.Reach.Hidden {
		t.Fatalf("reach %+v", v.Reach)
	}
}
