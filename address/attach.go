package address

import (
	"fmt"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// WithCertification returns a copy of k carrying the third-party
// certification sig (one signature packet) of its User ID uid by signer,
// after checking it (KeyPacket.VerifyCertification). It is how a resolver
// joins the key from a key record with the domain's certification from an
// email record.
func (k *Key) WithCertification(uid string, signer *KeyPacket, sig []byte, now time.Time) (*Key, error) {
	if _, err := signer.VerifyCertification(k.PrimaryPacket(), uid, sig, now); err != nil {
		return nil, err
	}
	s, err := readSignaturePacket(sig)
	if err != nil {
		return nil, err
	}
	c := k.PublicOnly()
	id, ok := c.e.Identities[uid]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrNoUserID, uid)
	}
	for _, have := range id.OtherCertifications {
		if sameSig(have.Packet, s) {
			return c, nil
		}
	}
	if len(id.OtherCertifications)+len(id.SelfCertifications)+len(id.Revocations) >= MaxSignaturesPerUserID {
		return nil, fmt.Errorf("%w: more than %d signatures on a User ID", ErrTooLarge, MaxSignaturesPerUserID)
	}
	id.OtherCertifications = append(id.OtherCertifications, packet.NewVerifiableSig(s))
	return c, nil
}
