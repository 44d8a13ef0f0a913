package address

import (
	"errors"
	"testing"
	"time"
)

func TestWithCertification(t *testing.T) {
	dom := newDomain(t, "example.org")
	alice := newUser(t, "Alice", "alice@example.org")
	uid := "Alice <alice@example.org>"
	cert := certify(t, alice, dom, "alice@example.org", testNow, 0)
	_, sig, err := cert.CertificationPacket(uid, dom, testNow)
	if err != nil {
		t.Fatal(err)
	}
	at := testNow.Add(time.Hour)
	bare := alice.PublicOnly()
	got, err := bare.WithCertification(uid, dom.PrimaryPacket(), sig, at)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := FindCertification(got, uid, dom, at); err != nil {
		t.Fatalf("attached certification not found: %v", err)
	}
	if _, err := FindCertification(bare, uid, dom, at); err == nil {
		t.Fatal("WithCertification modified its receiver")
	}
	// Attaching twice keeps one copy.
	again, err := got.WithCertification(uid, dom.PrimaryPacket(), sig, at)
	if err != nil || len(again.Entity().Identities[uid].OtherCertifications) != 1 {
		t.Fatalf("second attach: %v", err)
	}
	// The certification of another key, or by another signer, is refused.
	bob := newUser(t, "Alice", "alice@example.org")
	if _, err := bob.WithCertification(uid, dom.PrimaryPacket(), sig, at); !errors.Is(err, ErrNoCertification) {
		t.Fatalf("another key's certification: %v", err)
	}
	other := newDomain(t, "example.org")
	if _, err := bare.WithCertification(uid, other.PrimaryPacket(), sig, at); !errors.Is(err, ErrNoCertification) {
		t.Fatalf("claimed by another signer: %v", err)
	}
	if _, err := bare.WithCertification(uid, dom.PrimaryPacket(), sig, testNow.Add(2*DefaultCertificationLifetime)); !errors.Is(err, ErrCertificationExpired) {
		t.Fatalf("expired: %v", err)
	}
}
