package record

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/cryptotest"
	"time"

	"github.com/dsep-project/dsep/address"
	p2pcrypto "github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
)

// The test vectors of docs/protocol.md §9: one valid record of each type,
// built deterministically, in testdata/<namespace>.vector. Run
// go test -update to rewrite them.

// goldenNow is when the golden keys and records were made; goldenAt is
// when the vectors are checked.
var (
	goldenNow = time.Date(2026, 1, 15, 9, 30, 0, 0, time.UTC)
	goldenAt  = goldenNow.Add(time.Hour)
)

// vector is one test vector file.
type vector struct {
	name   string            // file name
	fields map[string]string // header fields, in file order in keys
	keys   []string
	value  []byte
}

func (v *vector) set(k, val string) {
	if v.fields == nil {
		v.fields = map[string]string{}
	}
	v.fields[k] = val
	v.keys = append(v.keys, k)
}

func (v *vector) bytes() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# DSEP DHT record test vector (docs/protocol.md §9).\n")
	fmt.Fprintf(&b, "# The value is valid for the key at \"now\" and until \"eol\" (exclusive).\n")
	for _, k := range v.keys {
		fmt.Fprintf(&b, "%s: %s\n", k, v.fields[k])
	}
	b.WriteString("value:\n")
	h := hex.EncodeToString(v.value)
	for len(h) > 0 {
		n := min(64, len(h))
		b.WriteString(h[:n] + "\n")
		h = h[n:]
	}
	return b.Bytes()
}

func parseVector(t testing.TB, name string, data []byte) *vector {
	t.Helper()
	v := &vector{name: name}
	sc := bufio.NewScanner(bytes.NewReader(data))
	inValue := false
	var h strings.Builder
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "#") || line == "":
		case inValue:
			h.WriteString(line)
		case line == "value:":
			inValue = true
		default:
			k, val, ok := strings.Cut(line, ": ")
			if !ok {
				t.Fatalf("%s: bad line %q", name, line)
			}
			v.set(k, val)
		}
	}
	var err error
	if v.value, err = hex.DecodeString(h.String()); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return v
}

// goldenRecords builds the vectors. go-crypto salts every v4 signature
// from crypto/rand, so the global source is fixed for the duration of t;
// t must not be parallel.
func goldenRecords(t *testing.T) []*vector {
	t.Helper()
	cryptotest.SetGlobalRandom(t, 1)
	opt := func(seed byte) address.NewIdentityOptions {
		return address.NewIdentityOptions{Now: goldenNow, Rand: detRand(seed)}
	}
	email := mustEmail(t, "alice@example.org")
	alice, err := address.NewIdentity("Alice Example", email, opt(1))
	if err != nil {
		t.Fatal(err)
	}
	dom, err := address.NewDomainKey("example.org", opt(2))
	if err != nil {
		t.Fatal(err)
	}
	certified, err := address.Certify(alice, "Alice Example <alice@example.org>", dom, goldenNow, 0)
	if err != nil {
		t.Fatal(err)
	}
	peerID := func(seed byte) peer.ID {
		_, pub, err := p2pcrypto.GenerateEd25519Key(detRand(seed))
		if err != nil {
			t.Fatal(err)
		}
		id, err := peer.IDFromPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	device, mailbox := peerID(10), peerID(11)

	var out []*vector
	add := func(file string, key string, value []byte, err error, signer address.Fingerprint, extra ...string) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		s, err := UnmarshalSigned(value)
		if err != nil {
			t.Fatal(err)
		}
		v := &vector{name: file, value: value}
		v.set("namespace", s.Record.Type.Namespace())
		v.set("key", key)
		v.set("now", goldenAt.Format(time.RFC3339))
		v.set("seq", strconv.FormatUint(s.Record.Seq, 10))
		v.set("not_before", s.Record.NotBefore.Format(time.RFC3339))
		v.set("eol", s.Record.EOL.Format(time.RFC3339))
		v.set("signer", signer.String())
		for i := 0; i+1 < len(extra); i += 2 {
			v.set(extra[i], extra[i+1])
		}
		out = append(out, v)
	}

	ss, err := alice.SigningSubkey(goldenNow)
	if err != nil {
		t.Fatal(err)
	}
	key, value, err := NewKey(certified, 1, goldenNow, 0)
	add("dsep-key.vector", key, value, err, alice.Fingerprint())

	reach := Reach{
		Delegations: []address.Delegation{
			{Peer: device, Role: address.RoleDevice, NotAfter: goldenNow.Add(90 * 24 * time.Hour)},
			{Peer: mailbox, Role: address.RoleMailbox, NotAfter: goldenNow.Add(90 * 24 * time.Hour)},
		},
		Addrs: map[peer.ID][]multiaddr.Multiaddr{
			mailbox: {mustAddr(t, "/ip4/192.0.2.7/tcp/4001"), mustAddr(t, "/ip4/192.0.2.7/udp/4001/quic-v1")},
		},
		StampBits: 22,
		Hidden:    true,
	}
	key, value, err = NewReach(alice, reach, 3, goldenNow, 2*24*time.Hour)
	add("dsep-reach.vector", key, value, err, ss.Subkey.Fingerprint(),
		"identity", alice.Fingerprint().String(), "device", device.String(), "mailbox", mailbox.String(), "stamp_bits", "22", "hidden", "true")

	key, value, err = NewEmail(dom, certified, email, 2, goldenNow, 0)
	add("dsep-email.vector", key, value, err, dom.Fingerprint(),
		"email", email.String(), "user_id", "Alice Example <alice@example.org>", "user", alice.Fingerprint().String(), "domain", dom.Fingerprint().String())

	succ, rev, err := address.Rotate(alice, goldenNow, opt(3))
	if err != nil {
		t.Fatal(err)
	}
	key, value, err = NewRev(alice, rev, 1, goldenNow, 30*24*time.Hour)
	add("dsep-rev.vector", key, value, err, alice.Fingerprint(), "kind", "superseded", "successor", succ.Fingerprint().String())
	return out
}

func TestGoldenRecords(t *testing.T) {
	vs := goldenRecords(t)
	again := goldenRecords(t)
	for i, v := range vs {
		if !bytes.Equal(v.bytes(), again[i].bytes()) {
			t.Fatalf("%s: building under a fixed random source is not deterministic", v.name)
		}
		golden(t, v.name, v.bytes())
	}
}

// TestGoldenVectors reads the committed vectors and checks them as a
// second implementation would: each verifies at "now" with what its header
// says, and fails at eol, before not_before − 10 minutes, and with any bit
// of its signature changed.
func TestGoldenVectors(t *testing.T) {
	for _, v := range readVectors(t) {
		t.Run(v.name, func(t *testing.T) { checkVector(t, v) })
	}
}

// readVectors reads the four vectors in testdata.
func readVectors(t testing.TB) []*vector {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "*.vector"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 4 {
		t.Fatalf("%d vectors in testdata, want 4", len(files))
	}
	var out []*vector
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, parseVector(t, filepath.Base(f), data))
	}
	return out
}

func checkVector(t *testing.T, v *vector) {
	ts := func(k string) time.Time {
		t.Helper()
		x, err := time.Parse(time.RFC3339, v.fields[k])
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		return x
	}
	key, now, nb, eol := v.fields["key"], ts("now"), ts("not_before"), ts("eol")
	ver, err := Verify(key, v.value, now)
	if err != nil {
		t.Fatal(err)
	}
	if ver.Type.Namespace() != v.fields["namespace"] || strconv.FormatUint(ver.Seq, 10) != v.fields["seq"] ||
		!ver.Signed.Record.NotBefore.Equal(nb) || !ver.Signed.Record.EOL.Equal(eol) {
		t.Fatalf("header does not match the record: %+v", ver.Signed.Record)
	}
	if !bytes.Equal(ver.Signed.Marshal(), v.value) {
		t.Fatal("value does not re-encode to itself")
	}
	var signer address.Fingerprint
	switch ver.Type {
	case KeyType:
		k := ver.Key.Key
		signer = k.Fingerprint()
		if len(k.UserIDs(now)) != 1 || k.Revocation() != nil {
			t.Fatal("key record content")
		}
	case RevType:
		r := ver.Rev.Revocation
		signer = ver.Rev.Primary.Fingerprint()
		if r.Kind() != v.fields["kind"] || r.Successor == nil || r.Successor.String() != v.fields["successor"] {
			t.Fatalf("revocation %+v", r)
		}
	case ReachType:
		r := ver.Reach
		signer = r.Signing.Subkey.Fingerprint()
		if r.Identity.String() != v.fields["identity"] || strconv.Itoa(r.StampBits) != v.fields["stamp_bits"] ||
			strconv.FormatBool(r.Hidden) != v.fields["hidden"] || len(r.Delegations) != 2 {
			t.Fatalf("reach %+v", r)
		}
		dev, err := peer.Decode(v.fields["device"])
		if err != nil {
			t.Fatal(err)
		}
		mbox, err := peer.Decode(v.fields["mailbox"])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Delegate(dev, address.RoleDevice, now); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Delegate(mbox, address.RoleMailbox, now); err != nil || len(r.Addrs[mbox]) != 2 || len(r.Addrs) != 1 {
			t.Fatalf("mailbox: %v %v", err, r.Addrs)
		}
	case EmailType:
		e := ver.Email
		signer = e.Domain
		if e.Email.String() != v.fields["email"] || e.UserID != v.fields["user_id"] || e.User.String() != v.fields["user"] ||
			e.Domain.String() != v.fields["domain"] || EmailKey(e.Email, e.Domain) != key {
			t.Fatalf("email %+v", e)
		}
	}
	if signer.String() != v.fields["signer"] {
		t.Fatalf("signed by %s, header says %s", signer, v.fields["signer"])
	}
	if err := (Validator{Now: func() time.Time { return now }}).Validate(key, v.value); err != nil {
		t.Fatal(err)
	}
	_, err = Verify(key, v.value, eol)
	wantErr(t, err, ErrExpired)
	_, err = Verify(key, v.value, nb.Add(-MaxClockSkew-time.Second))
	wantErr(t, err, ErrFuture)
	s, err := UnmarshalSigned(v.value)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 8 * len(s.Signature) {
		c := *s
		c.Signature = bytes.Clone(s.Signature)
		c.Signature[i/8] ^= 1 << (i % 8)
		if _, err := Verify(key, c.Marshal(), now); err == nil {
			t.Fatalf("bit %d of signature byte %d changed, still valid", i%8, i/8)
		}
	}
}
