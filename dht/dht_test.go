package dht

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	kaddht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p-kad-dht/amino"
	"github.com/libp2p/go-libp2p-kad-dht/records"
	record "github.com/libp2p/go-libp2p-record"
	recpb "github.com/libp2p/go-libp2p-record/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	p2phost "github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multihash"

	dsephost "github.com/dsep-project/dsep/dht/host"
)

// testValidator accepts values that start with "ok" and prefers the longest;
// equal lengths are a tie, which selects index 0 (the record already held).
type testValidator struct{}

func (testValidator) Validate(key string, value []byte) error {
	if !bytes.HasPrefix(value, []byte("ok")) {
		return errors.New("test validator: value does not start with \"ok\"")
	}
	return nil
}

func (testValidator) Select(key string, values [][]byte) (int, error) {
	if len(values) == 0 {
		return 0, errors.New("test validator: no values")
	}
	best := 0
	for i, v := range values {
		if len(v) > len(values[best]) {
			best = i
		}
	}
	return best, nil
}

// acceptAll stores anything: it plants invalid records in a node's store,
// as a malicious or buggy peer would serve them.
type acceptAll struct{ testValidator }

func (acceptAll) Validate(string, []byte) error { return nil }

func testNS() record.Validator { return record.NamespacedValidator{"dsep-test": testValidator{}} }

var baseGoroutines int

func TestMain(m *testing.M) {
	baseGoroutines = runtime.NumGoroutine()
	code := m.Run()
	if code == 0 && !goroutinesSettle(baseGoroutines+5, 20*time.Second) {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		fmt.Fprintf(os.Stderr, "goroutine leak: %d goroutines after all tests, %d before\n%s\n",
			runtime.NumGoroutine(), baseGoroutines, buf)
		code = 1
	}
	os.Exit(code)
}

// goroutinesSettle polls until at most limit goroutines run.
func goroutinesSettle(limit int, wait time.Duration) bool {
	deadline := time.Now().Add(wait)
	for runtime.NumGoroutine() > limit {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

func newTestHost(t testing.TB, key crypto.PrivKey, listen string) p2phost.Host {
	t.Helper()
	if key == nil {
		var err error
		key, _, err = crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
	}
	if listen == "" {
		listen = "/ip4/127.0.0.1/tcp/0"
	}
	h, err := dsephost.New(context.Background(), dsephost.Config{Key: key, Listen: []string{listen}, Limits: dsephost.Testnet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func newTestNode(t testing.TB, h p2phost.Host, cfg Config) *Node {
	t.Helper()
	if cfg.Validator == nil {
		cfg.Validator = testNS()
	}
	n, err := New(context.Background(), h, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Error(err)
		}
	})
	return n
}

func addrInfo(h p2phost.Host) peer.AddrInfo { return peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()} }

// cluster starts n nodes bootstrapping through node 0 and waits until every
// routing table holds min(n-1, 4) peers.
func cluster(t testing.TB, n int) []*Node {
	t.Helper()
	nodes := make([]*Node, n)
	nodes[0] = newTestNode(t, newTestHost(t, nil, ""), Config{})
	for i := 1; i < n; i++ {
		nodes[i] = newTestNode(t, newTestHost(t, nil, ""), Config{Bootstrap: []peer.AddrInfo{addrInfo(nodes[0].Host())}})
	}
	waitTables(t, nodes, min(n-1, 4))
	return nodes
}

func waitTables(t testing.TB, nodes []*Node, want int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for round := 0; ; round++ {
		low := 0
		for _, n := range nodes {
			if n.RoutingTableSize() < want {
				low++
				if round%10 == 9 {
					_ = n.Bootstrap(ctx)
				}
			}
		}
		if low == 0 {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("%d of %d nodes have fewer than %d peers in their routing table", low, len(nodes), want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// holders returns the indexes of the nodes holding value under key.
func holders(nodes []*Node, key string, value []byte) []int {
	var out []int
	for i, n := range nodes {
		if v, err := n.GetLocal(context.Background(), key); err == nil && bytes.Equal(v, value) {
			out = append(out, i)
		}
	}
	return out
}

func TestProtocol(t *testing.T) {
	nodes := cluster(t, 3)
	h := nodes[0].Host()
	protos := h.Mux().Protocols()
	if !slices.Contains(protos, "/dsep/kad/1.0.0") {
		t.Errorf("host serves %v, not /dsep/kad/1.0.0", protos)
	}
	for _, p := range protos {
		if strings.HasPrefix(string(p), "/ipfs/kad") {
			t.Errorf("host serves the IPFS DHT protocol %s", p)
		}
	}
	// The peers learnt the protocol from each other (identify).
	got, err := nodes[1].Host().Peerstore().SupportsProtocols(h.ID(), ProtocolID)
	if err != nil || len(got) != 1 {
		t.Errorf("node 1 does not see node 0 speak %s (%v, %v)", ProtocolID, got, err)
	}

	// An IPFS-prefixed DHT server connected to node 0 never enters its
	// routing table, nor does node 0 enter the foreigner's.
	fh := newTestHost(t, nil, "")
	foreign, err := kaddht.New(fh, kaddht.Mode(kaddht.ModeServer))
	if err != nil {
		t.Fatal(err)
	}
	defer foreign.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := fh.Connect(ctx, addrInfo(h)); err != nil {
		t.Fatal(err)
	}
	for {
		ps, _ := h.Peerstore().SupportsProtocols(fh.ID(), "/ipfs/kad/1.0.0")
		if len(ps) == 1 {
			break // node 0 has identified the foreigner
		}
		if ctx.Err() != nil {
			t.Fatal("node 0 never identified the foreign DHT node")
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = nodes[0].dht.Bootstrap(ctx)
	time.Sleep(200 * time.Millisecond)
	if slices.Contains(nodes[0].RoutingTable(), fh.ID()) {
		t.Error("an /ipfs/kad node entered the DSEP routing table")
	}
	if foreign.RoutingTable().Size() != 0 {
		t.Error("a DSEP node entered an IPFS DHT's routing table")
	}
}

func TestPutGet(t *testing.T) {
	nodes := cluster(t, 6)
	ctx := context.Background()
	key, value := "/dsep-test/alice", []byte("ok alice's record")

	stored, err := nodes[1].Put(ctx, key, value)
	if err != nil {
		t.Fatal(err)
	}
	hold := holders(nodes, key, value)
	t.Logf("stored %d, held by nodes %v", stored, hold)
	if stored < 1 {
		t.Fatalf("Put reported %d copies", stored)
	}
	if !slices.Contains(hold, 1) {
		t.Error("the putting node holds no copy")
	}
	// Put counts only copies that exist, never its own.
	if others := len(hold) - 1; stored > others {
		t.Errorf("Put reported %d copies, but only %d other nodes hold the record", stored, others)
	}
	for i := range nodes {
		got, err := nodes[(i+4)%len(nodes)].Get(ctx, key)
		if err != nil {
			t.Fatalf("node %d: %v", (i+4)%len(nodes), err)
		}
		if !bytes.Equal(got, value) {
			t.Fatalf("node %d read %q", (i+4)%len(nodes), got)
		}
	}

	// Republishing identical bytes succeeds: Select's tie keeps index 0.
	if stored, err := nodes[2].Put(ctx, key, value); err != nil || stored < 1 {
		t.Errorf("republishing the same record: %d, %v", stored, err)
	}
	// A better record replaces it everywhere it is read.
	better := []byte("ok alice's record, version 2")
	if stored, err := nodes[3].Put(ctx, key, better); err != nil || stored < 1 {
		t.Fatalf("putting a newer record: %d, %v", stored, err)
	}
	if got, err := nodes[5].Get(ctx, key); err != nil || !bytes.Equal(got, better) {
		t.Errorf("after the update node 5 read %q, %v", got, err)
	}

	if _, err := nodes[4].Get(ctx, "/dsep-test/nobody"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing key: %v, want ErrNotFound", err)
	}
	if _, err := nodes[4].GetLocal(ctx, "/dsep-test/nobody"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing key locally: %v, want ErrNotFound", err)
	}
}

func TestPutStale(t *testing.T) {
	nodes := cluster(t, 5)
	ctx := context.Background()
	key := "/dsep-test/stale"
	long := []byte("ok, the longer and so better record")
	if _, err := nodes[0].Put(ctx, key, long); err != nil {
		t.Fatal(err)
	}
	// A node holding the better record refuses a worse one at once.
	holder := holders(nodes, key, long)
	if len(holder) < 2 {
		t.Fatalf("record held by %v only", holder)
	}
	if _, err := nodes[holder[1]].Put(ctx, key, []byte("ok short")); !errors.Is(err, ErrStale) {
		t.Errorf("worse record over a held better one: %v, want ErrStale", err)
	}

	// A newcomer that holds nothing stores the worse record locally, but
	// every peer refuses it: kad-dht's PutValue says nil, Put must not.
	late := newTestNode(t, newTestHost(t, nil, ""), Config{Bootstrap: []peer.AddrInfo{addrInfo(nodes[0].Host())}})
	waitTables(t, []*Node{late}, 4)
	if _, err := late.GetLocal(ctx, key); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the newcomer already holds the record (%v)", err)
	}
	stored, err := late.Put(ctx, key, []byte("ok short"))
	var nse *NotStoredError
	if !errors.As(err, &nse) {
		t.Fatalf("Put = %d, %v; want a *NotStoredError", stored, err)
	}
	t.Log(err)
	if stored != 0 || nse.Newer == 0 || !errors.Is(err, ErrStale) || !errors.Is(err, ErrNotStored) || nse.Temporary() {
		t.Errorf("stored %d, %+v", stored, nse)
	}
	if got, err := nodes[2].Get(ctx, key); err != nil || !bytes.Equal(got, long) {
		t.Errorf("the network now reads %q, %v", got, err)
	}
}

func TestInvalidRefused(t *testing.T) {
	nodes := cluster(t, 5)
	ctx := context.Background()

	for _, key := range []string{"/dsep-test/bad", "/pk/whatever", "/ipns/whatever", "/other/x", "nonamespace"} {
		value := []byte("bad value")
		if !strings.HasPrefix(key, "/dsep-test/") {
			value = []byte("ok value") // fine for the test namespace, but no other exists
		}
		stored, err := nodes[1].Put(ctx, key, value)
		if !errors.Is(err, ErrInvalidRecord) {
			t.Errorf("Put(%s) = %d, %v; want ErrInvalidRecord", key, stored, err)
		}
		if h := holders(nodes, key, value); len(h) != 0 {
			t.Errorf("%s: refused record held by %v", key, h)
		}
	}

	// Sent straight to the peers, bypassing the sender's own check: every
	// peer refuses it.
	key := "/dsep-test/injected"
	bad := []byte("not ok")
	rec := record.MakePutRecord(key, bad)
	for i := 1; i < len(nodes); i++ {
		if err := nodes[0].pm.PutValue(ctx, nodes[i].Host().ID(), rec); err == nil {
			t.Errorf("node %d accepted an invalid PUT_VALUE", i)
		}
	}
	if h := holders(nodes, key, bad); len(h) != 0 {
		t.Errorf("injected record held by %v", h)
	}

	// A node serving an invalid record (planted in its store) is ignored by
	// readers, and its own Get does not return it either.
	planter := records.NewValueStore(nodes[2].store, acceptAll{}, amino.DefaultMaxRecordAge)
	if err := planter.Put(ctx, key, rec); err != nil {
		t.Fatal(err)
	}
	served, _, err := nodes[3].pm.GetValue(ctx, nodes[2].Host().ID(), key)
	if err != nil || served == nil || !bytes.Equal(served.GetValue(), bad) {
		t.Fatalf("node 2 does not serve the planted record (%v, %v)", served, err)
	}
	for i, n := range nodes {
		if got, err := n.Get(ctx, key); !errors.Is(err, ErrNotFound) {
			t.Errorf("node %d: Get = %q, %v; want ErrNotFound", i, got, err)
		}
	}
	if _, err := nodes[2].GetLocal(ctx, key); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetLocal returned the planted invalid record: %v", err)
	}
}

// expiringValidator is the test validator with a switch that expires given
// values, as records past their end of life.
type expiringValidator struct {
	testValidator
	mu      *sync.Mutex
	expired map[string]bool
}

func newExpiringValidator() expiringValidator {
	return expiringValidator{mu: new(sync.Mutex), expired: make(map[string]bool)}
}

func (v expiringValidator) expire(value string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.expired[value] = true
}

func (v expiringValidator) Validate(key string, value []byte) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.expired[string(value)] {
		return errors.New("expired")
	}
	return v.testValidator.Validate(key, value)
}

// overwrite stores anything, replacing whatever is held.
type overwrite struct{ acceptAll }

func (overwrite) Select(string, [][]byte) (int, error) { return 0, nil }

func TestLocalCopyRevalidated(t *testing.T) {
	ev := newExpiringValidator()
	h := newTestHost(t, nil, "")
	n := newTestNode(t, h, Config{Validator: record.NamespacedValidator{"dsep-test": ev}})
	ctx := context.Background()
	key := "/dsep-test/eol"
	if _, err := n.Put(ctx, key, []byte("ok")); !errors.Is(err, ErrNoPeers) {
		t.Fatalf("Put on a lone node: %v, want ErrNoPeers", err)
	}
	if v, err := n.GetLocal(ctx, key); err != nil || string(v) != "ok" {
		t.Fatalf("the lone node does not keep its record: %q, %v", v, err)
	}
	if v, err := n.Get(ctx, key); err != nil || string(v) != "ok" {
		t.Fatalf("Get on a lone node: %q, %v", v, err)
	}
	ev.expire("ok")
	if v, err := n.Get(ctx, key); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get returned an expired local record: %q, %v", v, err)
	} else {
		t.Log(err)
	}
	if v, err := n.GetLocal(ctx, key); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetLocal returned an expired local record: %q, %v", v, err)
	}
}

// An expired local copy that Select prefers must not hide a valid record
// held elsewhere.
func TestExpiredLocalCopyShadows(t *testing.T) {
	ev := newExpiringValidator()
	nodes := make([]*Node, 3)
	for i := range nodes {
		var boot []peer.AddrInfo
		if i > 0 {
			boot = []peer.AddrInfo{addrInfo(nodes[0].Host())}
		}
		nodes[i] = newTestNode(t, newTestHost(t, nil, ""), Config{
			Validator: record.NamespacedValidator{"dsep-test": ev}, Bootstrap: boot})
	}
	waitTables(t, nodes, 2)
	ctx := context.Background()
	key := "/dsep-test/shadow"
	old, fresh := "ok, the long old record", "ok, new"
	if stored, err := nodes[0].Put(ctx, key, []byte(old)); err != nil || stored != 2 {
		t.Fatalf("Put: %d, %v", stored, err)
	}
	// Nodes 1 and 2 move on to the fresh record (a replacement the test
	// validator would refuse, planted directly); node 0 keeps the old one.
	for _, i := range []int{1, 2} {
		vs := records.NewValueStore(nodes[i].store, overwrite{}, amino.DefaultMaxRecordAge)
		if err := vs.Put(ctx, key, record.MakePutRecord(key, []byte(fresh))); err != nil {
			t.Fatal(err)
		}
	}
	ev.expire(old)
	got, err := nodes[0].Get(ctx, key)
	if err != nil || string(got) != fresh {
		t.Errorf("Get = %q, %v; want the valid remote record %q", got, err, fresh)
	}
}

func TestPersistence(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dht")
	key, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	ctx := context.Background()

	a := newTestNode(t, newTestHost(t, nil, ""), Config{})
	ph := newTestHost(t, key, "")
	p, err := New(ctx, ph, Config{Validator: testNS(), Datastore: dir, Bootstrap: []peer.AddrInfo{addrInfo(a.Host())}})
	if err != nil {
		t.Fatal(err)
	}
	waitTables(t, []*Node{a, p}, 1)
	rkey, value := "/dsep-test/persist", []byte("ok persistent")
	if stored, err := a.Put(ctx, rkey, value); err != nil || stored != 1 {
		t.Fatalf("Put = %d, %v; want 1 copy (on the persistent node)", stored, err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("datastore directory: %v, %v", fi.Mode(), err)
	}
	// A second node cannot open the same store while it is in use.
	if n2, err := New(ctx, newTestHost(t, nil, ""), Config{Validator: testNS(), Datastore: dir}); err == nil {
		n2.Close()
		t.Error("two nodes opened the same datastore")
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if slices.Contains(ph.Mux().Protocols(), ProtocolID) {
		t.Error("a closed node's host still serves the DHT protocol")
	}
	ph.Close()

	// Same key, same store, no peers: the record is there.
	p2 := newTestNode(t, newTestHost(t, key, ""), Config{Datastore: dir})
	got, err := p2.GetLocal(ctx, rkey)
	if err != nil || !bytes.Equal(got, value) {
		t.Fatalf("after restart: %q, %v", got, err)
	}
}

func TestProviders(t *testing.T) {
	nodes := cluster(t, 5)
	ctx := context.Background()
	mh, err := multihash.Sum([]byte("dsep relays"), multihash.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	c := cid.NewCidV1(cid.Raw, mh)
	if got, err := nodes[3].FindProviders(ctx, c, 0); err != nil || len(got) != 0 {
		t.Fatalf("providers before any Provide: %v, %v", got, err)
	}
	for _, i := range []int{1, 2} {
		if err := nodes[i].Provide(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	got, err := nodes[4].FindProviders(ctx, c, 10)
	if err != nil {
		t.Fatal(err)
	}
	var ids []peer.ID
	for _, ai := range got {
		ids = append(ids, ai.ID)
	}
	for _, i := range []int{1, 2} {
		if !slices.Contains(ids, nodes[i].Host().ID()) {
			t.Errorf("node %d missing from providers %v", i, ids)
		}
	}
	if got, _ := nodes[4].FindProviders(ctx, c, 1); len(got) != 1 {
		t.Errorf("max 1 returned %d providers", len(got))
	}
	if _, err := nodes[4].FindProviders(ctx, cid.Undef, 1); err == nil {
		t.Error("undefined CID accepted")
	}
	lone := newTestNode(t, newTestHost(t, nil, ""), Config{})
	if err := lone.Provide(ctx, c); !errors.Is(err, ErrNoPeers) {
		t.Errorf("Provide on a lone node: %v, want ErrNoPeers", err)
	}
}

// freeAddr returns a loopback TCP multiaddr nobody listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port)
}

func TestBootstrap(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	lone := newTestNode(t, newTestHost(t, nil, ""), Config{})
	if err := lone.Bootstrap(ctx); !errors.Is(err, ErrNoPeers) {
		t.Errorf("Bootstrap without peers: %v, want ErrNoPeers", err)
	}

	// The bootstrap node is down when n starts: kad-dht's first dial fails
	// and the swarm backs off that address. Once it is up, Bootstrap joins
	// at once rather than after kad-dht's two-minute retry.
	bkey, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	bid, _ := peer.IDFromPrivateKey(bkey)
	addr := freeAddr(t)
	info, err := peer.AddrInfoFromString(addr + "/p2p/" + bid.String())
	if err != nil {
		t.Fatal(err)
	}
	n := newTestNode(t, newTestHost(t, nil, ""), Config{Bootstrap: []peer.AddrInfo{*info}})
	if err := n.Bootstrap(ctx); err == nil || !strings.Contains(err.Error(), "no bootstrap peer reachable") {
		t.Fatalf("Bootstrap to a dead peer: %v", err)
	}
	b := newTestNode(t, newTestHost(t, bkey, addr), Config{})
	if err := n.Bootstrap(ctx); err != nil {
		t.Fatalf("Bootstrap after the peer came up: %v", err)
	}
	waitTables(t, []*Node{n, b}, 1)
}

func TestNewErrors(t *testing.T) {
	h := newTestHost(t, nil, "")
	ctx := context.Background()
	if _, err := New(ctx, h, Config{}); !errors.Is(err, ErrNoValidator) {
		t.Errorf("no validator: %v", err)
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(ctx, h, Config{Validator: testNS(), Datastore: file}); err == nil {
		t.Error("a file as datastore directory accepted")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := New(cctx, h, Config{Validator: testNS()}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
	// Nothing was left serving on the host.
	if slices.Contains(h.Mux().Protocols(), ProtocolID) {
		t.Error("a failed New left the DHT protocol served")
	}
}

func TestPutRecord(t *testing.T) {
	// The record kad-dht stores is the value as given, under the key.
	nodes := cluster(t, 2)
	ctx := context.Background()
	if _, err := nodes[0].Put(ctx, "/dsep-test/r", []byte("ok r")); err != nil {
		t.Fatal(err)
	}
	r, _, err := nodes[0].pm.GetValue(ctx, nodes[1].Host().ID(), "/dsep-test/r")
	if err != nil {
		t.Fatal(err)
	}
	want := &recpb.Record{Key: []byte("/dsep-test/r"), Value: []byte("ok r")}
	if !bytes.Equal(r.Key, want.Key) || !bytes.Equal(r.Value, want.Value) || r.TimeReceived == "" {
		t.Errorf("stored record %v", r)
	}
}
