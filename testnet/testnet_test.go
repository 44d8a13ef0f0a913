package testnet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/dsep-project/dsep/testnet/testtool"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"testing"
	"time"

	kb "github.com/libp2p/go-libp2p-kbucket"
	record "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dsep-project/dsep/dht"
)

// testValidator accepts values that start with "ok" and prefers the longest;
// equal lengths tie, which selects index 0.
type testValidator struct{}

func (testValidator) Validate(_ string, value []byte) error {
	if !bytes.HasPrefix(value, []byte("ok")) {
		return errors.New("test validator: value does not start with \"ok\"")
	}
	return nil
}

func (testValidator) Select(_ string, values [][]byte) (int, error) {
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

func validator() record.Validator { return record.NamespacedValidator{"dsep-test": testValidator{}} }

// bigNodes is the size of the large test network: 30 nodes, 20 under the
// race detector (which costs ≈ 80 MB and several times the CPU per node).
func bigNodes() int {
	if raceEnabled {
		return 20
	}
	return 30
}

func TestMain(m *testing.M) { testtool.Main(m, 5, 20*time.Second) }

func newNetwork(t testing.TB, cfg Config) *Network {
	t.Helper()
	if cfg.Validator == nil {
		cfg.Validator = validator()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	n, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d nodes formed in %v", n.Len(), time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Error(err)
		}
	})
	return n
}

// holders returns the running nodes holding value under key in their store.
func holders(n *Network, key string, value []byte) []int {
	var out []int
	for i := range n.Len() {
		if d := n.Node(i); d != nil {
			if v, err := d.GetLocal(context.Background(), key); err == nil && bytes.Equal(v, value) {
				out = append(out, i)
			}
		}
	}
	return out
}

// closest returns the node indexes sorted by XOR distance of their peer IDs
// to key, as Kademlia measures it.
func closest(n *Network, key string) []int {
	ids := make([]peer.ID, n.Len())
	index := make(map[peer.ID]int)
	for i := range n.Len() {
		ids[i] = n.ID(i)
		index[ids[i]] = i
	}
	var out []int
	for _, id := range kb.SortClosestPeers(ids, kb.ConvertKey(key)) {
		out = append(out, index[id])
	}
	return out
}

// eventually retries f every 100 ms until it succeeds or 20 s have passed.
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestNetwork(t *testing.T) {
	n := newNetwork(t, Config{Nodes: bigNodes()})
	ctx := context.Background()
	N := n.Len()

	t.Run("formed", func(t *testing.T) {
		total := 0
		for i := range N {
			size := n.Node(i).RoutingTableSize()
			if size < min(N-1, 4) {
				t.Errorf("node %d has %d routing table peers", i, size)
			}
			if slices.Contains(n.Node(i).RoutingTable(), n.ID(i)) {
				t.Errorf("node %d has itself in its routing table", i)
			}
			total += size
		}
		t.Logf("mean routing table size %.1f", float64(total)/float64(N))
	})

	t.Run("put 3 get 17", func(t *testing.T) {
		key, value := "/dsep-test/put3get17", []byte("ok from node 3")
		stored, err := n.Node(3).Put(ctx, key, value)
		if err != nil {
			t.Fatal(err)
		}
		hold := holders(n, key, value)
		t.Logf("stored %d, held by %d nodes", stored, len(hold))
		if stored < 1 || stored > len(hold)-1 {
			t.Errorf("Put reported %d copies; %d nodes besides node 3 hold it", stored, len(hold)-1)
		}
		got, err := n.Node(17).Get(ctx, key)
		if err != nil || !bytes.Equal(got, value) {
			t.Fatalf("node 17 read %q, %v", got, err)
		}
	})

	t.Run("invalid refused", func(t *testing.T) {
		key, bad := "/dsep-test/invalid", []byte("not ok")
		if _, err := n.Node(3).Put(ctx, key, bad); !errors.Is(err, dht.ErrInvalidRecord) {
			t.Errorf("Put of an invalid record: %v, want ErrInvalidRecord", err)
		}
		for _, i := range []int{0, 3, 17, N - 1} {
			if got, err := n.Node(i).Get(ctx, key); !errors.Is(err, dht.ErrNotFound) {
				t.Errorf("node %d read %q, %v", i, got, err)
			}
		}
		if h := holders(n, key, bad); len(h) != 0 {
			t.Errorf("invalid record held by %v", h)
		}
	})

	t.Run("partition and heal", func(t *testing.T) {
		var a, b []int
		for i := range N {
			if i < N/2 {
				a = append(a, i)
			} else {
				b = append(b, i)
			}
		}
		n.Partition(a, b)
		for _, x := range a {
			for _, y := range b {
				if len(n.Node(x).Host().Network().ConnsToPeer(n.ID(y))) != 0 {
					t.Fatalf("nodes %d and %d still connected", x, y)
				}
			}
		}
		key, value := "/dsep-test/partitioned", []byte("ok written on side a")
		if stored, err := n.Node(a[1]).Put(ctx, key, value); err != nil || stored < 1 {
			t.Fatalf("Put inside side a: %d, %v", stored, err)
		}
		if h := holders(n, key, value); slices.ContainsFunc(h, func(i int) bool { return i >= N/2 }) {
			t.Fatalf("side b holds the record: %v", h)
		}
		if got, err := n.Node(b[1]).Get(ctx, key); !errors.Is(err, dht.ErrNotFound) {
			t.Fatalf("side b read %q, %v across the partition", got, err)
		}
		for _, x := range a {
			for _, y := range b {
				if len(n.Node(x).Host().Network().ConnsToPeer(n.ID(y))) != 0 {
					t.Fatalf("nodes %d and %d connected during the partition", x, y)
				}
			}
		}

		n.Heal()
		eventually(t, "side b reading after Heal", func() error {
			got, err := n.Node(b[1]).Get(ctx, key)
			if err == nil && !bytes.Equal(got, value) {
				return fmt.Errorf("read %q", got)
			}
			return err
		})
		if got, err := n.Node(b[len(b)-1]).Get(ctx, key); err != nil || !bytes.Equal(got, value) {
			t.Errorf("node %d read %q, %v", b[len(b)-1], got, err)
		}
	})

	// Last: stops nodes.
	t.Run("30% down, closest first", func(t *testing.T) {
		key, value := "/dsep-test/resilient", []byte("ok survives")
		// The reader is down during the Put, so it comes back with an
		// empty store and must read from the network.
		order := closest(n, key)
		reader := order[len(order)-1]
		if reader == 0 {
			reader = order[len(order)-2]
		}
		putter := 3
		if err := n.Stop(reader); err != nil {
			t.Fatal(err)
		}
		stored, err := n.Node(putter).Put(ctx, key, value)
		if err != nil || stored < 1 {
			t.Fatalf("Put: %d, %v", stored, err)
		}
		hold := holders(n, key, value)
		// Stop 30% of the nodes: the putter and the closest to the key.
		down := []int{putter}
		for _, i := range order {
			if len(down) == (3*N+9)/10 {
				break
			}
			if i != putter && i != reader {
				down = append(down, i)
			}
		}
		for _, i := range down {
			if err := n.Stop(i); err != nil {
				t.Fatal(err)
			}
		}
		left := holders(n, key, value)
		t.Logf("%d nodes held the record; stopped %v (the %d closest and the putter); %d holders left",
			len(hold), down, len(down)-1, len(left))
		var lost int
		for _, i := range down {
			if slices.Contains(hold, i) {
				lost++
			}
		}
		if lost != len(down) {
			t.Errorf("only %d of the %d stopped nodes held the record", lost, len(down))
		}
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := n.Restart(rctx, reader); err != nil {
			t.Fatal(err)
		}
		if _, err := n.Node(reader).GetLocal(ctx, key); !errors.Is(err, dht.ErrNotFound) {
			t.Fatalf("the restarted reader holds the record already (%v)", err)
		}
		got, err := n.Node(reader).Get(ctx, key)
		if err != nil || !bytes.Equal(got, value) {
			t.Fatalf("reader %d read %q, %v", reader, got, err)
		}
		for _, i := range []int{0, 1, 2} {
			if slices.Contains(down, i) {
				continue
			}
			if got, err := n.Node(i).Get(ctx, key); err != nil || !bytes.Equal(got, value) {
				t.Errorf("node %d read %q, %v", i, got, err)
			}
		}
	})
}

func TestRestartPersistent(t *testing.T) {
	dir := t.TempDir()
	n := newNetwork(t, Config{Nodes: 6, Dir: dir})
	ctx := context.Background()
	key, value := "/dsep-test/persistent", []byte("ok on disk")
	if _, err := n.Node(1).Put(ctx, key, value); err != nil {
		t.Fatal(err)
	}
	hold := holders(n, key, value)
	for _, i := range []int{4, 0} { // a holder, then the bootstrap node
		if !slices.Contains(hold, i) {
			t.Fatalf("node %d does not hold the record (holders %v)", i, hold)
		}
		id := n.ID(i)
		if err := n.Stop(i); err != nil {
			t.Fatal(err)
		}
		if n.Node(i) != nil {
			t.Fatal("a stopped node is still returned")
		}
		if err := n.Stop(i); err == nil {
			t.Error("stopping a stopped node succeeded")
		}
		if _, err := os.Stat(filepath.Join(dir, fmt.Sprintf("node-%d", i), "node.key")); err != nil {
			t.Fatal(err)
		}
		if err := n.Restart(ctx, i); err != nil {
			t.Fatal(err)
		}
		if err := n.Restart(ctx, i); err == nil {
			t.Error("restarting a running node succeeded")
		}
		d := n.Node(i)
		if d.Host().ID() != id {
			t.Fatalf("node %d came back as %s, was %s", i, d.Host().ID(), id)
		}
		got, err := d.GetLocal(ctx, key)
		if err != nil || !bytes.Equal(got, value) {
			t.Fatalf("node %d after restart holds %q, %v", i, got, err)
		}
		if d.RoutingTableSize() < 4 {
			t.Errorf("node %d rejoined with %d routing table peers", i, d.RoutingTableSize())
		}
		// And the network reaches it again.
		if err := n.Node(5).Host().Connect(ctx, peer.AddrInfo{ID: id, Addrs: d.Host().Addrs()}); err != nil {
			t.Errorf("connecting to the restarted node %d: %v", i, err)
		}
	}
	// Node keys persist: a second network on the same Dir has the same IDs.
	ids := make([]peer.ID, n.Len())
	for i := range ids {
		ids[i] = n.ID(i)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	n2 := newNetwork(t, Config{Nodes: 6, Dir: dir})
	for i := range ids {
		if n2.ID(i) != ids[i] {
			t.Errorf("node %d has a new ID after the network restarted", i)
		}
	}
	if got, err := n2.Node(2).Get(ctx, key); err != nil || !bytes.Equal(got, value) {
		t.Errorf("after restarting the whole network: %q, %v", got, err)
	}
}

func TestQUIC(t *testing.T) {
	n := newNetwork(t, Config{Nodes: 4, QUIC: true})
	ctx := context.Background()
	key, value := "/dsep-test/quic", []byte("ok over quic")
	if stored, err := n.Node(1).Put(ctx, key, value); err != nil || stored < 1 {
		t.Fatalf("Put: %d, %v", stored, err)
	}
	if got, err := n.Node(3).Get(ctx, key); err != nil || !bytes.Equal(got, value) {
		t.Fatalf("Get: %q, %v", got, err)
	}
	quic := 0
	for i := range n.Len() {
		for _, c := range n.Node(i).Host().Network().Conns() {
			if c.ConnState().Transport == "quic-v1" {
				quic++
			}
		}
	}
	if quic == 0 {
		t.Error("no QUIC connection in a QUIC network")
	}
}

func TestConfigErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := New(ctx, Config{}); err == nil {
		t.Error("network without a validator started")
	}
	if _, err := New(ctx, Config{Nodes: -1, Validator: validator()}); err == nil {
		t.Error("network of -1 nodes started")
	}
	// A network that cannot form within its context fails and cleans up.
	cctx, cancel := context.WithTimeout(ctx, time.Millisecond)
	defer cancel()
	time.Sleep(2 * time.Millisecond)
	if n, err := New(cctx, Config{Nodes: 3, Validator: validator()}); err == nil {
		n.Close()
		t.Error("network formed in an expired context")
	}
}

// BenchmarkGet measures Get latency on a settled network of 50 nodes (20
// under the race detector) holding 100 records, each read from a random
// node, and the heap and goroutines each node costs; with in-memory stores
// and with badger stores on disk.
func BenchmarkGet(b *testing.B) {
	b.Run("store=memory", func(b *testing.B) { benchmarkGet(b, "") })
	b.Run("store=badger", func(b *testing.B) { benchmarkGet(b, b.TempDir()) })
}

func benchmarkGet(b *testing.B, dir string) {
	nodes := 50
	if raceEnabled {
		nodes = 20
	}
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	g0 := runtime.NumGoroutine()

	n := newNetwork(b, Config{Nodes: nodes, Dir: dir})
	ctx := context.Background()
	const records = 100
	keys := make([]string, records)
	for i := range keys {
		keys[i] = fmt.Sprintf("/dsep-test/bench-%d", i)
		if _, err := n.Node(i%nodes).Put(ctx, keys[i], []byte(fmt.Sprintf("ok record %d", i))); err != nil {
			b.Fatal(err)
		}
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	g1 := runtime.NumGoroutine()

	rng := rand.New(rand.NewPCG(1, 2))
	var lat []time.Duration
	for b.Loop() {
		k, reader := keys[rng.IntN(records)], rng.IntN(nodes)
		start := time.Now()
		if _, err := n.Node(reader).Get(ctx, k); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	ms := func(q float64) float64 {
		return float64(lat[int(q*float64(len(lat)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(ms(0.50), "p50-ms")
	b.ReportMetric(ms(0.99), "p99-ms")
	b.ReportMetric(float64(int64(after.HeapInuse)-int64(before.HeapInuse))/float64(nodes)/(1<<20), "heap-MiB/node")
	b.ReportMetric(float64(g1-g0)/float64(nodes), "goroutines/node")
}
