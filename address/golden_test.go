package address

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/cryptotest"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// goldenNow is when the golden keys were made.
var goldenNow = time.Date(2026, 1, 15, 9, 30, 0, 0, time.UTC)

const goldenAliceUID = "Alice Example <alice@example.org>"

// goldenKeys generates Alice's identity and the example.org domain key
// deterministically.
func goldenKeys(t testing.TB) (alice, domain *Key) {
	t.Helper()
	alice, err := NewIdentity("Alice Example", mustEmail(t, "Alice@Example.org"), NewIdentityOptions{Now: goldenNow, Rand: detRand(1)})
	if err != nil {
		t.Fatal(err)
	}
	domain, err = NewDomainKey("Example.org", NewIdentityOptions{Now: goldenNow, Rand: detRand(2)})
	if err != nil {
		t.Fatal(err)
	}
	return alice, domain
}

// goldenCertified returns Alice's key certified by the domain. Certify
// draws from crypto/rand (go-crypto adds a random salt notation to every v4
// signature, although Ed25519 itself is deterministic), so the global
// source is fixed for the duration of t. t must not be parallel.
func goldenCertified(t *testing.T, alice, domain *Key) *Key {
	t.Helper()
	cryptotest.SetGlobalRandom(t, 1)
	c, err := Certify(alice.PublicOnly(), goldenAliceUID, domain, goldenNow, 0)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestGoldenKeys(t *testing.T) {
	alice, domain := goldenKeys(t)
	// Generation is deterministic given Now and Rand.
	alice2, domain2 := goldenKeys(t)
	if !bytes.Equal(alice.Armored(), alice2.Armored()) || !bytes.Equal(domain.Armored(), domain2.Armored()) {
		t.Fatal("key generation with a fixed Rand and Now is not deterministic")
	}
	cert := goldenCertified(t, alice, domain)
	if again := goldenCertified(t, alice, domain); !bytes.Equal(cert.Bytes(), again.Bytes()) {
		t.Fatal("certification under a fixed global random source is not deterministic")
	}
	golden(t, "alice.pub.asc", alice.Armored())
	golden(t, "domain.pub.asc", domain.Armored())
	golden(t, "alice.certified.pub.asc", cert.Armored())
	var fprs strings.Builder
	for _, k := range []struct {
		name string
		key  *Key
	}{{"alice", alice}, {"domain", domain}} {
		fmt.Fprintf(&fprs, "%s %s %s\n", k.name, k.key.Fingerprint(), k.key.KeyAddress())
	}
	golden(t, "fingerprints.golden", []byte(fprs.String()))
}

// goldenFingerprints reads testdata/fingerprints.golden.
func goldenFingerprints(t *testing.T) map[string]Fingerprint {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "fingerprints.golden"))
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]Fingerprint)
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			t.Fatalf("bad line %q", line)
		}
		fp, err := ParseFingerprint(f[1])
		if err != nil {
			t.Fatal(err)
		}
		ka, err := ParseKeyAddress(f[2])
		if err != nil || ka.Fingerprint() != fp {
			t.Fatalf("key address %q does not name %s: %v", f[2], fp, err)
		}
		out[f[0]] = fp
	}
	return out
}

func readGolden(t *testing.T, name string) *Key {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	k, err := ReadKey(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	// Written back, it is the same file byte for byte.
	if !bytes.Equal(k.Armored(), data) {
		t.Errorf("%s: re-serialization differs", name)
	}
	return k
}

// TestGoldenKeysRead reads the committed keys back and checks what DSEP
// and gpg 2.2 rely on, independently of key generation.
func TestGoldenKeysRead(t *testing.T) {
	fprs := goldenFingerprints(t)
	at := goldenNow.Add(24 * time.Hour)
	alice := readGolden(t, "alice.pub.asc")
	domain := readGolden(t, "domain.pub.asc")
	cert := readGolden(t, "alice.certified.pub.asc")

	for _, c := range []struct {
		name string
		key  *Key
		fpr  Fingerprint
		uid  string
	}{
		{"alice", alice, fprs["alice"], goldenAliceUID},
		{"domain", domain, fprs["domain"], "DSEP domain key for example.org"},
		{"alice certified", cert, fprs["alice"], goldenAliceUID},
	} {
		t.Run(c.name, func(t *testing.T) {
			k := c.key
			if k.Fingerprint() != c.fpr || k.KeyAddress() != c.fpr.KeyAddress() {
				t.Fatalf("fingerprint %s, want %s", k.Fingerprint(), c.fpr)
			}
			if k.HasSecret() {
				t.Fatal("public key file carries secret material")
			}
			if !k.Created().Equal(goldenNow) {
				t.Fatalf("created %v, want %v", k.Created(), goldenNow)
			}
			if u := k.UserIDs(at); len(u) != 1 || u[0] != c.uid {
				t.Fatalf("User IDs %q, want [%q]", u, c.uid)
			}
			if err := k.Check(at); err != nil {
				t.Fatal(err)
			}
			checkLayout(t, k, at)
			data, _ := os.ReadFile(filepath.Join("testdata", strings.ReplaceAll(c.name, " ", ".")+".pub.asc"))
			checkRawLayout(t, data)
		})
	}
	if e := domain.Emails(at); len(e) != 0 {
		t.Fatalf("domain key has emails %v", e)
	}
	if e := alice.Emails(at); len(e) != 1 || e[0].String() != "alice@example.org" {
		t.Fatalf("alice's emails %v", e)
	}

	// The certification: by the domain's primary key, for a year.
	c, err := FindCertification(cert, goldenAliceUID, domain, at)
	if err != nil {
		t.Fatal(err)
	}
	if c.Signer != fprs["domain"] || !c.Created.Equal(goldenNow) || !c.Expires.Equal(goldenNow.Add(DefaultCertificationLifetime)) {
		t.Fatalf("certification %+v", c)
	}
	if _, err := FindCertification(alice, goldenAliceUID, domain, at); err != ErrNoCertification {
		t.Fatalf("uncertified key: %v", err)
	}
	v := VerifyBinding(BindingInput{
		Email:     mustEmail(t, "alice@example.org"),
		DNS:       DNSAnswer{Records: []string{DomainRecord{Key: fprs["domain"]}.String()}},
		Key:       cert,
		DomainKey: domain,
		Now:       at,
	})
	if !v.OK() || v.UserID != goldenAliceUID {
		t.Fatalf("verdict: %v", v)
	}
	// The certification packet is by the primary key of the domain (not a
	// subkey, which gpg would reject) and is a generic certification.
	id := cert.Entity().Identities[goldenAliceUID]
	if len(id.OtherCertifications) != 1 {
		t.Fatalf("%d third-party certifications", len(id.OtherCertifications))
	}
	sig := id.OtherCertifications[0].Packet
	domFpr := fprs["domain"]
	if sig.SigType != packet.SigTypeGenericCert || !bytes.Equal(sig.IssuerFingerprint, domFpr[:]) ||
		sig.IssuerKeyId == nil || *sig.IssuerKeyId != domain.Entity().PrimaryKey.KeyId {
		t.Fatalf("certification: type %#x issuer % x", sig.SigType, sig.IssuerFingerprint)
	}
}

// checkLayout checks the DSEP key layout through go-crypto: an Ed25519
// primary that only certifies, an Ed25519 signing subkey, a Cv25519
// encryption subkey, no expiry.
func checkLayout(t *testing.T, k *Key, at time.Time) {
	t.Helper()
	e := k.Entity()
	pk := e.PrimaryKey
	if pk.Version != 4 || pk.PubKeyAlgo != packet.PubKeyAlgoEdDSA {
		t.Fatalf("primary: version %d algorithm %d", pk.Version, pk.PubKeyAlgo)
	}
	self, err := e.PrimarySelfSignature(at, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !self.FlagsValid || !self.FlagCertify || self.FlagSign || self.FlagEncryptCommunications || self.FlagEncryptStorage {
		t.Fatalf("primary flags: certify %v sign %v encrypt %v/%v", self.FlagCertify, self.FlagSign, self.FlagEncryptCommunications, self.FlagEncryptStorage)
	}
	if self.KeyLifetimeSecs != nil && *self.KeyLifetimeSecs != 0 {
		t.Fatalf("primary expires after %ds", *self.KeyLifetimeSecs)
	}
	if len(e.Subkeys) != 2 {
		t.Fatalf("%d subkeys, want 2", len(e.Subkeys))
	}
	var signing, encryption int
	for _, s := range e.Subkeys {
		if s.PublicKey.Version != 4 {
			t.Fatalf("subkey version %d", s.PublicKey.Version)
		}
		sig, err := s.LatestValidBindingSignature(at, nil)
		if err != nil {
			t.Fatal(err)
		}
		curve, err := s.PublicKey.Curve()
		if err != nil || curve != packet.Curve25519 {
			t.Fatalf("subkey curve %q %v", curve, err)
		}
		switch s.PublicKey.PubKeyAlgo {
		case packet.PubKeyAlgoEdDSA:
			signing++
			if !sig.FlagSign || sig.FlagCertify || sig.FlagEncryptCommunications || sig.FlagEncryptStorage {
				t.Fatal("signing subkey has other flags")
			}
			if sig.EmbeddedSignature == nil {
				t.Fatal("signing subkey lacks its primary-key binding (back) signature")
			}
		case packet.PubKeyAlgoECDH:
			encryption++
			if sig.FlagSign || sig.FlagCertify || !sig.FlagEncryptCommunications || !sig.FlagEncryptStorage {
				t.Fatal("encryption subkey flags")
			}
		default:
			t.Fatalf("subkey algorithm %d", s.PublicKey.PubKeyAlgo)
		}
		if sig.KeyLifetimeSecs != nil && *sig.KeyLifetimeSecs != 0 {
			t.Fatal("subkey expires")
		}
	}
	if signing != 1 || encryption != 1 {
		t.Fatalf("%d signing and %d encryption subkeys", signing, encryption)
	}
	sk, ok := e.SigningKey(at, nil)
	if !ok || sk.PublicKey == pk {
		t.Fatal("the signing key is not the subkey")
	}
}

// Legacy OpenPGP curve OIDs (RFC 9580 §9.2) as they appear in v4 key
// packets, preceded by their length byte.
var (
	oidEd25519 = []byte{9, 0x2b, 0x06, 0x01, 0x04, 0x01, 0xda, 0x47, 0x0f, 0x01}
	oidCv25519 = []byte{10, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x97, 0x55, 0x01, 0x05, 0x01}
)

// checkRawLayout walks the packets of an armored key without go-crypto's
// packet parser: a v4 EdDSA(22)/Ed25519 primary, User IDs with their
// signatures, a v4 EdDSA/Ed25519 subkey and a v4 ECDH(18)/Cv25519 subkey,
// and no secret-key packets.
func checkRawLayout(t *testing.T, armored []byte) {
	t.Helper()
	block, err := armor.Decode(bytes.NewReader(armored))
	if err != nil {
		t.Fatal(err)
	}
	if block.Type != "PGP PUBLIC KEY BLOCK" {
		t.Fatalf("armor type %q", block.Type)
	}
	data, err := io.ReadAll(block.Body)
	if err != nil {
		t.Fatal(err)
	}
	var tags []int
	subkeys := map[byte][]byte{}
	for len(data) > 0 {
		tag, body, rest, err := rawPacket(data)
		if err != nil {
			t.Fatal(err)
		}
		data = rest
		tags = append(tags, tag)
		switch tag {
		case 5, 7:
			t.Fatalf("secret key packet (tag %d) in a public key", tag)
		case 6, 14:
			// version | created (4) | algorithm | OID
			if len(body) < 7 || body[0] != 4 {
				t.Fatalf("key packet (tag %d) is not v4", tag)
			}
			if created := time.Unix(int64(body[1])<<24|int64(body[2])<<16|int64(body[3])<<8|int64(body[4]), 0); !created.Equal(goldenNow) {
				t.Fatalf("key packet created %v", created)
			}
			if tag == 6 {
				if body[5] != 22 || !bytes.HasPrefix(body[6:], oidEd25519) {
					t.Fatalf("primary: algorithm %d, OID % x", body[5], body[6:min(len(body), 17)])
				}
				continue
			}
			subkeys[body[5]] = body[6:]
		}
	}
	if tags[0] != 6 || tags[1] != 13 || tags[2] != 2 {
		t.Fatalf("packet sequence %v does not start with key, User ID, signature", tags)
	}
	if n := countTags(tags, 14); n != 2 || len(subkeys) != 2 {
		t.Fatalf("packet sequence %v: %d subkeys", tags, n)
	}
	if !bytes.HasPrefix(subkeys[22], oidEd25519) {
		t.Fatal("no Ed25519 (EdDSA legacy) subkey")
	}
	if !bytes.HasPrefix(subkeys[18], oidCv25519) {
		t.Fatal("no Cv25519 (ECDH) subkey")
	}
}

func countTags(s []int, v int) int {
	n := 0
	for _, x := range s {
		if x == v {
			n++
		}
	}
	return n
}

// rawPacket splits the first OpenPGP packet off data (RFC 9580 §4.2; no
// partial lengths, which keys never use).
func rawPacket(data []byte) (tag int, body, rest []byte, err error) {
	if len(data) < 2 || data[0]&0x80 == 0 {
		return 0, nil, nil, fmt.Errorf("bad packet header % x", data[:min(len(data), 2)])
	}
	var n, hdr int
	if data[0]&0x40 != 0 { // new format
		tag = int(data[0] & 0x3f)
		switch l := data[1]; {
		case l < 192:
			n, hdr = int(l), 2
		case l < 224:
			if len(data) < 3 {
				return 0, nil, nil, io.ErrUnexpectedEOF
			}
			n, hdr = (int(l)-192)<<8+int(data[2])+192, 3
		case l == 255:
			if len(data) < 6 {
				return 0, nil, nil, io.ErrUnexpectedEOF
			}
			n, hdr = int(data[2])<<24|int(data[3])<<16|int(data[4])<<8|int(data[5]), 6
		default:
			return 0, nil, nil, fmt.Errorf("partial body length in a key")
		}
	} else { // old format
		tag = int(data[0]>>2) & 0x0f
		switch data[0] & 3 {
		case 0:
			n, hdr = int(data[1]), 2
		case 1:
			if len(data) < 3 {
				return 0, nil, nil, io.ErrUnexpectedEOF
			}
			n, hdr = int(data[1])<<8|int(data[2]), 3
		case 2:
			if len(data) < 5 {
				return 0, nil, nil, io.ErrUnexpectedEOF
			}
			n, hdr = int(data[1])<<24|int(data[2])<<16|int(data[3])<<8|int(data[4]), 5
		default:
			return 0, nil, nil, fmt.Errorf("indeterminate length in a key")
		}
	}
	if len(data) < hdr+n {
		return 0, nil, nil, io.ErrUnexpectedEOF
	}
	return tag, data[hdr : hdr+n], data[hdr+n:], nil
}
