package book

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/dsep-project/dsep/address"
)

// T is the clock of the tests: keys are made at T and checked hours later.
var T = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

func at(h int) time.Time { return T.Add(time.Duration(h) * time.Hour) }

func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		// Every Book is closed by its test's cleanup: none of badger's
		// goroutines may outlive it.
		deadline := time.Now().Add(5 * time.Second)
		leaks := badgerGoroutines()
		for len(leaks) > 0 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
			leaks = badgerGoroutines()
		}
		if len(leaks) > 0 {
			fmt.Fprintf(os.Stderr, "goroutine leak: %d of badger's goroutines are still running:\n\n%s\n",
				len(leaks), strings.Join(leaks, "\n\n"))
			code = 1
		}
	}
	os.Exit(code)
}

// badgerGoroutines returns the stacks of the running goroutines that
// badger (or its ristretto caches) started.
func badgerGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "github.com/dgraph-io/") {
			out = append(out, g)
		}
	}
	return out
}

func mustEmail(t testing.TB, s string) address.Email {
	t.Helper()
	e, err := address.ParseEmail(s)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func newUser(t testing.TB, email string, now time.Time) *address.Key {
	t.Helper()
	k, err := address.NewIdentity("Bob", mustEmail(t, email), address.NewIdentityOptions{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newDomain(t testing.TB, d string) *address.Key {
	t.Helper()
	k, err := address.NewDomainKey(d, address.NewIdentityOptions{Now: T})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// certify returns a public copy of user whose User ID for email signer
// has certified at now.
func certify(t testing.TB, user, signer *address.Key, email string, now time.Time) *address.Key {
	t.Helper()
	uid, ok := user.UserIDFor(mustEmail(t, email), now)
	if !ok {
		t.Fatalf("no User ID for %s", email)
	}
	c, err := address.Certify(user.PublicOnly(), uid, signer, now, 0)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// observation builds what a resolver would hand the book: the key, the
// domain key and the verdict of address.VerifyBinding at now.
func observation(t testing.TB, email string, key, dom *address.Key, now time.Time) Observation {
	t.Helper()
	e := mustEmail(t, email)
	v := address.VerifyBinding(address.BindingInput{
		Email:     e,
		DNS:       address.DNSAnswer{Records: []string{address.DomainRecord{Key: dom.Fingerprint()}.String()}},
		Key:       key,
		DomainKey: dom.PublicOnly(),
		Now:       now,
	})
	return Observation{Email: e, Key: key, DomainKey: dom.PublicOnly(), Verdict: v, Now: now}
}

func openBook(t testing.TB, dir string, opt Options) *Book {
	t.Helper()
	b, err := Open(dir, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func mustObserve(t testing.TB, b *Book, obs Observation, want EventKind) Event {
	t.Helper()
	ev, err := b.Observe(obs)
	if err != nil {
		t.Fatalf("Observe(%s, %s): %v", obs.Email, obs.Key.Fingerprint(), err)
	}
	if ev.Kind != want {
		t.Fatalf("Observe(%s, %s) = %s (%s), want %s", obs.Email, obs.Key.Fingerprint(), ev.Kind, ev.Message, want)
	}
	return ev
}

// fixture is a domain with Bob pinned to his first key.
type fixture struct {
	b     *Book
	dom   *address.Key
	bob   *address.Key // Bob's first key, with its secret
	bobC  *address.Key // its public form, certified by the domain
	email address.Email
}

const bobAddr = "bob@example.org"

func newFixture(t *testing.T) *fixture {
	f := &fixture{b: openBook(t, t.TempDir(), Options{}), dom: newDomain(t, "example.org"), email: mustEmail(t, bobAddr)}
	f.bob = newUser(t, bobAddr, T)
	f.bobC = certify(t, f.bob, f.dom, bobAddr, T)
	mustObserve(t, f.b, observation(t, bobAddr, f.bobC, f.dom, at(1)), Pinned)
	return f
}

// rotate makes Bob's legitimate successor (certified by the old key and,
// when withDomain, by the domain) and returns it with the revocation.
func (f *fixture) rotate(t *testing.T, now time.Time, withDomain bool) (*address.Key, *address.Revocation) {
	t.Helper()
	next, rev, err := address.Rotate(f.bob, now, address.NewIdentityOptions{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if withDomain {
		return certify(t, next, f.dom, bobAddr, now), rev
	}
	return next.PublicOnly(), rev
}

func (f *fixture) get(t *testing.T) *Contact {
	t.Helper()
	c, err := f.b.Get(f.email)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestPinVerify(t *testing.T) {
	f := newFixture(t)
	c := f.get(t)
	if c.State != FirstSeen || c.Key != f.bob.Fingerprint() || !c.FirstSeen.Equal(at(1)) ||
		c.Domain != f.dom.Fingerprint() || c.DNSSEC || !c.Trusted() || len(c.KeyData) == 0 || c.Email != f.email {
		t.Fatalf("after pinning: %+v", c)
	}
	if k, err := address.ReadKey(bytes.NewReader(c.KeyData)); err != nil || k.Fingerprint() != f.bob.Fingerprint() || k.HasSecret() {
		t.Fatalf("KeyData: %v", err)
	}

	ev := mustObserve(t, f.b, observation(t, bobAddr, f.bobC, f.dom, at(2)), Unchanged)
	if !ev.Contact.FirstSeen.Equal(at(1)) || !ev.Contact.Updated.Equal(at(2)) {
		t.Fatalf("unchanged moved the dates: %+v", ev.Contact)
	}

	other := newUser(t, bobAddr, T)
	if _, err := f.b.Verify(f.email, other.Fingerprint(), at(3)); err == nil || !strings.Contains(err.Error(), "matches neither") {
		t.Fatalf("Verify with a wrong fingerprint: %v", err)
	}
	c, err := f.b.Verify(f.email, f.bob.Fingerprint(), at(3))
	if err != nil {
		t.Fatal(err)
	}
	if c.State != Verified || !c.Trusted() {
		t.Fatalf("after Verify: %+v", c)
	}
	mustObserve(t, f.b, observation(t, bobAddr, f.bobC, f.dom, at(4)), Unchanged)
	if c := f.get(t); c.State != Verified {
		t.Fatalf("seeing the key again changed the state to %s", c.State)
	}

	// Lookups.
	if c, err := f.b.GetByKey(f.bob.Fingerprint()); err != nil || c.Email != f.email {
		t.Fatalf("GetByKey: %v %+v", err, c)
	}
	if _, err := f.b.GetByKey(other.Fingerprint()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetByKey of an unknown key: %v", err)
	}
	if _, err := f.b.Get(mustEmail(t, "carol@example.org")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of an unknown contact: %v", err)
	}
	if _, err := f.b.Verify(mustEmail(t, "carol@example.org"), other.Fingerprint(), at(4)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Verify of an unknown contact: %v", err)
	}
}

func TestObserveRefusesBadVerdicts(t *testing.T) {
	f := newFixture(t)
	carol := newUser(t, "carol@example.org", T)
	// Not certified by the domain: a new contact is not pinned.
	if _, err := f.b.Observe(observation(t, "carol@example.org", carol.PublicOnly(), f.dom, at(2))); err == nil {
		t.Fatal("pinned a key the domain does not vouch for")
	}
	// A key neither the pinned key nor the domain vouches for is no
	// successor: nothing is recorded.
	stranger := newUser(t, bobAddr, T)
	if _, err := f.b.Observe(observation(t, bobAddr, stranger.PublicOnly(), f.dom, at(2))); err == nil {
		t.Fatal("recorded a key nobody vouches for")
	}
	// A domain key DNS does not name.
	other := newDomain(t, "example.org")
	obs := observation(t, bobAddr, certify(t, stranger, other, bobAddr, at(2)), f.dom, at(2))
	obs.DomainKey = other.PublicOnly()
	obs.Verdict.Domain = other.Fingerprint()
	obs.Verdict.Reason = address.UnknownDomainKey
	if _, err := f.b.Observe(obs); err == nil {
		t.Fatal("recorded a key certified by a domain key DNS does not name")
	}
	// A verdict about another key.
	obs = observation(t, bobAddr, f.bobC, f.dom, at(2))
	obs.Key = stranger.PublicOnly()
	if _, err := f.b.Observe(obs); err == nil {
		t.Fatal("took a verdict about another key")
	}
	if c := f.get(t); c.State != FirstSeen || c.Key != f.bob.Fingerprint() || c.Pending != nil {
		t.Fatalf("a refused observation changed the contact: %+v", c)
	}
}

func TestFollowRotation(t *testing.T) {
	f := newFixture(t)
	next, rev := f.rotate(t, at(2), true)
	ev := mustObserve(t, f.b, observation(t, bobAddr, next, f.dom, at(3)), Followed)
	c := ev.Contact
	old := f.bob.Fingerprint()
	if c.State != Rotated || c.Key != next.Fingerprint() || !c.Trusted() ||
		!reflect.DeepEqual(c.Previous, []address.Fingerprint{old}) || c.FollowedFrom == nil || *c.FollowedFrom != old {
		t.Fatalf("after following: %+v", c)
	}
	for _, s := range []string{"rotated its key", old.String(), next.Fingerprint().String(), "example.org vouch"} {
		if !strings.Contains(ev.Message, s) {
			t.Errorf("message %q lacks %q", ev.Message, s)
		}
	}
	// The superseded revocation naming the key followed changes nothing.
	evs, err := f.b.ObserveRevocation(rev, at(3))
	if err != nil || len(evs) != 0 {
		t.Fatalf("superseded revocation: %v %+v", err, evs)
	}
	if r, err := f.b.Revocation(old); err != nil || r.Kind != "superseded" || r.Successor == nil || *r.Successor != next.Fingerprint() {
		t.Fatalf("revocation record: %v %+v", err, r)
	}
	// A stale record offering the old key does not move the contact back.
	mustObserve(t, f.b, observation(t, bobAddr, f.bobC, f.dom, at(4)), Outdated)
	mustObserve(t, f.b, observation(t, bobAddr, next, f.dom, at(4)), Unchanged)
	if c := f.get(t); c.Key != next.Fingerprint() || c.State != Rotated {
		t.Fatalf("after stale observation: %+v", c)
	}
	if c, err := f.b.GetByKey(old); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetByKey of a key followed from: %v %+v", err, c)
	}
}

func TestHijack(t *testing.T) {
	f := newFixture(t)
	evil := certify(t, newUser(t, bobAddr, T), f.dom, bobAddr, at(2))
	ev := mustObserve(t, f.b, observation(t, bobAddr, evil, f.dom, at(2)), ConflictRaised)
	c := ev.Contact
	if c.State != Conflict || c.Cause != CauseNotSignedByPinned || c.Trusted() || c.Key != f.bob.Fingerprint() ||
		c.Pending == nil || *c.Pending != evil.Fingerprint() || len(c.PendingData) == 0 {
		t.Fatalf("after a hijack: %+v", c)
	}
	w := HijackWarning(c)
	if ev.Message != w {
		t.Fatalf("event message is not the warning:\n%s", ev.Message)
	}
	for _, s := range []string{"WARNING", "hijack", "not signed by the key you had pinned", evil.Fingerprint().Grouped(),
		f.bob.Fingerprint().Grouped(), "dsep contacts approve bob@example.org", "dsep contacts block bob@example.org", "out of band"} {
		if !strings.Contains(w, s) {
			t.Errorf("warning lacks %q:\n%s", s, w)
		}
	}
	if HijackWarning(f.get(t)) != w || HijackWarning(&Contact{State: FirstSeen}) != "" || HijackWarning(nil) != "" {
		t.Fatal("HijackWarning outside a conflict")
	}
	if c, err := f.b.GetByKey(evil.Fingerprint()); err != nil || c.Email != f.email {
		t.Fatalf("GetByKey of the pending key: %v", err)
	}

	mustObserve(t, f.b, observation(t, bobAddr, evil, f.dom, at(3)), StillConflict)
	mustObserve(t, f.b, observation(t, bobAddr, f.bobC, f.dom, at(3)), StillConflict)
	evil2 := certify(t, newUser(t, bobAddr, T), f.dom, bobAddr, at(3))
	ev = mustObserve(t, f.b, observation(t, bobAddr, evil2, f.dom, at(3)), ConflictRaised)
	if *ev.Contact.Pending != evil2.Fingerprint() {
		t.Fatalf("pending not replaced: %+v", ev.Contact)
	}
	// The replaced pending key's material is gone.
	if _, err := f.b.GetByKey(evil.Fingerprint()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("replaced pending key still indexed: %v", err)
	}

	c, err := f.b.Approve(f.email, at(4))
	if err != nil {
		t.Fatal(err)
	}
	if c.State != FirstSeen || c.Key != evil2.Fingerprint() || c.Pending != nil || c.Reason != "" || !c.Trusted() ||
		!reflect.DeepEqual(c.Previous, []address.Fingerprint{f.bob.Fingerprint()}) || c.FollowedFrom != nil {
		t.Fatalf("after Approve: %+v", c)
	}
	if _, err := f.b.Approve(f.email, at(5)); err == nil || !strings.Contains(err.Error(), "nothing to approve") {
		t.Fatalf("second Approve: %v", err)
	}
}

func TestVerifyPending(t *testing.T) {
	f := newFixture(t)
	evil := certify(t, newUser(t, bobAddr, T), f.dom, bobAddr, at(2))
	mustObserve(t, f.b, observation(t, bobAddr, evil, f.dom, at(2)), ConflictRaised)
	c, err := f.b.Verify(f.email, evil.Fingerprint(), at(3))
	if err != nil {
		t.Fatal(err)
	}
	if c.State != Verified || c.Key != evil.Fingerprint() || c.Pending != nil || len(c.Previous) != 1 {
		t.Fatalf("after verifying the pending key: %+v", c)
	}
}

func TestDomainDoesNotVouch(t *testing.T) {
	f := newFixture(t)
	next, _ := f.rotate(t, at(2), false)
	obs := observation(t, bobAddr, next, f.dom, at(3))
	if obs.Verdict.Reason != address.NoCertification {
		t.Fatalf("verdict %v", obs.Verdict)
	}
	ev := mustObserve(t, f.b, obs, ConflictRaised)
	c := ev.Contact
	if c.Cause != CauseDomainDoesNotVouch || c.Trusted() || *c.Pending != next.Fingerprint() ||
		!strings.Contains(c.Reason, "does not vouch") {
		t.Fatalf("after a successor the domain does not vouch for: %+v", c)
	}
	for _, s := range []string{"signed by the key you had pinned", "example.org does not vouch", "stolen", "dsep contacts approve"} {
		if !strings.Contains(ev.Message, s) {
			t.Errorf("warning lacks %q:\n%s", s, ev.Message)
		}
	}
}

// The conflict a not-yet-certified successor raised is resolved when the
// domain's certification arrives: then both vouch, as for any rotation. A
// conflict of another cause is not.
func TestDomainCertifiesLater(t *testing.T) {
	f := newFixture(t)
	next, _ := f.rotate(t, at(2), false)
	mustObserve(t, f.b, observation(t, bobAddr, next, f.dom, at(3)), ConflictRaised)
	both := certify(t, next, f.dom, bobAddr, at(4))
	ev := mustObserve(t, f.b, observation(t, bobAddr, both, f.dom, at(5)), Followed)
	if c := ev.Contact; c.State != Rotated || c.Key != next.Fingerprint() || c.Pending != nil || !c.Trusted() {
		t.Fatalf("after the domain certified the successor: %+v", c)
	}

	// A hijack conflict stays a conflict even if the key is seen again.
	g := newFixture(t)
	evil := certify(t, newUser(t, bobAddr, at(2)), g.dom, bobAddr, at(2))
	mustObserve(t, g.b, observation(t, bobAddr, evil, g.dom, at(3)), ConflictRaised)
	mustObserve(t, g.b, observation(t, bobAddr, evil, g.dom, at(4)), StillConflict)
}

func TestTwoSuccessors(t *testing.T) {
	f := newFixture(t)
	k1, _ := f.rotate(t, at(2), true)
	mustObserve(t, f.b, observation(t, bobAddr, k1, f.dom, at(3)), Followed)
	// Whoever holds the old key makes a second successor, and gets the
	// domain to certify it too.
	k2 := newUser(t, bobAddr, at(3))
	uid, _ := k2.UserIDFor(f.email, at(3))
	k2c, err := address.Certify(k2.PublicOnly(), uid, f.bob, at(3), -1)
	if err != nil {
		t.Fatal(err)
	}
	k2c = certify(t, k2c, f.dom, bobAddr, at(3))
	ev := mustObserve(t, f.b, observation(t, bobAddr, k2c, f.dom, at(4)), ConflictRaised)
	c := ev.Contact
	if c.Cause != CauseTwoSuccessors || c.Key != k1.Fingerprint() || *c.Pending != k2.Fingerprint() || c.Trusted() {
		t.Fatalf("after two successors: %+v", c)
	}
	if !strings.Contains(ev.Message, "two different successors") || !strings.Contains(ev.Message, f.bob.Fingerprint().Grouped()) {
		t.Fatalf("warning:\n%s", ev.Message)
	}
}

func TestSupersededNamesAnotherSuccessor(t *testing.T) {
	f := newFixture(t)
	// The book follows a key the old key and the domain vouch for, then
	// learns the old key's revocation names a different successor.
	k1 := newUser(t, bobAddr, at(2))
	uid, _ := k1.UserIDFor(f.email, at(2))
	k1c, err := address.Certify(k1.PublicOnly(), uid, f.bob, at(2), -1)
	if err != nil {
		t.Fatal(err)
	}
	k1c = certify(t, k1c, f.dom, bobAddr, at(2))
	mustObserve(t, f.b, observation(t, bobAddr, k1c, f.dom, at(3)), Followed)
	_, rev := f.rotate(t, at(4), true) // names another key
	evs, err := f.b.ObserveRevocation(rev, at(5))
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].Kind != ConflictRaised || evs[0].Contact.Cause != CauseTwoSuccessors {
		t.Fatalf("events %+v", evs)
	}
	if evs, err := f.b.ObserveRevocation(rev, at(6)); err != nil || len(evs) != 0 {
		t.Fatalf("repeated sighting: %v %+v", err, evs)
	}
}

func TestCompromiseUndoesMove(t *testing.T) {
	f := newFixture(t)
	k1, superseded := f.rotate(t, at(2), true)
	mustObserve(t, f.b, observation(t, bobAddr, k1, f.dom, at(3)), Followed)
	if evs, err := f.b.ObserveRevocation(superseded, at(3)); err != nil || len(evs) != 0 {
		t.Fatalf("superseded: %v %+v", err, evs)
	}
	old := f.bob.Fingerprint()
	if ok, _ := f.b.TrustSignature(old, at(2)); !ok {
		t.Fatal("a signature made before the superseded revocation was seen is not trusted")
	}
	// The old key was stolen: its owner revokes it as compromised.
	comp, err := address.Revoke(f.bob, address.ReasonCompromised, "stolen laptop", at(5))
	if err != nil {
		t.Fatal(err)
	}
	evs, err := f.b.ObserveRevocation(comp, at(6))
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].Kind != ConflictRaised {
		t.Fatalf("events %+v", evs)
	}
	c := evs[0].Contact
	if c.State != Conflict || c.Cause != CauseMoveUndone || c.Key != old || c.Pending == nil || *c.Pending != k1.Fingerprint() ||
		c.FollowedFrom != nil || len(c.Previous) != 0 || c.Trusted() || !strings.Contains(c.Reason, "compromised") {
		t.Fatalf("after the compromise: %+v", c)
	}
	for _, s := range []string{"revoked as compromised", "undone", "dsep contacts approve"} {
		if !strings.Contains(evs[0].Message, s) {
			t.Errorf("warning lacks %q:\n%s", s, evs[0].Message)
		}
	}
	r, err := f.b.Revocation(old)
	if err != nil || r.Kind != "compromised" || !r.FirstSeen.Equal(at(3)) || !r.Signed.Equal(at(5)) {
		t.Fatalf("revocation record: %v %+v", err, r)
	}
	if ok, _ := f.b.TrustSignature(old, at(2)); ok {
		t.Fatal("a compromised key's signature is trusted")
	}
	if evs, err := f.b.ObserveRevocation(comp, at(7)); err != nil || len(evs) != 0 {
		t.Fatalf("repeated sighting: %v %+v", err, evs)
	}
	// A third key the stolen old key vouches for is not followed.
	k3 := newUser(t, bobAddr, at(7))
	uid, _ := k3.UserIDFor(f.email, at(7))
	k3c, err := address.Certify(k3.PublicOnly(), uid, f.bob, at(7), -1)
	if err != nil {
		t.Fatal(err)
	}
	k3c = certify(t, k3c, f.dom, bobAddr, at(7))
	ev := mustObserve(t, f.b, observation(t, bobAddr, k3c, f.dom, at(8)), ConflictRaised)
	if ev.Contact.Cause != CausePinnedCompromised || *ev.Contact.Pending != k3.Fingerprint() {
		t.Fatalf("after a key vouched for by the compromised key: %+v", ev.Contact)
	}
	if _, err := f.b.Verify(f.email, old, at(8)); err == nil || !strings.Contains(err.Error(), "compromised") {
		t.Fatalf("verified a compromised key: %v", err)
	}
	// The user checks with Bob and takes his real new key.
	c, err = f.b.Verify(f.email, k3.Fingerprint(), at(9))
	if err != nil {
		t.Fatal(err)
	}
	if c.State != Verified || c.Key != k3.Fingerprint() {
		t.Fatalf("after Verify: %+v", c)
	}
}

func TestCompromisedPinnedKey(t *testing.T) {
	f := newFixture(t)
	comp, err := address.Revoke(f.bob, address.ReasonCompromised, "", at(2))
	if err != nil {
		t.Fatal(err)
	}
	evs, err := f.b.ObserveRevocation(comp, at(2))
	if err != nil || len(evs) != 1 {
		t.Fatalf("%v %+v", err, evs)
	}
	c := evs[0].Contact
	if c.State != Conflict || c.Cause != CausePinnedCompromised || c.Pending != nil || c.Trusted() {
		t.Fatalf("%+v", c)
	}
	if !strings.Contains(evs[0].Message, "revoked as compromised") || !strings.Contains(evs[0].Message, "dsep contacts block") {
		t.Fatalf("warning:\n%s", evs[0].Message)
	}
	mustObserve(t, f.b, observation(t, bobAddr, f.bobC, f.dom, at(3)), StillConflict)
	if _, err := f.b.Approve(f.email, at(3)); err == nil {
		t.Fatal("approved a compromised key")
	}
	// A new contact cannot be pinned to a compromised key either.
	b2 := openBook(t, t.TempDir(), Options{})
	if _, err := b2.ObserveRevocation(comp, at(2)); err != nil {
		t.Fatal(err)
	}
	if _, err := b2.Observe(observation(t, bobAddr, f.bobC, f.dom, at(3))); err == nil || !strings.Contains(err.Error(), "compromised") {
		t.Fatalf("pinned a compromised key: %v", err)
	}
	// Bob's new key, certified by the domain, waits for approval.
	n := certify(t, newUser(t, bobAddr, at(3)), f.dom, bobAddr, at(3))
	ev := mustObserve(t, f.b, observation(t, bobAddr, n, f.dom, at(4)), ConflictRaised)
	if *ev.Contact.Pending != n.Fingerprint() || ev.Contact.Cause != CausePinnedCompromised {
		t.Fatalf("%+v", ev.Contact)
	}
	if c, err := f.b.Approve(f.email, at(5)); err != nil || c.Key != n.Fingerprint() || c.State != FirstSeen {
		t.Fatalf("Approve: %v %+v", err, c)
	}
}

func TestRevocationDates(t *testing.T) {
	b := openBook(t, t.TempDir(), Options{})
	F := at(10)
	check := func(name string, fpr address.Fingerprint, signedAt time.Time, want bool) {
		t.Helper()
		ok, err := b.TrustSignature(fpr, signedAt)
		if err != nil || ok != want {
			t.Errorf("%s: TrustSignature(%s) = %v, %v; want %v", name, signedAt, ok, err, want)
		}
	}
	firstSeen := func(fpr address.Fingerprint, want time.Time) {
		t.Helper()
		r, err := b.Revocation(fpr)
		if err != nil || !r.FirstSeen.Equal(want) {
			t.Fatalf("Revocation(%s): %v %+v, want first seen %s", fpr, err, r, want)
		}
	}

	// Soft, dated far in the future.
	future := newUser(t, "f@example.org", T)
	rev, err := address.Revoke(future, address.ReasonRetired, "", at(1000))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.ObserveRevocation(rev, F); err != nil {
		t.Fatal(err)
	}
	firstSeen(future.Fingerprint(), F)
	if _, err := b.ObserveRevocation(rev, F.Add(5*time.Hour)); err != nil {
		t.Fatal(err)
	}
	firstSeen(future.Fingerprint(), F)
	if r, _ := b.Revocation(future.Fingerprint()); r.Kind != "retired" || !r.Signed.Equal(at(1000)) || !bytes.Equal(r.Data, rev.Bytes()) {
		t.Fatalf("record %+v", r)
	}
	check("future soft, before first seen", future.Fingerprint(), F.Add(-time.Minute), true)
	check("future soft, after first seen", future.Fingerprint(), F.Add(time.Minute), false)
	check("future soft, after first seen, before the written date", future.Fingerprint(), at(999), false)

	// Soft, back-dated far into the past.
	past := newUser(t, "p@example.org", at(-2000))
	rev, err = address.Revoke(past, address.ReasonRetired, "", at(-1999))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.ObserveRevocation(rev, F); err != nil {
		t.Fatal(err)
	}
	firstSeen(past.Fingerprint(), F)
	check("back-dated soft, after the written date, before first seen", past.Fingerprint(), at(-1000), true)
	check("back-dated soft, after first seen", past.Fingerprint(), F.Add(time.Minute), false)

	// Hard, dated in the future: nothing is trusted, whatever the dates.
	hard := newUser(t, "h@example.org", T)
	rev, err = address.Revoke(hard, address.ReasonCompromised, "", at(1000))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.ObserveRevocation(rev, F); err != nil {
		t.Fatal(err)
	}
	check("hard, long before", hard.Fingerprint(), at(-5000), false)
	check("hard, before first seen", hard.Fingerprint(), F.Add(-time.Minute), false)
	check("hard, after", hard.Fingerprint(), F.Add(time.Hour), false)

	// A stronger revocation replaces the kind but not the first-seen time;
	// a weaker one changes nothing.
	k := newUser(t, "k@example.org", T)
	retired, err := address.Revoke(k, address.ReasonRetired, "", at(1))
	if err != nil {
		t.Fatal(err)
	}
	comp, err := address.Revoke(k, address.ReasonCompromised, "", at(2))
	if err != nil {
		t.Fatal(err)
	}
	b.ObserveRevocation(retired, F)
	b.ObserveRevocation(comp, F.Add(time.Hour))
	b.ObserveRevocation(retired, F.Add(2*time.Hour))
	r, err := b.Revocation(k.Fingerprint())
	if err != nil || r.Kind != "compromised" || !r.FirstSeen.Equal(F) || !bytes.Equal(r.Data, comp.Bytes()) {
		t.Fatalf("after retired, compromised, retired: %v %+v", err, r)
	}
	check("upgraded to hard", k.Fingerprint(), F.Add(-time.Hour), false)

	// No revocation: trusted. Unknown: ErrNotFound.
	check("unrevoked", newUser(t, "u@example.org", T).Fingerprint(), at(5), true)
	if _, err := b.Revocation(address.Fingerprint{1}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Revocation of an unknown key: %v", err)
	}
	if _, err := b.ObserveRevocation(&address.Revocation{Key: k.Fingerprint(), Reason: address.ReasonRetired}, F); err == nil {
		t.Fatal("took a revocation without a signature")
	}
}

func TestPersistence(t *testing.T) {
	dir := t.TempDir()
	b, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	dom := newDomain(t, "example.org")
	bob := newUser(t, bobAddr, T)
	mustObserve(t, b, observation(t, bobAddr, certify(t, bob, dom, bobAddr, T), dom, at(1)), Pinned)
	evil := certify(t, newUser(t, bobAddr, T), dom, bobAddr, at(2))
	mustObserve(t, b, observation(t, bobAddr, evil, dom, at(2)), ConflictRaised)
	rev, err := address.Revoke(newUser(t, "x@example.org", T), address.ReasonRetired, "", at(2))
	if err != nil {
		t.Fatal(err)
	}
	b.ObserveRevocation(rev, at(3))
	before, err := b.List()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(mustEmail(t, bobAddr)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	b = openBook(t, dir, Options{})
	after, err := b.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != 1 || !reflect.DeepEqual(before, after) {
		t.Fatalf("state changed across a reopen:\n%+v\n%+v", before, after)
	}
	if r, err := b.Revocation(rev.Key); err != nil || !r.FirstSeen.Equal(at(3)) {
		t.Fatalf("revocation after reopen: %v %+v", err, r)
	}
	checkModes(t, dir)
}

// checkModes asserts that nobody but the owner can read the book.
func checkModes(t *testing.T, dir string) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		fi, err := d.Info()
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %v", p, fi.Mode().Perm())
		}
		return nil
	})
}

func TestEncryption(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "book")
	key := make([]byte, 32)
	rand.Read(key)
	b, err := Open(dir, Options{EncryptionKey: key})
	if err != nil {
		t.Fatal(err)
	}
	dom := newDomain(t, "example.org")
	bob := newUser(t, bobAddr, T)
	mustObserve(t, b, observation(t, bobAddr, certify(t, bob, dom, bobAddr, T), dom, at(1)), Pinned)
	grep := func(when string) {
		t.Helper()
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range []string{bobAddr, bob.Fingerprint().String(), `"state"`} {
				if bytes.Contains(data, []byte(s)) {
					t.Errorf("%s: %s holds %q in the clear", when, p, s)
				}
			}
			return nil
		})
	}
	grep("open")
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	grep("closed")
	checkModes(t, dir)

	wrong := make([]byte, 32)
	rand.Read(wrong)
	for name, k := range map[string][]byte{"wrong key": wrong, "no key": nil} {
		_, err := Open(dir, Options{EncryptionKey: k})
		if !errors.Is(err, ErrWrongKey) || !strings.Contains(err.Error(), "wrong encryption key") {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := Open(dir, Options{EncryptionKey: key[:16]}); err == nil || !strings.Contains(err.Error(), "32 bytes") {
		t.Errorf("short key: %v", err)
	}
	b = openBook(t, dir, Options{EncryptionKey: key})
	if c, err := b.Get(mustEmail(t, bobAddr)); err != nil || c.Key != bob.Fingerprint() {
		t.Fatalf("after reopening with the key: %v", err)
	}
}

func TestInUse(t *testing.T) {
	dir := t.TempDir()
	openBook(t, dir, Options{})
	_, err := Open(dir, Options{})
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "another dsep process is using the data directory") {
		t.Fatalf("second Open: %v", err)
	}
}

func TestBlock(t *testing.T) {
	f := newFixture(t)
	if _, err := f.b.Block(mustEmail(t, "carol@example.org"), "spam", at(2)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Block of an unknown contact: %v", err)
	}
	c, err := f.b.Block(f.email, "  spam  ", at(2))
	if err != nil {
		t.Fatal(err)
	}
	if c.State != Blocked || c.Reason != "spam" || c.Trusted() || HijackWarning(c) != "" {
		t.Fatalf("after Block: %+v", c)
	}
	mustObserve(t, f.b, observation(t, bobAddr, f.bobC, f.dom, at(3)), Ignored)
	evil := certify(t, newUser(t, bobAddr, T), f.dom, bobAddr, at(3))
	mustObserve(t, f.b, observation(t, bobAddr, evil, f.dom, at(3)), Ignored)
	if c := f.get(t); c.State != Blocked || c.Key != f.bob.Fingerprint() || c.Pending != nil {
		t.Fatalf("an ignored observation changed the contact: %+v", c)
	}
	c, err = f.b.Approve(f.email, at(4))
	if err != nil || c.State != FirstSeen || c.Key != f.bob.Fingerprint() || c.Reason != "" || !c.Trusted() {
		t.Fatalf("Approve of a blocked contact: %v %+v", err, c)
	}

	// Blocked during a conflict: Approve takes the pending key.
	mustObserve(t, f.b, observation(t, bobAddr, evil, f.dom, at(5)), ConflictRaised)
	if _, err := f.b.Block(f.email, "", at(5)); err != nil {
		t.Fatal(err)
	}
	c, err = f.b.Approve(f.email, at(6))
	if err != nil || c.Key != evil.Fingerprint() || c.State != FirstSeen {
		t.Fatalf("Approve of a blocked contact with a pending key: %v %+v", err, c)
	}
}

func TestKeyAddressContact(t *testing.T) {
	b := openBook(t, t.TempDir(), Options{})
	kate := newUser(t, "kate@example.net", T)
	ka := kate.Fingerprint().KeyAddress()
	ev := mustObserve(t, b, Observation{Key: kate, Now: at(1)}, Pinned) // with its secret
	c := ev.Contact
	if k, err := address.ReadKey(bytes.NewReader(c.KeyData)); err != nil || k.HasSecret() {
		t.Fatalf("stored key material: %v (or it holds the secret)", err)
	}
	if !c.Email.IsZero() || c.Address != ka || c.Key != kate.Fingerprint() || c.Name() != ka.String() || c.State != FirstSeen {
		t.Fatalf("pinned by key: %+v", c)
	}
	kaEmail := mustEmail(t, ka.String())
	if c, err := b.Get(kaEmail); err != nil || c.Key != kate.Fingerprint() {
		t.Fatalf("Get(%s): %v", kaEmail, err)
	}
	mustObserve(t, b, Observation{Key: kate.PublicOnly(), Now: at(2)}, Unchanged)

	// Kate rotates; her old key vouches for the new one, which is all a
	// key-address contact needs.
	next, _, err := address.Rotate(kate, at(2), address.NewIdentityOptions{Now: at(2)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Observe(Observation{Key: next.PublicOnly(), Now: at(3), Email: mustEmail(t, next.Fingerprint().KeyAddress().String())}); err == nil {
		t.Fatal("judged a successor of a key address never pinned")
	}
	ev = mustObserve(t, b, Observation{Email: kaEmail, Key: next.PublicOnly(), Now: at(3)}, Followed)
	if ev.Contact.Key != next.Fingerprint() || ev.Contact.Address != ka || ev.Contact.State != Rotated {
		t.Fatalf("after following: %+v", ev.Contact)
	}
	// The new key alone finds the contact too.
	mustObserve(t, b, Observation{Key: next.PublicOnly(), Now: at(4)}, Unchanged)
	if c, err := b.GetByKey(next.Fingerprint()); err != nil || c.Address != ka {
		t.Fatalf("GetByKey(new): %v %+v", err, c)
	}
	if c, err := b.GetByKey(kate.Fingerprint()); err != nil || c.Address != ka {
		t.Fatalf("GetByKey(key address): %v %+v", err, c)
	}
	// A stranger's key is not a successor.
	evil := newUser(t, "kate@example.net", T)
	ev = mustObserve(t, b, Observation{Email: kaEmail, Key: evil.PublicOnly(), Now: at(5)}, ConflictRaised)
	if ev.Contact.Cause != CauseNotSignedByPinned || !strings.Contains(ev.Message, "impersonating") ||
		!strings.Contains(ev.Message, "dsep contacts approve "+ka.String()) {
		t.Fatalf("warning:\n%s", ev.Message)
	}
	if _, err := b.Block(kaEmail, "", at(6)); err != nil {
		t.Fatal(err)
	}

	// List: key-address contacts (no email) first, then by email.
	dom := newDomain(t, "example.org")
	for _, e := range []string{"zed@example.org", "amy@example.org"} {
		mustObserve(t, b, observation(t, e, certify(t, newUser(t, e, T), dom, e, T), dom, at(1)), Pinned)
	}
	cs, err := b.List()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range cs {
		names = append(names, c.Name())
	}
	if want := []string{ka.String(), "amy@example.org", "zed@example.org"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("List = %q, want %q", names, want)
	}
	if err := b.Remove(mustEmail(t, "zed@example.org")); err != nil {
		t.Fatal(err)
	}
	if cs, _ := b.List(); len(cs) != 2 {
		t.Fatalf("after Remove: %d contacts", len(cs))
	}
}

func TestDamagedRecords(t *testing.T) {
	good := encodeSeed(t)
	cases := map[string][]byte{
		"too large":     append(append([]byte(`{"v":1,"reason":"`), bytes.Repeat([]byte("a"), MaxRecordSize)...), '"', '}'),
		"newer version": bytes.Replace(good, []byte(`"v":1`), []byte(`"v":2`), 1),
		"no version":    bytes.Replace(good, []byte(`"v":1,`), nil, 1),
		"bad state":     bytes.Replace(good, []byte(`"conflict"`), []byte(`"trusted"`), 1),
		"bad email":     bytes.Replace(good, []byte(bobAddr), []byte("bob@"), 1),
		"not json":      []byte("{"),
		"trailing data": append(slicesClone(good), []byte("{}")...),
		"no key":        []byte(`{"v":1,"email":"bob@example.org","state":"first-seen"}`),
		"two names":     bytes.Replace(good, []byte(`"v":1,`), []byte(`"v":1,"key_address":"`+strings.Repeat("ab", 20)+`",`), 1),
	}
	for name, data := range cases {
		if _, err := decodeRecord(data); !errors.Is(err, ErrDamaged) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := decodeRecord(good); err != nil {
		t.Fatal(err)
	}
	if _, err := decodeRecord(bytes.Replace(good, []byte(`"v":1`), []byte(`"v":2`), 1)); err == nil || !strings.Contains(err.Error(), "newer dsep") {
		t.Fatalf("newer version: %v", err)
	}
}

func slicesClone(b []byte) []byte { return append([]byte(nil), b...) }

// encodeSeed returns an encoded contact record with most fields set.
func encodeSeed(t testing.TB) []byte {
	f1 := address.Fingerprint{1, 2, 3}
	f2 := address.Fingerprint{4, 5, 6}
	f3 := address.Fingerprint{7, 8, 9}
	r := &record{
		V: recordVersion, Email: mustEmail(t, bobAddr), Key: f1, State: Conflict, Cause: CauseMoveUndone,
		Domain: f2, DNSSEC: true, FirstSeen: T, Updated: at(3), Previous: []address.Fingerprint{f2},
		Auto: []address.Fingerprint{f3}, Pending: &f3, Reason: "the key … was revoked",
	}
	b, err := encodeRecord(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func FuzzDecodeContact(f *testing.F) {
	f.Add(encodeSeed(f))
	ka, _ := encodeRecord(&record{V: recordVersion, Address: address.Fingerprint{9}, Key: address.Fingerprint{9}, State: FirstSeen, FirstSeen: T, Updated: T})
	f.Add(ka)
	f.Add([]byte(`{"v":1,"email":"Bob@Example.ORG","key":"0102030000000000000000000000000000000000","state":"blocked","first_seen":"2026-11-01T13:00:00+01:00","previous":[]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := decodeRecord(data)
		if err != nil {
			return
		}
		enc, err := encodeRecord(r)
		if err != nil {
			t.Fatalf("a decoded record does not encode: %v", err)
		}
		r2, err := decodeRecord(enc)
		if err != nil {
			t.Fatalf("an encoded record does not decode: %v\n%s", err, enc)
		}
		if !reflect.DeepEqual(r, r2) {
			t.Fatalf("round trip changed the record:\n%+v\n%+v", r, r2)
		}
		enc2, _ := encodeRecord(r2)
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding is not stable:\n%s\n%s", enc, enc2)
		}
		_ = r.contact(nil, nil)
		_ = HijackWarning(r.contact(nil, nil))
	})
}

// The record format is JSON; this keeps json.Marshal of the public
// Contact type working for --json output too.
func TestContactJSON(t *testing.T) {
	f := newFixture(t)
	if _, err := json.Marshal(f.get(t)); err != nil {
		t.Fatal(err)
	}
}

func TestRetiredKeyVouching(t *testing.T) {
	f := newFixture(t)
	uid, _ := f.bob.UserIDFor(f.email, T)
	successor := func(certifiedAt time.Time) *address.Key {
		k := newUser(t, bobAddr, T)
		c, err := address.Certify(k.PublicOnly(), uid, f.bob, certifiedAt, -1)
		if err != nil {
			t.Fatal(err)
		}
		return certify(t, c, f.dom, bobAddr, certifiedAt)
	}
	early := successor(at(1))
	late := successor(at(5))
	retired, err := address.Revoke(f.bob, address.ReasonRetired, "", at(2))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.b.ObserveRevocation(retired, at(3)); err != nil {
		t.Fatal(err)
	}
	// Certified after the retirement was first seen: not followed.
	ev := mustObserve(t, f.b, observation(t, bobAddr, late, f.dom, at(6)), ConflictRaised)
	if ev.Contact.Cause != CauseOther || !strings.Contains(ev.Contact.Reason, "retired") {
		t.Fatalf("%+v", ev.Contact)
	}
	// Certified before it: followed (in a book where Bob is not in conflict).
	b := openBook(t, t.TempDir(), Options{})
	mustObserve(t, b, observation(t, bobAddr, f.bobC, f.dom, at(1)), Pinned)
	if _, err := b.ObserveRevocation(retired, at(3)); err != nil {
		t.Fatal(err)
	}
	mustObserve(t, b, observation(t, bobAddr, early, f.dom, at(6)), Followed)
}

func TestConcurrent(t *testing.T) {
	f := newFixture(t)
	keys := make([]*address.Key, 4)
	for i := range keys {
		e := fmt.Sprintf("user%d@example.org", i)
		keys[i] = certify(t, newUser(t, e, T), f.dom, e, T)
	}
	done := make(chan error)
	for i, k := range keys {
		go func() {
			e := fmt.Sprintf("user%d@example.org", i)
			for j := 0; j < 5; j++ {
				if _, err := f.b.Observe(observation(t, e, k, f.dom, at(1+j))); err != nil {
					done <- err
					return
				}
				if _, err := f.b.List(); err != nil {
					done <- err
					return
				}
				if _, err := f.b.TrustSignature(k.Fingerprint(), at(j)); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range keys {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if cs, err := f.b.List(); err != nil || len(cs) != 1+len(keys) {
		t.Fatalf("List: %v, %d contacts", err, len(cs))
	}
}

func TestObserveCarriedRevocation(t *testing.T) {
	f := newFixture(t)
	if _, err := address.Revoke(f.bob, address.ReasonCompromised, "", at(2)); err != nil {
		t.Fatal(err)
	}
	withRev := certify(t, f.bob, f.dom, bobAddr, T) // carries the revocation
	if withRev.Revocation() == nil {
		t.Fatal("test key carries no revocation")
	}
	ev := mustObserve(t, f.b, observation(t, bobAddr, withRev, f.dom, at(3)), StillConflict)
	if ev.Contact.Cause != CausePinnedCompromised || !strings.Contains(ev.Message, "revoked as compromised") {
		t.Fatalf("%+v\n%s", ev.Contact, ev.Message)
	}
	if r, err := f.b.Revocation(f.bob.Fingerprint()); err != nil || r.Kind != "compromised" || !r.FirstSeen.Equal(at(3)) {
		t.Fatalf("carried revocation not recorded: %v %+v", err, r)
	}

	// A soft revocation carried by a pinned key: recorded, and kept out of
	// the stored key material.
	kate := newUser(t, "kate@example.net", T)
	mustObserve(t, f.b, Observation{Key: kate, Now: at(1)}, Pinned)
	if _, err := address.Revoke(kate, address.ReasonRetired, "", at(2)); err != nil {
		t.Fatal(err)
	}
	ev = mustObserve(t, f.b, Observation{Key: kate, Now: at(3)}, Unchanged)
	if !strings.Contains(ev.Message, "retired") {
		t.Fatalf("message %q", ev.Message)
	}
	k, err := address.ReadKey(bytes.NewReader(ev.Contact.KeyData))
	if err != nil || k.Revocation() != nil {
		t.Fatalf("stored key material carries the revocation (%v)", err)
	}
	if ok, _ := f.b.TrustSignature(kate.Fingerprint(), at(4)); ok {
		t.Fatal("carried retirement not recorded")
	}
}
