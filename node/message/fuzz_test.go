package message

import (
	"bytes"
	"context"
	"testing"

	"github.com/dsep-project/dsep/address"
)

// FuzzOpen feeds Open hostile payloads: it must never panic, and whatever
// it accepts must be a mail Alice signed for Bob.
func FuzzOpen(f *testing.F) {
	c := newCast(f)
	m := testMail("fuzz", "body\r\n")
	good := seal(f, m, c.alice, c.bob, checkNow)
	forBob := withParties(m, c.alice.pub.Fingerprint().String(), c.bob.pub.Fingerprint().String())
	signed := signedPackets(f, forBob, []*address.Key{c.alice.own}, checkNow)
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add(append(bytes.Clone(good), good...))
	flipped := bytes.Clone(good)
	flipped[len(flipped)/2] ^= 0x80
	f.Add(flipped)
	f.Add(encryptPackets(f, compressed(f, signed), c.bob.pub, 1))
	f.Add(encryptPackets(f, signedPackets(f, forBob, nil, checkNow), c.bob.pub, 1))
	f.Add(encryptPackets(f, signed, c.bob.pub, 3))
	f.Add(rawPayload(f, forBob, c.bob.pub, c.mallory.own))
	f.Add(signed)
	f.Add([]byte{})
	f.Add([]byte("\xc1\x5e\x03\x00\x00\x00\x00\x00\x00\x00\x00\x12\x01\x07\x40"))

	l := newLookup(c.alice, c.mallory)
	f.Fuzz(func(t *testing.T, payload []byte) {
		o, err := Open(context.Background(), payload, OpenOptions{Own: c.bob.own, Lookup: l.fn, Now: checkNow, MaxMail: 1 << 20})
		if err != nil {
			return
		}
		if o.Sender != c.alice.pub.Fingerprint() || o.Recipient != c.bob.pub.Fingerprint() {
			t.Fatalf("opened a mail from %s to %s", o.Sender, o.Recipient)
		}
		if err := o.SenderKey.VerifyDetached("", o.Mail, o.Signature, checkNow); err != nil {
			t.Fatalf("opened a mail whose signature does not verify: %v", err)
		}
	})
}
