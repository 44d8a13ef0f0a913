package address

import (
	"errors"
	"fmt"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/packet"
	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"
)

// DefaultCertificationLifetime is how long a domain's certification of a
// user's User ID is valid unless the domain owner says otherwise.
const DefaultCertificationLifetime = 365 * 24 * time.Hour

// MaxClockSkew is how far in the future a signature's creation time may be
// before it is refused (as DESIGN.md allows DHT records).
const MaxClockSkew = 10 * time.Minute

// Errors from FindCertification, each mapped to a distinct verdict.
var (
	ErrNoCertification      = errors.New("address: no certification by the domain key")
	ErrCertificationExpired = errors.New("address: the domain's certification has expired")
	ErrCertificationRevoked = errors.New("address: the domain revoked its certification")
	ErrNoUserID             = errors.New("address: key has no valid User ID for this address")
)

// Certify returns a copy of user in which signer (whose primary key must
// hold unlocked private material) certifies the User ID uid, valid for
// lifetime from now (0 means DefaultCertificationLifetime; negative means no
// expiry). This is how a domain binds an address to a key, and how an old
// key vouches for its successor. gpg --check-sigs shows it as a good "sig!".
func Certify(user *Key, uid string, signer *Key, now time.Time, lifetime time.Duration) (*Key, error) {
	if signer.e.PrivateKey == nil || signer.e.PrivateKey.Encrypted {
		return nil, errors.New("address: certifying needs the signer's unlocked primary key")
	}
	if user.fpr == signer.fpr {
		return nil, errors.New("address: a key cannot certify itself as a third party")
	}
	c := user.Clone()
	id, ok := c.e.Identities[uid]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrNoUserID, uid)
	}
	if err := roomForSignature(id); err != nil {
		return nil, err
	}
	if _, err := id.Verify(now, nil); err != nil {
		return nil, fmt.Errorf("address: User ID %q has no valid self-signature: %w", uid, err)
	}
	now = now.Truncate(time.Second)
	cfg := pgpConfig(now, nil)
	switch {
	case lifetime == 0:
		lifetime = DefaultCertificationLifetime
	case lifetime < 0:
		lifetime = 0
	}
	cfg.SigLifetimeSecs = uint32(lifetime / time.Second)
	// Not Identity.SignIdentity: go-crypto v1.5.2 picks the signing subkey
	// as "certification key", and a certification made by a subkey is
	// invalid (gpg reports it as such). Certify with the primary.
	sig := primarySig(signer, packet.SigTypeGenericCert, cfg)
	if err := sig.SignUserId(uid, c.e.PrimaryKey, signer.e.PrivateKey, cfg); err != nil {
		return nil, fmt.Errorf("address: certifying %q: %w", uid, err)
	}
	id.OtherCertifications = append(id.OtherCertifications, packet.NewVerifiableSig(sig))
	return c, nil
}

// roomForSignature refuses to add a signature to a User ID that already
// carries MaxSignaturesPerUserID: the result could not be read back.
func roomForSignature(id *openpgp.Identity) error {
	if len(id.SelfCertifications)+len(id.OtherCertifications)+len(id.Revocations) >= MaxSignaturesPerUserID {
		return fmt.Errorf("%w: User ID %q already carries %d signatures", ErrTooLarge, id.Name, MaxSignaturesPerUserID)
	}
	return nil
}

// primarySig starts a signature packet issued by signer's primary key.
func primarySig(signer *Key, t packet.SignatureType, cfg *packet.Config) *packet.Signature {
	pk := signer.e.PrimaryKey
	life := cfg.SigLifetime()
	return &packet.Signature{
		Version:           pk.Version,
		SigType:           t,
		PubKeyAlgo:        pk.PubKeyAlgo,
		Hash:              cfg.Hash(),
		CreationTime:      cfg.Now(),
		IssuerKeyId:       &pk.KeyId,
		IssuerKeyVersion:  uint8(pk.Version),
		IssuerFingerprint: pk.Fingerprint,
		SigLifetimeSecs:   &life,
	}
}

// Certification is a verified third-party certification of a User ID.
type Certification struct {
	UserID  string
	Signer  Fingerprint
	Created time.Time
	Expires time.Time // zero: never
}

// FindCertification returns the newest valid certification of user's User
// ID uid by signer's primary key at now. It checks the signature, its
// creation time (not more than MaxClockSkew ahead), its expiry and any
// newer certification revocation by signer. Errors: ErrNoUserID,
// ErrNoCertification, ErrCertificationExpired, ErrCertificationRevoked.
func FindCertification(user *Key, uid string, signer *Key, now time.Time) (Certification, error) {
	var zero Certification
	id, ok := user.e.Identities[uid]
	if !ok {
		return zero, ErrNoUserID
	}
	var best *packet.Signature
	var sawExpired bool
	var revokedAt time.Time
	for _, vs := range id.OtherCertifications {
		sig := vs.Packet
		if !sig.CheckKeyIdOrFingerprint(signer.e.PrimaryKey) {
			continue
		}
		switch sig.SigType {
		case packet.SigTypeGenericCert, packet.SigTypePersonaCert, packet.SigTypeCasualCert,
			packet.SigTypePositiveCert, packet.SigTypeCertificationRevocation:
		default:
			continue
		}
		if err := signer.e.PrimaryKey.VerifyUserIdSignature(uid, user.e.PrimaryKey, sig); err != nil {
			continue
		}
		if sig.CreationTime.After(now.Add(MaxClockSkew)) {
			continue // dated in the future: not yet believable
		}
		if sig.SigType == packet.SigTypeCertificationRevocation {
			if sig.CreationTime.After(revokedAt) {
				revokedAt = sig.CreationTime
			}
			continue
		}
		if sigExpiredAt(sig, now) {
			sawExpired = true
			continue
		}
		if best == nil || sig.CreationTime.After(best.CreationTime) {
			best = sig
		}
	}
	if best == nil {
		if !revokedAt.IsZero() {
			return zero, ErrCertificationRevoked
		}
		if sawExpired {
			return zero, ErrCertificationExpired
		}
		return zero, ErrNoCertification
	}
	if !revokedAt.IsZero() && !revokedAt.Before(best.CreationTime) {
		return zero, ErrCertificationRevoked
	}
	c := Certification{UserID: uid, Signer: signer.fpr, Created: best.CreationTime}
	if best.SigLifetimeSecs != nil && *best.SigLifetimeSecs != 0 {
		c.Expires = best.CreationTime.Add(time.Duration(*best.SigLifetimeSecs) * time.Second)
	}
	return c, nil
}

// sigExpiredAt reports whether sig's lifetime has run out at now (its
// creation time being in the future is judged separately).
func sigExpiredAt(sig *packet.Signature, now time.Time) bool {
	if sig.SigLifetimeSecs == nil || *sig.SigLifetimeSecs == 0 {
		return false
	}
	return !now.Before(sig.CreationTime.Add(time.Duration(*sig.SigLifetimeSecs) * time.Second))
}

// RevokeCertification returns a copy of user in which signer revokes its
// certification of uid (a domain withdrawing an address).
func RevokeCertification(user *Key, uid string, signer *Key, now time.Time) (*Key, error) {
	if signer.e.PrivateKey == nil || signer.e.PrivateKey.Encrypted {
		return nil, errors.New("address: revoking a certification needs the signer's unlocked primary key")
	}
	c := user.Clone()
	id, ok := c.e.Identities[uid]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrNoUserID, uid)
	}
	if err := roomForSignature(id); err != nil {
		return nil, err
	}
	cfg := pgpConfig(now.Truncate(time.Second), nil)
	sig := primarySig(signer, packet.SigTypeCertificationRevocation, cfg)
	if err := sig.SignUserId(uid, c.e.PrimaryKey, signer.e.PrivateKey, cfg); err != nil {
		return nil, fmt.Errorf("address: revoking certification: %w", err)
	}
	id.OtherCertifications = append(id.OtherCertifications, packet.NewVerifiableSig(sig))
	return c, nil
}

// MergeCertifications adds to dst (in place) the third-party
// certifications that src carries for the same key, and returns how many
// were new. It is how a user takes in the domain's certification.
func MergeCertifications(dst, src *Key) (int, error) {
	if dst.fpr != src.fpr {
		return 0, fmt.Errorf("address: certifications are for key %s, not %s", src.fpr, dst.fpr)
	}
	return mergeCertifications(dst, src), nil
}
