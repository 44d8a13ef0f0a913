package address

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/ProtonMail/go-crypto/openpgp/s2k"
	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"
)

// pgpConfig is the OpenPGP configuration DSEP signs and generates with:
// v4 Ed25519/Cv25519 keys (GnuPG 2.2 and Sequoia read them), SHA-256, AES-256.
// rnd may be nil (crypto/rand).
func pgpConfig(now time.Time, rnd io.Reader) *packet.Config {
	if rnd == nil {
		rnd = rand.Reader
	}
	return &packet.Config{
		Rand:          rnd,
		Time:          func() time.Time { return now },
		Algorithm:     packet.PubKeyAlgoEdDSA,
		Curve:         packet.Curve25519,
		DefaultHash:   crypto.SHA256,
		DefaultCipher: packet.CipherAES256,
	}
}

// NewIdentityOptions tunes NewIdentity. The zero value is what dsep init
// uses.
type NewIdentityOptions struct {
	// Now is the creation time of the keys; zero means time.Now(). A key
	// created after a verifier's "now" is unusable to it, so tests that fix
	// the clock must fix it here too.
	Now time.Time
	// Rand is the entropy source; nil means crypto/rand. Tests pass a
	// deterministic reader to produce golden keys.
	Rand io.Reader
}

// NewIdentity generates a DSEP identity for the User ID "name <email>": an
// Ed25519 primary key that only certifies, an Ed25519 signing subkey and a
// Cv25519 encryption subkey, all OpenPGP v4 without expiry. The returned key
// holds unencrypted private material: seal it with SealSecret before it
// touches the disk.
func NewIdentity(name string, email Email, opt NewIdentityOptions) (*Key, error) {
	if email.IsZero() {
		return nil, fmt.Errorf("address: identity needs an email address")
	}
	uid, err := UserID(name, email)
	if err != nil {
		return nil, err
	}
	return newIdentity(uid, opt)
}

// splitUserID splits "Name <email>" into the parts go-crypto joins again.
func splitUserID(uid string) (name, email string) {
	if strings.HasSuffix(uid, ">") {
		if i := strings.LastIndexByte(uid, '<'); i >= 0 {
			return strings.TrimSuffix(uid[:i], " "), uid[i+1 : len(uid)-1]
		}
	}
	return uid, ""
}

// NewDomainKey generates the key of a domain: the same layout as a user's,
// with the User ID "DSEP domain key for <domain>" (no email, so it can
// never be mistaken for a user binding).
func NewDomainKey(domain string, opt NewIdentityOptions) (*Key, error) {
	d, err := CanonicalDomain(domain)
	if err != nil {
		return nil, err
	}
	return newIdentity(DomainUserID(d), opt)
}

// domainUserIDPrefix starts the User ID of every domain key.
const domainUserIDPrefix = "DSEP domain key for "

// DomainUserID is the User ID of a domain key.
func DomainUserID(domain string) string { return domainUserIDPrefix + domain }

// DomainOfUserID returns the domain a domain key's User ID names.
func DomainOfUserID(uid string) (string, bool) {
	d, ok := strings.CutPrefix(uid, domainUserIDPrefix)
	return d, ok && d != ""
}

func newIdentity(uid string, opt NewIdentityOptions) (*Key, error) {
	now := opt.Now
	if now.IsZero() {
		now = time.Now()
	}
	now = now.Truncate(time.Second)
	cfg := pgpConfig(now, opt.Rand)
	name, email := splitUserID(uid)
	e, err := openpgp.NewEntity(name, "", email, cfg)
	if err != nil {
		return nil, fmt.Errorf("address: generating key: %w", err)
	}
	id, ok := e.Identities[uid]
	if !ok || len(id.SelfCertifications) != 1 {
		return nil, fmt.Errorf("address: generated key lacks User ID %q", uid)
	}
	// The primary only certifies: the node signs with the subkey, so the
	// primary can be kept offline.
	self := id.SelfCertifications[0].Packet
	self.FlagSign = false
	self.FlagCertify = true
	if err := self.SignUserId(uid, e.PrimaryKey, e.PrivateKey, cfg); err != nil {
		return nil, fmt.Errorf("address: signing User ID: %w", err)
	}
	if err := e.AddSigningSubkey(cfg); err != nil {
		return nil, fmt.Errorf("address: adding signing subkey: %w", err)
	}
	return newKey(e)
}

// SealSecret serializes k's private key material, protected by passphrase
// (see Seal). An empty passphrase writes it unprotected; callers must only
// allow that on explicit request.
func (k *Key) SealSecret(passphrase []byte) ([]byte, error) {
	if k.e.PrivateKey == nil {
		return nil, errors.New("address: key has no private part")
	}
	var plain bytes.Buffer
	if err := k.e.SerializePrivateWithoutSigning(&plain, nil); err != nil {
		return nil, fmt.Errorf("address: serializing secret key: %w", err)
	}
	defer wipe(plain.Bytes())
	return Seal(SealMagicSecretKey, plain.Bytes(), passphrase)
}

// SecretIsProtected reports whether a sealed secret needs a passphrase.
func SecretIsProtected(sealed []byte) bool { return IsSealedWithPassphrase(sealed) }

// OpenSecret reverses SealSecret. The public certificate pub, if not nil,
// supplies the third-party certifications and revocations gathered since
// the secret was sealed; its fingerprint must match.
func OpenSecret(sealed, passphrase []byte, pub *Key) (*Key, error) {
	plain, err := Open(SealMagicSecretKey, sealed, passphrase)
	if err != nil {
		return nil, err
	}
	defer wipe(plain)
	k, err := ReadKey(bytes.NewReader(plain))
	if err != nil {
		return nil, fmt.Errorf("address: secret key file: %w", err)
	}
	if k.e.PrivateKey == nil {
		return nil, errors.New("address: secret key file holds no private key")
	}
	if pub != nil {
		if pub.fpr != k.fpr {
			return nil, fmt.Errorf("address: secret key %s does not match public key %s", k.fpr, pub.fpr)
		}
		mergeCertifications(k, pub)
		mergeRevocations(k, pub)
	}
	return k, nil
}

// ExportSecret returns the secret key as an OpenPGP transferable secret key
// in ASCII armor, protected with iterated-and-salted SHA-256 S2K and
// AES-256 (the protection GnuPG 2.2 reads; it reads neither Argon2 nor
// AEAD-protected keys). An empty passphrase exports it unprotected.
func (k *Key) ExportSecret(passphrase []byte) ([]byte, error) {
	if k.e.PrivateKey == nil {
		return nil, errors.New("address: key has no private part")
	}
	if k.e.PrivateKey.Encrypted {
		return nil, errors.New("address: unlock the secret key before exporting it")
	}
	for _, s := range k.e.Subkeys {
		if s.PrivateKey != nil && s.PrivateKey.Encrypted {
			return nil, errors.New("address: unlock the secret key before exporting it")
		}
	}
	c := k.Clone()
	if len(passphrase) > 0 {
		cfg := &packet.Config{
			DefaultCipher: packet.CipherAES256,
			S2KConfig: &s2k.Config{
				S2KMode:  s2k.IteratedSaltedS2K,
				Hash:     crypto.SHA256,
				S2KCount: 65011712,
			},
		}
		if err := c.e.EncryptPrivateKeys(passphrase, cfg); err != nil {
			return nil, fmt.Errorf("address: protecting secret key: %w", err)
		}
	}
	var b bytes.Buffer
	if err := c.e.SerializePrivateWithoutSigning(&b, nil); err != nil {
		return nil, err
	}
	return armorBytes(openpgp.PrivateKeyType, b.Bytes()), nil
}
