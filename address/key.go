package address

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"
)

// Size limits for key material read from files and the network.
const (
	// MaxKeyBytes bounds one serialized key (certificate) with its
	// signatures. A DSEP key with a few certifications is about 1–2 KiB.
	MaxKeyBytes = 64 << 10
	// MaxKeyringKeys bounds how many keys one file may hold.
	MaxKeyringKeys = 64
	// MaxUserIDs bounds the User IDs of one key.
	MaxUserIDs = 32
	// MaxSignaturesPerUserID bounds the certifications on one User ID.
	MaxSignaturesPerUserID = 64
)

// ErrTooLarge is returned when input exceeds a size limit.
var ErrTooLarge = errors.New("address: input exceeds size limit")

// ErrNoKey is returned when the input holds no OpenPGP key.
var ErrNoKey = errors.New("address: no OpenPGP key found")

// ErrNotDSEPKey is wrapped by errors about keys that are valid OpenPGP but
// lack what DSEP needs (a valid signing subkey and encryption subkey).
var ErrNotDSEPKey = errors.New("address: key is not usable for DSEP")

// Key is an OpenPGP v4 transferable public key (a certificate). It may also
// carry private key material, when it is one's own identity; serialization
// through Key never writes secrets. A Key is safe for concurrent reads but
// not for concurrent modification.
type Key struct {
	e   *openpgp.Entity
	fpr Fingerprint
	// mu serializes go-crypto's validity checks, which cache their result
	// in the signature (VerifiableSignature.Valid): even a read-only check
	// writes to the entity.
	mu sync.Mutex
}

func newKey(e *openpgp.Entity) (*Key, error) {
	if e == nil || e.PrimaryKey == nil {
		return nil, ErrNoKey
	}
	if e.PrimaryKey.Version != 4 {
		return nil, fmt.Errorf("%w: version %d key (DSEP uses v4)", ErrNotDSEPKey, e.PrimaryKey.Version)
	}
	f, err := FingerprintFromBytes(e.PrimaryKey.Fingerprint)
	if err != nil {
		return nil, err
	}
	// DSA's verification cost grows with the parameters the key itself
	// chooses (a 24 KiB DSA key costs ~30 s of CPU per self-signature),
	// and go-crypto verifies signatures before it rejects the algorithm.
	// DSEP keys are Ed25519/Cv25519: refuse DSA and ElGamal on input.
	algos := []packet.PublicKeyAlgorithm{e.PrimaryKey.PubKeyAlgo}
	for _, s := range e.Subkeys {
		algos = append(algos, s.PublicKey.PubKeyAlgo)
	}
	for _, a := range algos {
		if a == packet.PubKeyAlgoDSA || a == packet.PubKeyAlgoElGamal {
			return nil, fmt.Errorf("%w: key %s uses DSA or ElGamal (algorithm %d)", ErrNotDSEPKey, f, a)
		}
	}
	if len(e.Identities) > MaxUserIDs {
		return nil, fmt.Errorf("%w: more than %d User IDs", ErrTooLarge, MaxUserIDs)
	}
	for _, id := range e.Identities {
		if len(id.OtherCertifications)+len(id.SelfCertifications)+len(id.Revocations) > MaxSignaturesPerUserID {
			return nil, fmt.Errorf("%w: more than %d signatures on a User ID", ErrTooLarge, MaxSignaturesPerUserID)
		}
	}
	return &Key{e: e, fpr: f}, nil
}

// Entity returns the underlying go-crypto entity. Callers must not modify it.
func (k *Key) Entity() *openpgp.Entity { return k.e }

// Fingerprint returns the primary key's fingerprint.
func (k *Key) Fingerprint() Fingerprint { return k.fpr }

// KeyAddress returns the key address of the primary key.
func (k *Key) KeyAddress() KeyAddress { return KeyAddress(k.fpr) }

// Created returns the primary key's creation time.
func (k *Key) Created() time.Time { return k.e.PrimaryKey.CreationTime }

// HasSecret reports whether the key carries (possibly encrypted) private
// key material for its primary key or any subkey.
func (k *Key) HasSecret() bool {
	if k.e.PrivateKey != nil && !k.e.PrivateKey.Dummy() {
		return true
	}
	for _, s := range k.e.Subkeys {
		if s.PrivateKey != nil && !s.PrivateKey.Dummy() {
			return true
		}
	}
	return false
}

// UserIDs returns the key's User IDs with a valid self-signature at now,
// sorted.
func (k *Key) UserIDs(now time.Time) []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []string
	for name, id := range k.e.Identities {
		if _, err := id.Verify(now, nil); err == nil {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// Emails returns the canonical emails of the key's valid User IDs.
func (k *Key) Emails(now time.Time) []Email {
	var out []Email
	for _, uid := range k.UserIDs(now) {
		if e, err := EmailOfUserID(uid); err == nil {
			out = append(out, e)
		}
	}
	return out
}

// UserIDFor returns the valid User ID of k whose address is email.
func (k *Key) UserIDFor(email Email, now time.Time) (string, bool) {
	for _, uid := range k.UserIDs(now) {
		if e, err := EmailOfUserID(uid); err == nil && e == email {
			return uid, true
		}
	}
	return "", false
}

// ErrKeyExpired is wrapped by Check when the key or a needed subkey has
// expired (as opposed to being broken or revoked).
var ErrKeyExpired = errors.New("address: key has expired")

// ErrKeyRevoked is wrapped by Check when the key is revoked.
var ErrKeyRevoked = errors.New("address: key is revoked")

// Check verifies that k is a usable DSEP key at now: a valid, unexpired,
// unrevoked primary with a valid signing subkey and encryption subkey.
func (k *Key) Check(now time.Time) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, err := k.e.VerifyPrimaryKey(now, nil); err != nil {
		switch {
		case errors.Is(err, pgperrors.ErrKeyRevoked):
			return fmt.Errorf("%w: %s", ErrKeyRevoked, k.fpr)
		case errors.Is(err, pgperrors.ErrKeyExpired):
			return fmt.Errorf("%w: %s", ErrKeyExpired, k.fpr)
		}
		return fmt.Errorf("%w: key %s: %v", ErrNotDSEPKey, k.fpr, err)
	}
	// A subkey that was valid when the key was made but is not now has
	// expired; one that never was is missing.
	born := k.Created()
	if _, ok := k.e.SigningKey(now, nil); !ok {
		if _, was := k.e.SigningKey(born, nil); was {
			return fmt.Errorf("%w: the signing subkey of %s", ErrKeyExpired, k.fpr)
		}
		return fmt.Errorf("%w: key %s has no valid signing subkey", ErrNotDSEPKey, k.fpr)
	}
	if _, err := k.e.EncryptionKeyWithError(now, nil); err != nil {
		if _, was := k.e.EncryptionKeyWithError(born, nil); was == nil {
			return fmt.Errorf("%w: the encryption subkey of %s", ErrKeyExpired, k.fpr)
		}
		return fmt.Errorf("%w: key %s has no valid encryption subkey: %v", ErrNotDSEPKey, k.fpr, err)
	}
	return nil
}

// Serialize writes the public key in binary OpenPGP form, with every
// signature it carries. User IDs are written in sorted order so the output
// is deterministic.
func (k *Key) Serialize(w io.Writer) error {
	// go-crypto's Signature.Serialize caches its encoding inside the
	// signature: serialising is a write.
	k.mu.Lock()
	defer k.mu.Unlock()
	e := k.e
	if err := e.PrimaryKey.Serialize(w); err != nil {
		return err
	}
	for _, r := range e.Revocations {
		if err := r.Packet.Serialize(w); err != nil {
			return err
		}
	}
	for _, d := range e.DirectSignatures {
		if err := d.Packet.Serialize(w); err != nil {
			return err
		}
	}
	for _, name := range sortedIdentities(e) {
		if err := e.Identities[name].Serialize(w); err != nil {
			return err
		}
	}
	for _, s := range e.Subkeys {
		if err := s.Serialize(w, false); err != nil {
			return err
		}
	}
	return nil
}

func sortedIdentities(e *openpgp.Entity) []string {
	names := make([]string, 0, len(e.Identities))
	for n := range e.Identities {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Bytes returns the binary public key.
func (k *Key) Bytes() []byte {
	var b bytes.Buffer
	if err := k.Serialize(&b); err != nil {
		// Serializing parsed packets to memory fails only on a bug.
		panic("address: serialize key: " + err.Error())
	}
	return b.Bytes()
}

// Armored returns the public key in ASCII armor ("PGP PUBLIC KEY BLOCK").
func (k *Key) Armored() []byte { return armorBytes(openpgp.PublicKeyType, k.Bytes()) }

// PublicOnly returns a copy of k without private key material.
func (k *Key) PublicOnly() *Key {
	c, err := rereadKey(k.Bytes())
	if err != nil {
		panic("address: reparse own key: " + err.Error())
	}
	return c
}

// Clone returns a deep copy of k (including private material, if any, in
// whatever protection it had).
func (k *Key) Clone() *Key {
	if !k.HasSecret() {
		return k.PublicOnly()
	}
	var b bytes.Buffer
	if err := k.e.SerializePrivateWithoutSigning(&b, nil); err != nil {
		panic("address: serialize own key: " + err.Error())
	}
	// Third-party signatures are not written by SerializePrivate; add them.
	c, err := rereadKey(b.Bytes())
	if err != nil {
		panic("address: reparse own key: " + err.Error())
	}
	mergeCertifications(c, k)
	return c
}

// rereadKey parses the serialization of a key that was accepted once
// already. ReadKey's MaxKeyBytes does not apply: the key may have been
// read with a larger limit (ReadKeys), and copying it must not fail.
func rereadKey(b []byte) (*Key, error) {
	keys, err := ReadKeys(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return nil, err
	}
	if len(keys) != 1 {
		return nil, fmt.Errorf("address: expected one key, found %d", len(keys))
	}
	return keys[0], nil
}

func armorBytes(blockType string, data []byte) []byte {
	var b bytes.Buffer
	w, err := armor.Encode(&b, blockType, nil)
	if err != nil {
		panic(err)
	}
	w.Write(data)
	w.Close()
	b.WriteByte('\n')
	return b.Bytes()
}

// ReadKey reads exactly one key, armored or binary, of at most MaxKeyBytes.
func ReadKey(r io.Reader) (*Key, error) {
	keys, err := ReadKeys(r, MaxKeyBytes)
	if err != nil {
		return nil, err
	}
	if len(keys) != 1 {
		return nil, fmt.Errorf("address: expected one key, found %d", len(keys))
	}
	return keys[0], nil
}

// ReadKeys reads a keyring, armored or binary, of at most limit bytes and
// MaxKeyringKeys keys. It never panics on malformed input.
func ReadKeys(r io.Reader, limit int64) (keys []*Key, err error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%w: key data over %d bytes", ErrTooLarge, limit)
	}
	defer func() {
		// go-crypto is fuzzed upstream, but a panic here would be reachable
		// from the network: turn one into an error.
		if p := recover(); p != nil {
			keys, err = nil, fmt.Errorf("address: malformed key: %v", p)
		}
	}()
	var el openpgp.EntityList
	if isArmored(data) {
		block, aerr := armor.Decode(bytes.NewReader(data))
		if aerr != nil {
			return nil, fmt.Errorf("address: bad armor: %w", aerr)
		}
		if block.Type != openpgp.PublicKeyType && block.Type != openpgp.PrivateKeyType {
			return nil, fmt.Errorf("address: armor block %q is not a key", block.Type)
		}
		el, err = openpgp.ReadKeyRing(block.Body)
	} else {
		el, err = openpgp.ReadKeyRing(bytes.NewReader(data))
	}
	if err != nil {
		return nil, fmt.Errorf("address: reading key: %w", err)
	}
	if len(el) == 0 {
		return nil, ErrNoKey
	}
	if len(el) > MaxKeyringKeys {
		return nil, fmt.Errorf("%w: more than %d keys", ErrTooLarge, MaxKeyringKeys)
	}
	for _, e := range el {
		k, err := newKey(e)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, nil
}

func isArmored(b []byte) bool {
	b = bytes.TrimLeft(b, " \t\r\n")
	return bytes.HasPrefix(b, []byte("-----BEGIN PGP"))
}

// mergeCertifications copies the third-party certifications of src's User
// IDs onto dst's matching User IDs, skipping duplicates.
func mergeCertifications(dst, src *Key) int {
	n := 0
	for name, sid := range src.e.Identities {
		did, ok := dst.e.Identities[name]
		if !ok {
			continue
		}
	next:
		for _, c := range sid.OtherCertifications {
			for _, have := range did.OtherCertifications {
				if sameSig(have.Packet, c.Packet) {
					continue next
				}
			}
			if len(did.OtherCertifications) >= MaxSignaturesPerUserID-len(did.SelfCertifications) {
				break
			}
			did.OtherCertifications = append(did.OtherCertifications, packet.NewVerifiableSig(c.Packet))
			n++
		}
	}
	return n
}

func sameSig(a, b *packet.Signature) bool {
	var x, y bytes.Buffer
	if a.Serialize(&x) != nil || b.Serialize(&y) != nil {
		return false
	}
	return bytes.Equal(x.Bytes(), y.Bytes())
}
