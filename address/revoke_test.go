package address

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

func TestParseRevocationReason(t *testing.T) {
	tests := []struct {
		in      string
		want    RevocationReason
		wantErr bool
	}{
		{"compromised", ReasonCompromised, false},
		{"retired", ReasonRetired, false},
		{"superseded", ReasonSuperseded, false},
		{"Compromised", 0, true},
		{" retired", 0, true},
		{"", 0, true},
		{"unspecified", 0, true},
		{"key-compromise", 0, true},
		{"2", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseRevocationReason(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseRevocationReason(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
		if err == nil && got.String() != tt.in {
			t.Errorf("String() of %q = %q", tt.in, got)
		}
	}
	// The numbers are OpenPGP's reason codes.
	if ReasonSuperseded != RevocationReason(packet.KeySuperseded) || ReasonCompromised != RevocationReason(packet.KeyCompromised) ||
		ReasonRetired != RevocationReason(packet.KeyRetired) || ReasonUnspecified != RevocationReason(packet.NoReason) {
		t.Error("reason codes differ from RFC 9580")
	}
	if s := RevocationReason(99).String(); s != "unspecified(99)" {
		t.Errorf("unknown reason: %q", s)
	}
}

func TestRotate(t *testing.T) {
	old := newUser(t, "Bob", "bob@example.org")
	// A second address, carried over too.
	if err := old.Entity().AddUserId("Bob", "", "bob@other.example", pgpConfig(testNow, nil)); err != nil {
		t.Fatal(err)
	}
	at := testNow.Add(time.Hour)
	uids := old.UserIDs(at)
	if len(uids) != 2 {
		t.Fatalf("old User IDs %q", uids)
	}
	next, rev, err := Rotate(old, at, NewIdentityOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if next.Fingerprint() == old.Fingerprint() || !next.HasSecret() {
		t.Fatal("successor is the old key or lacks its secret")
	}
	if err := next.Check(at); err != nil {
		t.Fatal(err)
	}
	if !next.Created().Equal(at) {
		t.Fatalf("successor created %v, want %v", next.Created(), at)
	}
	// The revocation: superseded, naming the successor, attached to old.
	if rev.Reason != ReasonSuperseded || rev.Successor == nil || *rev.Successor != next.Fingerprint() ||
		rev.Kind() != "superseded" || rev.Hard() || rev.Key != old.Fingerprint() || !rev.Signed.Equal(at) {
		t.Fatalf("revocation %+v", rev)
	}
	if !strings.Contains(rev.Text, next.Fingerprint().String()) {
		t.Fatalf("revocation text %q does not name the successor", rev.Text)
	}
	if r := old.Revocation(); r == nil || !bytes.Equal(r.Bytes(), rev.Bytes()) {
		t.Fatal("old key does not carry the revocation")
	}
	if r := reparse(t, old).Revocation(); r == nil || r.Kind() != "superseded" || *r.Successor != next.Fingerprint() {
		t.Fatal("the published old key does not carry the revocation")
	}
	// Every User ID carried over and certified by the old primary, without
	// expiry.
	pub := reparse(t, next)
	if got := pub.UserIDs(at); strings.Join(got, "|") != strings.Join(uids, "|") {
		t.Fatalf("successor User IDs %q, want %q", got, uids)
	}
	oldPub := reparse(t, old)
	for _, uid := range uids {
		c, err := FindCertification(pub, uid, oldPub, at)
		if err != nil {
			t.Fatalf("%q: %v", uid, err)
		}
		if c.Signer != old.Fingerprint() || !c.Expires.IsZero() || !c.Created.Equal(at) {
			t.Fatalf("certification %+v", c)
		}
		// Still valid long after: the vouching outlives the old key.
		if _, err := FindCertification(pub, uid, oldPub, at.Add(10*365*24*time.Hour)); err != nil {
			t.Fatalf("certification expired: %v", err)
		}
	}
	// A revoked key is not rotated again.
	if _, _, err := Rotate(old, at, NewIdentityOptions{}); err == nil {
		t.Fatal("rotated an already revoked key")
	}
	// Rotation needs the old secret.
	fresh := newUser(t, "Carol", "carol@example.org")
	if _, _, err := Rotate(fresh.PublicOnly(), at, NewIdentityOptions{}); err == nil {
		t.Fatal("rotated without the secret key")
	}
	// A fixed Rand and Now make the successor reproducible.
	a := newUser(t, "Dave", "dave@example.org")
	b := a.Clone()
	n1, _, err1 := Rotate(a, at, NewIdentityOptions{Rand: detRand(9)})
	n2, _, err2 := Rotate(b, at, NewIdentityOptions{Rand: detRand(9)})
	if err1 != nil || err2 != nil || n1.Fingerprint() != n2.Fingerprint() {
		t.Fatalf("rotation with a fixed Rand: %v %v", err1, err2)
	}
}

func TestRevoke(t *testing.T) {
	k := newUser(t, "Eve", "eve@example.org")
	for _, r := range []RevocationReason{ReasonSuperseded, ReasonUnspecified, RevocationReason(42)} {
		if _, err := Revoke(k.Clone(), r, "", testNow); err == nil {
			t.Errorf("Revoke accepted reason %v", r)
		}
	}
	if _, err := Revoke(k.PublicOnly(), ReasonRetired, "", testNow); err == nil {
		t.Error("revoked without the secret key")
	}
	if k.Revocation() != nil || len(k.Revocations()) != 0 {
		t.Fatal("refused revocations were attached")
	}
	soft, err := Revoke(k, ReasonRetired, "left the company", testNow)
	if err != nil {
		t.Fatal(err)
	}
	if soft.Kind() != "retired" || soft.Hard() || soft.Severity() != 1 || soft.Text != "left the company" || soft.Successor != nil {
		t.Fatalf("retired: %+v", soft)
	}
	hard, err := Revoke(k, ReasonCompromised, "laptop stolen", testNow.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if hard.Kind() != "compromised" || !hard.Hard() || hard.Severity() != 3 {
		t.Fatalf("compromised: %+v", hard)
	}
	// The strongest comes first, whatever the order of signing.
	rs := reparse(t, k).Revocations()
	if len(rs) != 2 || rs[0].Kind() != "compromised" || rs[1].Kind() != "retired" {
		t.Fatalf("revocations %v", rs)
	}
	if r := k.Revocation(); r.Kind() != "compromised" {
		t.Fatalf("Revocation() = %s", r.Kind())
	}
	if err := k.Check(testNow.Add(time.Hour)); !errors.Is(err, ErrKeyRevoked) {
		t.Fatalf("Check of a revoked key: %v", err)
	}
}

func TestRevocationKind(t *testing.T) {
	succ := fpr(1)
	tests := []struct {
		r        Revocation
		kind     string
		hard     bool
		severity int
	}{
		{Revocation{Reason: ReasonCompromised}, "compromised", true, 3},
		{Revocation{Reason: ReasonUnspecified}, "compromised", true, 3},
		{Revocation{Reason: RevocationReason(100)}, "compromised", true, 3},
		{Revocation{Reason: RevocationReason(32)}, "compromised", true, 3}, // "user ID no longer valid" is not a key reason
		{Revocation{Reason: ReasonSuperseded, Successor: &succ}, "superseded", false, 2},
		{Revocation{Reason: ReasonSuperseded}, "retired", false, 1},
		{Revocation{Reason: ReasonRetired}, "retired", false, 1},
	}
	for _, tt := range tests {
		if tt.r.Kind() != tt.kind || tt.r.Hard() != tt.hard || tt.r.Severity() != tt.severity {
			t.Errorf("%+v: kind %s hard %v severity %d", tt.r, tt.r.Kind(), tt.r.Hard(), tt.r.Severity())
		}
	}
}

func TestRevocationValidAt(t *testing.T) {
	succ := fpr(1)
	firstSeen := testNow
	before, after := firstSeen.Add(-time.Second), firstSeen.Add(time.Second)
	// The date the signer wrote is irrelevant: back-dated far into the past
	// or forward-dated into the future, only first-seen counts.
	for _, signed := range []time.Time{testNow.Add(-1000 * time.Hour), testNow.Add(1000 * time.Hour)} {
		for _, r := range []Revocation{
			{Reason: ReasonRetired, Signed: signed},
			{Reason: ReasonSuperseded, Successor: &succ, Signed: signed},
		} {
			if !r.ValidAt(before, firstSeen) {
				t.Errorf("%s signed %v: a signature made before first-seen is invalid", r.Kind(), signed)
			}
			if r.ValidAt(firstSeen, firstSeen) || r.ValidAt(after, firstSeen) {
				t.Errorf("%s signed %v: a signature made at or after first-seen is valid", r.Kind(), signed)
			}
		}
		for _, r := range []Revocation{{Reason: ReasonCompromised, Signed: signed}, {Reason: ReasonUnspecified, Signed: signed}} {
			if r.ValidAt(before.Add(-10000*time.Hour), firstSeen) || r.ValidAt(after, firstSeen) {
				t.Errorf("%s: hard revocation leaves a signature valid", r.Kind())
			}
		}
	}
}

func TestParseRevocation(t *testing.T) {
	old := newUser(t, "Bob", "bob@example.org")
	next, rev, err := Rotate(old, testNow, NewIdentityOptions{})
	if err != nil {
		t.Fatal(err)
	}
	retiredKey := newUser(t, "Carol", "carol@example.org")
	retired, err := Revoke(retiredKey, ReasonRetired, "gone", testNow)
	if err != nil {
		t.Fatal(err)
	}
	oldPub := old.PublicOnly()
	for _, c := range []struct {
		name string
		key  *Key
		r    *Revocation
	}{{"superseded", oldPub, rev}, {"retired", retiredKey.PublicOnly(), retired}} {
		t.Run("round trip "+c.name, func(t *testing.T) {
			data := c.r.Bytes()
			got, err := ParseRevocation(c.key, data)
			if err != nil {
				t.Fatal(err)
			}
			if got.Key != c.r.Key || got.Reason != c.r.Reason || got.Text != c.r.Text || !got.Signed.Equal(c.r.Signed) ||
				(got.Successor == nil) != (c.r.Successor == nil) || (got.Successor != nil && *got.Successor != *c.r.Successor) {
				t.Fatalf("parsed %+v, want %+v", got, c.r)
			}
			if !bytes.Equal(got.Bytes(), data) {
				t.Fatal("re-serialization differs")
			}
			// Taken into a fresh copy of the key, it is the key's revocation.
			k := reparse(t, c.key)
			k.e.Revocations = nil
			if err := k.AddRevocation(got); err != nil {
				t.Fatal(err)
			}
			if err := k.AddRevocation(got); err != nil || len(k.Revocations()) != 1 {
				t.Fatalf("adding the same revocation twice: %v, %d", err, len(k.Revocations()))
			}
			if r := reparse(t, k).Revocation(); r == nil || r.Kind() != c.name {
				t.Fatalf("published key's revocation: %v", r)
			}
		})
	}
	if *rev.Successor != next.Fingerprint() {
		t.Fatal("successor")
	}

	// A certification signature: a signature packet, not a revocation.
	dom := newDomain(t, "example.org")
	cert := certify(t, next, dom, "bob@example.org", testNow, 0)
	var certSig bytes.Buffer
	if err := cert.Entity().Identities["Bob <bob@example.org>"].OtherCertifications[0].Packet.Serialize(&certSig); err != nil {
		t.Fatal(err)
	}
	var uidPacket bytes.Buffer
	if err := packet.NewUserId("Bob", "", "bob@example.org").Serialize(&uidPacket); err != nil {
		t.Fatal(err)
	}
	good := rev.Bytes()
	flipped := bytes.Clone(good)
	flipped[len(flipped)-1] ^= 1
	tests := []struct {
		name string
		key  *Key
		data []byte
		err  error // a specific error, or nil for any
	}{
		{"wrong key", next.PublicOnly(), good, nil},
		{"another key's revocation", oldPub, retired.Bytes(), nil},
		{"trailing byte", oldPub, append(bytes.Clone(good), 0), nil},
		{"trailing packet", oldPub, append(bytes.Clone(good), good...), nil},
		{"truncated", oldPub, good[:len(good)-1], nil},
		{"header only", oldPub, good[:2], nil},
		{"empty", oldPub, nil, nil},
		{"flipped signature byte", oldPub, flipped, nil},
		{"public key packet", oldPub, publicKeyPacket(t, old), nil},
		{"User ID packet", oldPub, uidPacket.Bytes(), nil},
		{"certification signature", next.PublicOnly(), certSig.Bytes(), nil},
		{"oversize", oldPub, append(bytes.Clone(good), make([]byte, 4097-len(good))...), ErrTooLarge},
		{"garbage", oldPub, []byte("-----BEGIN PGP SIGNATURE-----"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ParseRevocation(tt.key, tt.data)
			if err == nil {
				t.Fatalf("accepted: %+v", r)
			}
			if tt.err != nil && !errors.Is(err, tt.err) {
				t.Fatalf("error %v, want %v", err, tt.err)
			}
		})
	}
	// A revocation of another key is not attached.
	if err := next.AddRevocation(rev); err == nil {
		t.Fatal("attached another key's revocation")
	}
}

func publicKeyPacket(t *testing.T, k *Key) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := k.Entity().PrimaryKey.Serialize(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestJudgeSuccessor(t *testing.T) {
	email := mustEmail(t, "bob@example.org")
	at := testNow.Add(2 * time.Hour)
	dom := newDomain(t, "example.org")

	// Bob rotates; the domain certifies the successor.
	bob := newUser(t, "Bob", "bob@example.org")
	next, _, err := Rotate(bob, testNow.Add(time.Hour), NewIdentityOptions{})
	if err != nil {
		t.Fatal(err)
	}
	oldPub := bob.PublicOnly()
	onlyOld := next.PublicOnly()
	both := certify(t, next, dom, "bob@example.org", at, 0)

	// A key the domain certified without Bob's old key (a hijack), for a
	// contact whose old key is not revoked.
	carol := newUser(t, "Bob", "bob@example.org")
	evil := newUser(t, "Bob", "bob@example.org")
	onlyDomain := certify(t, evil, dom, "bob@example.org", at, 0)

	// Bob's rotation names next, but here is another key certified by both
	// Bob's old key and the domain.
	other := newUser(t, "Bob", "bob@example.org")
	otherBoth, err := Certify(certify(t, other, dom, "bob@example.org", at, 0), "Bob <bob@example.org>", bob, at, -1)
	if err != nil {
		t.Fatal(err)
	}

	// Dave rotated, then his old key was revoked as compromised.
	dave := newUser(t, "Dave", "dave@example.org")
	daveNext, _, err := Rotate(dave, testNow.Add(time.Hour), NewIdentityOptions{})
	if err != nil {
		t.Fatal(err)
	}
	daveBoth := certify(t, daveNext, dom, "dave@example.org", at, 0)
	if _, err := Revoke(dave, ReasonCompromised, "stolen", at); err != nil {
		t.Fatal(err)
	}

	// Frank's key was retired (soft, no successor named) and he moved on
	// with a certified successor: still acceptable.
	frank := newUser(t, "Frank", "frank@example.org")
	frankNext := newUser(t, "Frank", "frank@example.org")
	frankBoth, err := Certify(certify(t, frankNext, dom, "frank@example.org", at, 0), "Frank <frank@example.org>", frank, at, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Revoke(frank, ReasonRetired, "", at); err != nil {
		t.Fatal(err)
	}

	// A successor whose own key is revoked.
	revokedNext := withRevocation(t, both, next, ReasonCompromised)

	// A successor certified by the old key for another address only.
	gina := newUser(t, "Gina", "gina@example.org")
	ginaNext, _, err := Rotate(gina, testNow.Add(time.Hour), NewIdentityOptions{})
	if err != nil {
		t.Fatal(err)
	}

	// The domain key itself was revoked: it vouches for nothing.
	revokedDom := newDomain(t, "example.org")
	bothRevokedDom := certify(t, next, revokedDom, "bob@example.org", at, 0)
	if _, err := Revoke(revokedDom, ReasonCompromised, "stolen", at); err != nil {
		t.Fatal(err)
	}

	type want struct {
		ok, missingOld, missingDomain, other bool
	}
	tests := []struct {
		name      string
		old, next *Key
		domain    *Key
		email     Email
		want      want
	}{
		{"both certifications", oldPub, both, dom, email, want{ok: true}},
		{"only the old key's", oldPub, onlyOld, dom, email, want{missingDomain: true}},
		{"domain key revoked", oldPub, bothRevokedDom, revokedDom, email, want{missingDomain: true}},
		{"only the domain's", carol.PublicOnly(), onlyDomain, dom, email, want{missingOld: true}},
		{"neither", carol.PublicOnly(), evil.PublicOnly(), dom, email, want{missingOld: true, missingDomain: true}},
		{"revocation names another successor", oldPub, otherBoth, dom, email, want{other: true}},
		{"domain-only successor of a rotated key", oldPub, onlyDomain, dom, email, want{other: true}},
		{"old key hard-revoked", dave.PublicOnly(), daveBoth, dom, mustEmail(t, "dave@example.org"), want{other: true}},
		{"old key retired", frank.PublicOnly(), frankBoth, dom, mustEmail(t, "frank@example.org"), want{ok: true}},
		{"same key", oldPub, oldPub, dom, email, want{other: true}},
		{"no User ID for the address", oldPub, both, dom, mustEmail(t, "robert@example.org"), want{other: true}},
		{"successor revoked", oldPub, revokedNext, dom, email, want{other: true}},
		{"key-address contact: old key's certification suffices", oldPub, onlyOld, nil, Email{}, want{ok: true}},
		{"key-address contact: any User ID", gina.PublicOnly(), ginaNext.PublicOnly(), nil, Email{}, want{ok: true}},
		{"key-address contact: no certification", carol.PublicOnly(), evil.PublicOnly(), nil, Email{}, want{missingOld: true}},
		{"key-address contact: domain-certified only", carol.PublicOnly(), onlyDomain, nil, Email{}, want{missingOld: true}},
		{"key-address contact: old key hard-revoked", dave.PublicOnly(), daveNext.PublicOnly(), nil, Email{}, want{other: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var dk *Key
			if tt.domain != nil {
				dk = tt.domain.PublicOnly()
			}
			err := JudgeSuccessor(reparse(t, tt.old), reparse(t, tt.next), dk, tt.email, at)
			if tt.want.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var se *SuccessionError
			if !errors.As(err, &se) {
				t.Fatalf("error %v is not a *SuccessionError", err)
			}
			if se.Old != tt.old.Fingerprint() || se.New != tt.next.Fingerprint() {
				t.Fatalf("error names %s → %s", se.Old, se.New)
			}
			if (se.Other != "") != tt.want.other {
				t.Fatalf("Other = %q, want set: %v", se.Other, tt.want.other)
			}
			if !tt.want.other && (se.MissingOld != tt.want.missingOld || se.MissingDomain != tt.want.missingDomain) {
				t.Fatalf("MissingOld %v MissingDomain %v, want %v %v", se.MissingOld, se.MissingDomain, tt.want.missingOld, tt.want.missingDomain)
			}
			if msg := se.Error(); !strings.Contains(msg, tt.next.Fingerprint().String()) {
				t.Fatalf("message %q does not name the new key", msg)
			}
		})
	}
}
