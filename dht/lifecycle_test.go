package dht_test

import (
	"bytes"
	"context"
	"slices"
	"testing"
	"time"

	"github.com/dsep-project/dsep/address"
	dsepdns "github.com/dsep-project/dsep/address/dns"
	"github.com/dsep-project/dsep/dht"
	"github.com/dsep-project/dsep/dht/record"
)

func TestRepublisher(t *testing.T) {
	w := newResolveWorld(t, 8)
	ctx := context.Background()
	now := time.Now()
	e, _ := address.ParseEmail("carol@example.org")
	u, err := address.NewIdentity("", e, address.NewIdentityOptions{Now: now.Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	key, v1, err := record.NewKey(u, 1, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	_, v2, err := record.NewKey(u, 2, now, 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}

	clock := now
	rp := dht.NewRepublisher(w.net.Node(1), dht.RepublishConfig{Now: func() time.Time { return clock }})
	if err := rp.Add(key, []byte("garbage")); err == nil {
		t.Fatal("republisher took an invalid record")
	}
	if err := rp.Add(key, v2); err != nil {
		t.Fatal(err)
	}
	if err := rp.Add(key, v1); err != nil { // lower seq: kept out
		t.Fatal(err)
	}
	rep := rp.RepublishNow(ctx)
	if rep.Put != 1 || len(rep.Failed) != 0 {
		t.Fatalf("round: %+v", rep)
	}
	got, err := w.net.Node(6).Get(ctx, key)
	if err != nil || !bytes.Equal(got, v2) {
		t.Fatalf("node 6 reads %d bytes (%v), want the republished seq-2 bytes verbatim", len(got), err)
	}

	// A delegate follows the record without holding any key of the user.
	follower := dht.NewRepublisher(w.net.Node(5), dht.RepublishConfig{Now: func() time.Time { return clock }})
	follower.Follow(key)
	if rep := follower.RepublishNow(ctx); rep.Put != 1 || !slices.Contains(follower.Keys(), key) {
		t.Fatalf("follower round: %+v, keys %v", rep, follower.Keys())
	}

	// Past its eol a record is dropped, not republished.
	clock = now.Add(3 * time.Hour)
	if rep := rp.RepublishNow(ctx); len(rep.Expired) != 1 || rep.Expired[0] != key || rep.Put != 0 {
		t.Fatalf("after eol: %+v", rep)
	}
}

func TestRelays(t *testing.T) {
	w := newResolveWorld(t, 10)
	ctx := context.Background()
	want := map[string]bool{}
	for _, i := range []int{2, 3, 4} {
		if err := w.net.Node(i).AnnounceRelay(ctx); err != nil {
			t.Fatal(err)
		}
		want[w.net.ID(i).String()] = true
	}
	got, err := w.net.Node(8).ListRelays(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, ai := range got {
		delete(want, ai.ID.String())
	}
	if len(want) != 0 {
		t.Fatalf("relays not listed: %v (got %v)", want, got)
	}
}

func TestMonitor(t *testing.T) {
	w := newResolveWorld(t, 8)
	ctx := context.Background()
	alice := w.user(t, "alice", 2, true, true, true)
	e, _ := address.ParseEmail("alice@example.org")
	d, err := dsepdns.New(dsepdns.Config{Servers: []string{w.dns.Addr()}, CacheSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	m := &dht.Monitor{Resolver: w.res(3), DNS: d, Own: alice.Fingerprint(), Emails: []address.Email{e}}
	if alerts := m.Check(ctx); len(alerts) != 0 {
		t.Fatalf("all is well, yet: %+v", alerts)
	}

	// The domain (or whoever holds its key) binds alice to another key.
	now := time.Now()
	mallory, err := address.NewIdentity("", e, address.NewIdentityOptions{Now: now.Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := mallory.UserIDFor(e, now)
	cert, err := address.Certify(mallory, uid, w.dom, now.Add(-time.Minute), 0)
	if err != nil {
		t.Fatal(err)
	}
	w.put(t, 4, func() (string, []byte, error) { return record.NewEmail(w.dom, cert, e, 2, now, 0) })
	alerts := m.Check(ctx)
	if len(alerts) != 1 || alerts[0].Kind != dht.AlertForeignKey || alerts[0].Key != mallory.Fingerprint() {
		t.Fatalf("after a foreign binding: %+v", alerts)
	}

	// A domain that names a second key which has not published alice.
	dom2, err := address.NewDomainKey("example.org", address.NewIdentityOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w.dns.AddTXT("_dsep.example.org", address.DomainRecord{Key: dom2.Fingerprint()}.String())
	var missing bool
	for _, a := range m.Check(ctx) {
		missing = missing || (a.Kind == dht.AlertMissing && a.Domain == dom2.Fingerprint())
	}
	if !missing {
		t.Fatal("no alert for the domain key that has not published the email record")
	}
}
