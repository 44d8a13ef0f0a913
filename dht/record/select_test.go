package record

import (
	"strings"
	"testing"
	"time"

	"github.com/dsep-project/dsep/address"
	librecord "github.com/libp2p/go-libp2p-record"
)

func TestValidatorSelect(t *testing.T) {
	w := newWorld(t)
	v := Validator{Now: func() time.Time { return checkAt }}

	keyVals := func(seqs ...uint64) (string, [][]byte) {
		var key string
		var vals [][]byte
		for _, s := range seqs {
			k, val, err := NewKey(w.alice, s, testNow, 0)
			if err != nil {
				t.Fatal(err)
			}
			key = k
			vals = append(vals, val)
		}
		return key, vals
	}
	key, vals := keyVals(1, 5, 3)
	garbage := []byte("not a record")
	expired, err := Sign(Record{Type: KeyType, Version: 1, Seq: 99, NotBefore: testNow, EOL: testNow.Add(time.Hour), Body: w.alice.SelfSigned().Bytes()}, byPrimary(w.alice))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		values [][]byte
		want   int
	}{
		{"highest seq", vals, 1},
		{"highest seq first", [][]byte{vals[1], vals[0], vals[2]}, 0},
		{"identical bytes", [][]byte{vals[0], vals[0]}, 0},
		{"identical bytes, second best", [][]byte{vals[0], vals[1], vals[1]}, 1},
		{"invalid never selected", [][]byte{garbage, vals[0]}, 1},
		{"expired never selected, whatever its seq", [][]byte{expired, vals[0]}, 1},
		{"one", vals[2:], 0},
	} {
		got, err := v.Select(key, c.values)
		if err != nil || got != c.want {
			t.Errorf("%s: Select = %d, %v; want %d", c.name, got, err, c.want)
		}
	}
	// Equal seq, different bytes (signed at another time, another salt):
	// the record already held, index 0, stays.
	_, again, err := NewKey(w.alice, 5, testNow.Add(time.Minute), 0)
	if err != nil {
		t.Fatal(err)
	}
	if string(again) == string(vals[1]) {
		t.Fatal("two signings gave the same bytes")
	}
	for _, order := range [][][]byte{{vals[1], again}, {again, vals[1]}} {
		if got, err := v.Select(key, order); err != nil || got != 0 {
			t.Fatalf("equal seq: Select = %d, %v; want 0", got, err)
		}
	}
	if got, err := v.Select(key, [][]byte{vals[0], again, vals[1]}); err != nil || got != 1 {
		t.Fatalf("equal best seq: Select = %d, %v; want 1, the first of the best", got, err)
	}
	// Nothing valid, nothing at all, or values for another key.
	if _, err := v.Select(key, [][]byte{garbage, expired}); err == nil || !strings.Contains(err.Error(), "none of 2") {
		t.Fatalf("Select of invalid values: %v", err)
	}
	if _, err := v.Select(key, nil); err == nil {
		t.Fatal("Select of nothing")
	}
	if _, err := v.Select(KeyOf(KeyType, w.bob.Fingerprint()), vals); err == nil {
		t.Fatal("Select of alice's records for bob's key")
	}
}

func TestSelectRevocations(t *testing.T) {
	w := newWorld(t)
	v := Validator{Now: func() time.Time { return checkAt }}
	old := w.alice
	_, sup, err := address.Rotate(old, testNow, address.NewIdentityOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ret, err := address.Revoke(old, address.ReasonRetired, "", testNow)
	if err != nil {
		t.Fatal(err)
	}
	comp, err := address.Revoke(old, address.ReasonCompromised, "", testNow)
	if err != nil {
		t.Fatal(err)
	}
	mk := func(r *address.Revocation, seq uint64) []byte {
		_, val, err := NewRev(old, r, seq, testNow, 0)
		if err != nil {
			t.Fatal(err)
		}
		return val
	}
	key := KeyOf(RevType, old.Fingerprint())
	retired9, superseded5, compromised1 := mk(ret, 9), mk(sup, 5), mk(comp, 1)
	retired2 := mk(ret, 2)
	for _, c := range []struct {
		name   string
		values [][]byte
		want   int
	}{
		{"compromised beats a higher seq", [][]byte{retired9, superseded5, compromised1}, 2},
		{"compromised held", [][]byte{compromised1, retired9}, 0},
		{"superseded beats retired", [][]byte{retired9, superseded5}, 1},
		{"then seq", [][]byte{retired2, retired9}, 1},
		{"ties to index 0", [][]byte{retired9, retired9}, 0},
		{"equal seq, different bytes", [][]byte{mk(comp, 1), compromised1}, 0},
	} {
		got, err := v.Select(key, c.values)
		if err != nil || got != c.want {
			t.Errorf("%s: Select = %d, %v; want %d", c.name, got, err, c.want)
		}
	}
}

// TestValidatorNamespaced runs the validator as kad-dht does, through a
// librecord.NamespacedValidator holding it for each namespace.
func TestValidatorNamespaced(t *testing.T) {
	w := newWorld(t)
	nv := librecord.NamespacedValidator{}
	for _, ns := range Namespaces() {
		nv[ns] = Validator{Now: func() time.Time { return checkAt }}
	}
	rev, err := address.Revoke(w.bob, address.ReasonRetired, "", testNow)
	if err != nil {
		t.Fatal(err)
	}
	type kv struct{ key, val string }
	var recs []kv
	add := func(k string, v []byte, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, kv{k, string(v)})
	}
	k, v, err := NewKey(w.alice, 1, testNow, 0)
	add(k, v, err)
	k, v, err = NewRev(w.bob, rev, 1, testNow, 0)
	add(k, v, err)
	k, v, err = NewReach(w.alice, w.reach(), 1, testNow, 0)
	add(k, v, err)
	k, v, err = NewEmail(w.dom, w.aliceCert, w.email, 1, testNow, 0)
	add(k, v, err)
	for i, r := range recs {
		if err := nv.Validate(r.key, []byte(r.val)); err != nil {
			t.Errorf("%s: %v", r.key, err)
		}
		if got, err := nv.Select(r.key, [][]byte{[]byte(r.val), []byte(r.val)}); err != nil || got != 0 {
			t.Errorf("%s: Select = %d, %v", r.key, got, err)
		}
		// Each value is valid under its own key only.
		other := recs[(i+1)%len(recs)]
		if err := nv.Validate(other.key, []byte(r.val)); err == nil {
			t.Errorf("%s accepted under %s", r.key, other.key)
		}
	}
	if err := nv.Validate("/ipns/x", []byte(recs[0].val)); err == nil {
		t.Fatal("a foreign namespace validated")
	}
	// The zero Validator uses the real clock: records made now validate.
	now := time.Now()
	dave, err := address.NewIdentity("Dave", mustEmail(t, "dave@example.org"), address.NewIdentityOptions{Now: now.Add(-time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	k, v, err = NewKey(dave, 1, now, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := (Validator{}).Validate(k, v); err != nil {
		t.Fatal(err)
	}
}
