package address

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/encoding/protowire"
)

func TestParseRole(t *testing.T) {
	tests := []struct {
		in      string
		want    Role
		wantErr bool
	}{
		{"device", RoleDevice, false},
		{"mailbox", RoleMailbox, false},
		{"gateway", RoleGateway, false},
		{"Device", 0, true},
		{"", 0, true},
		{"relay", 0, true},
		{"role(1)", 0, true},
		{"1", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseRole(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseRole(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
		if err == nil && got.String() != tt.in {
			t.Errorf("Role(%d).String() = %q", got, got)
		}
	}
	if s := Role(9).String(); s != "role(9)" {
		t.Errorf("unknown role: %q", s)
	}
}

// pbField is one protobuf field, for building delegation encodings by hand.
type pbField struct {
	num protowire.Number
	typ protowire.Type
	v   any // []byte or uint64
}

func encodeFields(fs ...pbField) []byte {
	var b []byte
	for _, f := range fs {
		b = protowire.AppendTag(b, f.num, f.typ)
		switch v := f.v.(type) {
		case []byte:
			b = protowire.AppendBytes(b, v)
		case uint64:
			b = protowire.AppendVarint(b, v)
		case uint32:
			b = protowire.AppendFixed32(b, v)
		}
	}
	return b
}

func TestParseDelegation(t *testing.T) {
	p := newPeer(t)
	exp := testNow.Add(30 * 24 * time.Hour)
	pf := pbField{1, protowire.BytesType, []byte(p)}
	rf := pbField{2, protowire.VarintType, uint64(RoleMailbox)}
	ef := pbField{3, protowire.VarintType, uint64(exp.Unix())}
	good := Delegation{Peer: p, Role: RoleMailbox, NotAfter: exp}
	encoded := good.AppendBinary(nil)
	tests := []struct {
		name string
		in   []byte
		err  error // ErrTooLarge, errAny or nil
	}{
		{"AppendBinary", encoded, nil},
		{"fields in another order", encodeFields(ef, pf, rf), nil},
		{"unknown varint field skipped", encodeFields(pf, rf, ef, pbField{9, protowire.VarintType, uint64(7)}), nil},
		{"unknown bytes field skipped", encodeFields(pbField{10, protowire.BytesType, []byte("future")}, pf, rf, ef), nil},
		{"unknown fixed32 field skipped", encodeFields(pf, pbField{11, protowire.Fixed32Type, uint32(1)}, rf, ef), nil},

		{"empty", nil, errAny},
		{"missing peer", encodeFields(rf, ef), errAny},
		{"missing role", encodeFields(pf, ef), errAny},
		{"missing expiry", encodeFields(pf, rf), errAny},
		{"repeated peer", encodeFields(pf, rf, ef, pf), errAny},
		{"repeated role", encodeFields(pf, rf, rf, ef), errAny},
		{"repeated expiry", encodeFields(pf, rf, ef, ef), errAny},
		{"peer as varint", encodeFields(pbField{1, protowire.VarintType, uint64(1)}, rf, ef), errAny},
		{"role as bytes", encodeFields(pf, pbField{2, protowire.BytesType, []byte{2}}, ef), errAny},
		{"expiry as fixed32", encodeFields(pf, rf, pbField{3, protowire.Fixed32Type, uint32(exp.Unix())}), errAny},
		{"empty peer", encodeFields(pbField{1, protowire.BytesType, []byte{}}, rf, ef), errAny},
		{"peer over 128 bytes", encodeFields(pbField{1, protowire.BytesType, make([]byte, 129)}, rf, ef), errAny},
		{"role over 255", encodeFields(pf, pbField{2, protowire.VarintType, uint64(256)}, ef), errAny},
		{"expiry out of range", encodeFields(pf, rf, pbField{3, protowire.VarintType, uint64(1<<40 + 1)}), errAny},
		{"truncated by one byte", encoded[:len(encoded)-1], errAny},
		{"truncated inside the peer", encoded[:5], errAny},
		{"tag only", encoded[:1], errAny},
		{"field number 0", append([]byte{0x00}, encoded...), errAny},
		{"truncated unknown field", append(bytes.Clone(encoded), 0x52, 0x05, 'a'), errAny},
		{"over 4096 bytes", encodeFields(pf, rf, ef, pbField{12, protowire.BytesType, make([]byte, 4096)}), ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := ParseDelegation(tt.in)
			switch {
			case tt.err == nil && err != nil:
				t.Fatalf("ParseDelegation: %v", err)
			case tt.err != nil && err == nil:
				t.Fatalf("accepted: %+v", d)
			case tt.err != nil && tt.err != errAny && !errors.Is(err, tt.err):
				t.Fatalf("error %v, want %v", err, tt.err)
			case err == nil:
				if d.Peer != good.Peer || d.Role != good.Role || !d.NotAfter.Equal(good.NotAfter) {
					t.Fatalf("parsed %+v, want %+v", d, good)
				}
				if d.NotAfter.Location() != time.UTC {
					t.Fatal("NotAfter not in UTC")
				}
			}
		})
	}
	// The encoding itself: fields 1, 2, 3 in order.
	want := encodeFields(pf, rf, ef)
	if !bytes.Equal(encoded, want) {
		t.Fatalf("AppendBinary = % x, want % x", encoded, want)
	}
}

// errAny stands for "some error" in tables.
var errAny = errors.New("any error")

func TestDelegationValid(t *testing.T) {
	p := newPeer(t)
	tests := []struct {
		name    string
		d       Delegation
		wantErr bool
	}{
		{"valid", Delegation{Peer: p, Role: RoleDevice, NotAfter: testNow.Add(time.Hour)}, false},
		{"expired", Delegation{Peer: p, Role: RoleDevice, NotAfter: testNow.Add(-time.Second)}, true},
		{"expires now", Delegation{Peer: p, Role: RoleDevice, NotAfter: testNow}, true},
		{"unknown role", Delegation{Peer: p, Role: 0, NotAfter: testNow.Add(time.Hour)}, true},
		{"bad peer ID", Delegation{Peer: peer.ID("not a multihash"), Role: RoleDevice, NotAfter: testNow.Add(time.Hour)}, true},
		{"empty peer ID", Delegation{Role: RoleDevice, NotAfter: testNow.Add(time.Hour)}, true},
	}
	for _, tt := range tests {
		if err := tt.d.Valid(testNow); (err != nil) != tt.wantErr {
			t.Errorf("%s: Valid = %v", tt.name, err)
		}
	}
}

func TestDelegationSet(t *testing.T) {
	alice := newUser(t, "Alice", "alice@example.org")
	bob := newUser(t, "Bob", "bob@example.org")
	alicePub := alice.PublicOnly()
	device, mailbox, stranger := newPeer(t), newPeer(t), newPeer(t)
	ds := []Delegation{
		{Peer: device, Role: RoleDevice, NotAfter: testNow.Add(30 * 24 * time.Hour).Truncate(time.Second)},
		{Peer: mailbox, Role: RoleMailbox, NotAfter: testNow.Add(time.Hour)},
		{Peer: device, Role: RoleGateway, NotAfter: testNow.Add(2 * time.Hour)},
	}
	set, err := SignDelegations(alice, ds, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if set.Identity != alice.Fingerprint() {
		t.Fatal("set names another identity")
	}
	got, err := ParseDelegationSet(alicePub, set.Body, set.Signature, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if got.Identity != alice.Fingerprint() || len(got.Delegations) != len(ds) || !bytes.Equal(got.Body, set.Body) {
		t.Fatalf("parsed set %+v", got)
	}
	for i, d := range got.Delegations {
		if d.Peer != ds[i].Peer || d.Role != ds[i].Role || !d.NotAfter.Equal(ds[i].NotAfter) {
			t.Fatalf("delegation %d: %+v, want %+v", i, d, ds[i])
		}
	}

	t.Run("find", func(t *testing.T) {
		for _, c := range []struct {
			name    string
			p       peer.ID
			role    Role
			at      time.Time
			found   bool // the delegation is returned
			wantErr bool
		}{
			{"device", device, RoleDevice, testNow, true, false},
			{"mailbox", mailbox, RoleMailbox, testNow, true, false},
			{"same peer, second role", device, RoleGateway, testNow, true, false},
			{"wrong role", mailbox, RoleDevice, testNow, false, true},
			{"unknown peer", stranger, RoleDevice, testNow, false, true},
			{"expired", mailbox, RoleMailbox, testNow.Add(2 * time.Hour), true, true},
			{"at expiry", mailbox, RoleMailbox, testNow.Add(time.Hour), true, true},
		} {
			d, err := got.Find(c.p, c.role, c.at)
			if (err != nil) != c.wantErr {
				t.Errorf("%s: error %v", c.name, err)
			}
			if c.found != (d.Peer == c.p && d.Role == c.role) {
				t.Errorf("%s: returned %+v", c.name, d)
			}
			if c.name == "expired" && (err == nil || !strings.Contains(err.Error(), "expired")) {
				t.Errorf("expired delegation: %v", err)
			}
		}
	})

	t.Run("rejected", func(t *testing.T) {
		flip := func(b []byte, i int) []byte {
			c := bytes.Clone(b)
			c[i] ^= 0x01
			return c
		}
		// bob signs a body that names alice.
		forgedSig, err := bob.SignDetached(delegationContext, set.Body, testNow)
		if err != nil {
			t.Fatal(err)
		}
		// alice signs the body in another context.
		otherContext, err := alice.SignDetached("dsep-something-else\x00", set.Body, testNow)
		if err != nil {
			t.Fatal(err)
		}
		bobSet, err := SignDelegations(bob, ds, testNow)
		if err != nil {
			t.Fatal(err)
		}
		// alice signs a body naming bob.
		namesBob := encodeDelegationBody(bob.Fingerprint(), ds)
		namesBobSig, err := alice.SignDetached(delegationContext, namesBob, testNow)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			name      string
			key       *Key
			body, sig []byte
		}{
			{"tampered body: expiry", alicePub, flip(set.Body, len(set.Body)-1), set.Signature},
			{"tampered body: identity", alicePub, flip(set.Body, 3), set.Signature},
			{"appended body", alicePub, append(bytes.Clone(set.Body), encodeFields(pbField{2, protowire.BytesType, ds[0].AppendBinary(nil)})...), set.Signature},
			{"tampered signature", alicePub, set.Body, flip(set.Signature, len(set.Signature)-1)},
			{"truncated signature", alicePub, set.Body, set.Signature[:len(set.Signature)-4]},
			{"no signature", alicePub, set.Body, nil},
			{"signature by another identity", alicePub, set.Body, forgedSig},
			{"another identity's set", alicePub, bobSet.Body, bobSet.Signature},
			{"another context", alicePub, set.Body, otherContext},
			{"body names another identity", alicePub, namesBob, namesBobSig},
			{"verified against the wrong key", bob.PublicOnly(), set.Body, set.Signature},
			{"signature over the size limit", alicePub, set.Body, append(bytes.Clone(set.Signature), make([]byte, 1024)...)},
		} {
			if s, err := ParseDelegationSet(c.key, c.body, c.sig, testNow); err == nil {
				t.Errorf("%s: accepted %+v", c.name, s)
			}
		}
	})

	t.Run("sign refuses", func(t *testing.T) {
		for _, c := range []struct {
			name string
			ds   []Delegation
		}{
			{"expired", []Delegation{{Peer: device, Role: RoleDevice, NotAfter: testNow.Add(-time.Hour)}}},
			{"unknown role", []Delegation{{Peer: device, Role: 7, NotAfter: testNow.Add(time.Hour)}}},
			{"bad peer", []Delegation{{Peer: "x", Role: RoleDevice, NotAfter: testNow.Add(time.Hour)}}},
			{"too many", make([]Delegation, MaxDelegations+1)},
		} {
			if _, err := SignDelegations(alice, c.ds, testNow); err == nil {
				t.Errorf("%s: signed", c.name)
			}
		}
		if _, err := SignDelegations(alicePub, ds, testNow); err == nil {
			t.Error("signed without the secret key")
		}
	})

	t.Run("empty set", func(t *testing.T) {
		s, err := SignDelegations(alice, nil, testNow)
		if err != nil {
			t.Fatal(err)
		}
		p, err := ParseDelegationSet(alicePub, s.Body, s.Signature, testNow)
		if err != nil || len(p.Delegations) != 0 {
			t.Fatalf("%+v %v", p, err)
		}
		if _, err := p.Find(device, RoleDevice, testNow); err == nil {
			t.Fatal("found a delegation in an empty set")
		}
	})

	t.Run("concurrent verification", func(t *testing.T) {
		k := reparse(t, alice)
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := ParseDelegationSet(k, set.Body, set.Signature, testNow); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
	})
}
