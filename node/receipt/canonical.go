package receipt

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"math/bits"

	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// canonicalSignature checks that sig is exactly one OpenPGP v4
// binary-document signature packet (type 0x00) with SHA-256, written
// canonically (new-format header with the shortest length, subpacket
// lengths and MPIs minimal, no unhashed subpackets), whose hash tag matches
// msg. It does not check who signed: the rules of docs/protocol.md §9.1,
// which make a valid signature immalleable.
func canonicalSignature(sig, msg []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("malformed signature packet: %v", r)
		}
	}()
	p, err := packet.Read(bytes.NewReader(sig))
	if err != nil {
		return fmt.Errorf("malformed signature packet: %v", err)
	}
	s, ok := p.(*packet.Signature)
	if !ok {
		return fmt.Errorf("a %T, not a signature packet", p)
	}
	switch {
	case s.Version != 4:
		return fmt.Errorf("a version %d signature, want 4", s.Version)
	case s.SigType != packet.SigTypeBinary:
		return fmt.Errorf("signature type %#x, want a binary-document signature (0x00)", uint8(s.SigType))
	case s.Hash != crypto.SHA256:
		return errors.New("the signature's hash is not SHA-256")
	case !canonicalMPIs(s):
		return errors.New("the signature's MPIs have leading zero bits")
	}
	// Written back, a canonical packet gives the same bytes (header,
	// subpacket lengths, nothing after the packet).
	var re bytes.Buffer
	if err := s.Serialize(&re); err != nil || !bytes.Equal(re.Bytes(), sig) {
		return errors.New("the signature packet is not in canonical form (new-format header, shortest lengths, nothing after it)")
	}
	if unhashedLen(sig) != 0 {
		return errors.New("the signature has unhashed subpackets")
	}
	// go-crypto checks the hash tag (the digest's left 16 bits) only for
	// v5 and v6 signatures; nobody but the signer may vary it either.
	h, err := s.PrepareVerify()
	if err != nil {
		return err
	}
	h.Write(msg)
	if err := packet.VerifyHashTag(h, s); err != nil {
		return err
	}
	return nil
}

// unhashedLen returns the length of the unhashed subpacket area of sig, a
// canonical v4 signature packet.
func unhashedLen(sig []byte) int {
	body := sig[2:] // a 1-byte tag and, for a body under 192 bytes, a 1-byte length
	switch {
	case sig[1] >= 224:
		body = sig[6:]
	case sig[1] >= 192:
		body = sig[3:]
	}
	hashed := int(body[4])<<8 | int(body[5])
	return int(body[6+hashed])<<8 | int(body[7+hashed])
}

// canonicalMPIs reports whether the MPIs of a signature have no leading
// zero bits: their bit count is the exact bit length of the value (RFC
// 9580 §3.2). Otherwise the same signature could be written several ways.
func canonicalMPIs(s *packet.Signature) bool {
	type mpi interface {
		Bytes() []byte
		BitLength() uint16
	}
	for _, f := range []mpi{s.RSASignature, s.DSASigR, s.DSASigS, s.ECDSASigR, s.ECDSASigS, s.EdDSASigR, s.EdDSASigS} {
		if f == nil {
			continue
		}
		b := f.Bytes()
		if len(b) == 0 {
			if f.BitLength() != 0 {
				return false
			}
			continue
		}
		if b[0] == 0 || int(f.BitLength()) != 8*(len(b)-1)+bits.Len8(b[0]) {
			return false
		}
	}
	return true
}
