package dht_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/dsep-project/dsep/address"
	dsepdns "github.com/dsep-project/dsep/address/dns"
	"github.com/dsep-project/dsep/dht"
	"github.com/dsep-project/dsep/dht/record"
	"github.com/dsep-project/dsep/testnet"
	"github.com/dsep-project/dsep/testnet/dnstest"
)

// resolveWorld is a small DSEP network: DNS on loopback, a domain, and
// a testnet of real libp2p nodes.
type resolveWorld struct {
	net *testnet.Network
	dns *dnstest.Server
	dom *address.Key
	res func(i int) *dht.Resolver
}

func newResolveWorld(t *testing.T, nodes int) *resolveWorld {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	n, err := testnet.New(ctx, testnet.Config{Nodes: nodes, Validator: record.NamespacedValidator(record.Validator{})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	srv, err := dnstest.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	dom, err := address.NewDomainKey("example.org", address.NewIdentityOptions{Now: time.Now().Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	srv.AddTXT("_dsep.example.org", address.DomainRecord{Key: dom.Fingerprint()}.String())
	w := &resolveWorld{net: n, dns: srv, dom: dom}
	w.res = func(i int) *dht.Resolver {
		d, err := dsepdns.New(dsepdns.Config{Servers: []string{srv.Addr()}, CacheSize: -1})
		if err != nil {
			t.Fatal(err)
		}
		r, err := dht.NewResolver(dht.ResolverConfig{DNS: d, DHT: n.Node(i), Timeout: 30 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	w.put(t, 0, func() (string, []byte, error) { return record.NewKey(dom, 1, time.Now(), 0) })
	return w
}

func (w *resolveWorld) put(t *testing.T, node int, build func() (string, []byte, error)) {
	t.Helper()
	k, v, err := build()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := w.net.Node(node).Put(ctx, k, v); err != nil {
		t.Fatalf("put %s: %v", k, err)
	}
}

// user makes a certified user and publishes what the flags say.
func (w *resolveWorld) user(t *testing.T, local string, node int, email, key, reach bool) *address.Key {
	t.Helper()
	now := time.Now()
	e, _ := address.ParseEmail(local + "@example.org")
	u, err := address.NewIdentity("", e, address.NewIdentityOptions{Now: now.Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := u.UserIDFor(e, now)
	cert, err := address.Certify(u, uid, w.dom, now.Add(-time.Minute), 0)
	if err != nil {
		t.Fatal(err)
	}
	if email {
		w.put(t, node, func() (string, []byte, error) { return record.NewEmail(w.dom, cert, e, 1, now, 0) })
	}
	if key {
		w.put(t, node, func() (string, []byte, error) { return record.NewKey(u, 1, now, 0) })
	}
	if reach {
		d := address.Delegation{Peer: w.net.ID(node), Role: address.RoleDevice, NotAfter: now.Add(24 * time.Hour)}
		w.put(t, node, func() (string, []byte, error) {
			return record.NewReach(u, record.Reach{Delegations: []address.Delegation{d}}, 1, now, 0)
		})
	}
	return u
}

func TestResolveEmail(t *testing.T) {
	w := newResolveWorld(t, 10)
	ctx := context.Background()
	alice := w.user(t, "alice", 2, true, true, true)
	w.user(t, "nomail", 3, false, true, true)
	w.user(t, "nokey", 4, true, false, true)
	w.user(t, "noreach", 5, true, true, false)
	revoked := w.user(t, "revoked", 6, true, true, true)
	rev, err := address.Revoke(revoked, address.ReasonCompromised, "stolen", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	w.put(t, 6, func() (string, []byte, error) { return record.NewRev(revoked, rev, 1, time.Now(), 0) })

	// The whole chain, from a node that published nothing.
	e, _ := address.ParseEmail("alice@example.org")
	res, err := w.res(8).ResolveEmail(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	if res.Key.Fingerprint() != alice.Fingerprint() || !res.Verdict.OK() || res.DomainKey.Fingerprint() != w.dom.Fingerprint() {
		t.Fatalf("resolution: key %s verdict %v", res.Key.Fingerprint(), res.Verdict)
	}
	if res.Reach == nil || len(res.Reach.Delegations) != 1 || res.Reach.Delegations[0].Peer != w.net.ID(2) {
		t.Fatalf("reach: %+v", res.Reach)
	}

	tests := []struct {
		email string
		step  string
		want  error
	}{
		{"alice@other.example", "dns", dht.ErrNoDomainRecord},
		{"nomail@example.org", "email-record", dht.ErrNoEmailRecord},
		{"nobody@example.org", "email-record", dht.ErrNoEmailRecord},
		{"nokey@example.org", "key-record", dht.ErrNoKeyRecord},
		{"noreach@example.org", "reach", dht.ErrNoReach},
		{"revoked@example.org", "revocation", dht.ErrRevoked},
	}
	for _, tt := range tests {
		t.Run(tt.email, func(t *testing.T) {
			e, _ := address.ParseEmail(tt.email)
			res, err := w.res(9).ResolveEmail(ctx, e)
			var re *dht.ResolveError
			if !errors.As(err, &re) || re.Step != tt.step || !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want step %s, %v", err, tt.step, tt.want)
			}
			if tt.want == dht.ErrRevoked && (res == nil || res.Revocation == nil || !res.Revocation.Hard()) {
				t.Fatalf("revoked resolution lacks the revocation: %+v", res)
			}
		})
	}

	// DNS failures are temporary and distinct.
	w.dns.SetMode("_dsep.example.org", dnstest.ServFail)
	_, err = w.res(9).ResolveEmail(ctx, e)
	var re *dht.ResolveError
	if !errors.As(err, &re) || !errors.Is(err, dht.ErrDNS) || !re.Temporary() {
		t.Fatalf("SERVFAIL: %v", err)
	}
	// The domain key missing from the DHT.
	w.dns.SetMode("_dsep.example.org", dnstest.Normal)
	dom2, err := address.NewDomainKey("example.org", address.NewIdentityOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w.dns.SetTXT("_dsep.example.org", []string{address.DomainRecord{Key: dom2.Fingerprint()}.String()})
	_, err = w.res(9).ResolveEmail(ctx, e)
	if !errors.Is(err, dht.ErrNoEmailRecord) {
		t.Fatalf("after the domain changed its key: %v", err)
	}
}
