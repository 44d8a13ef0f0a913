package testnet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/routing"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/dsep-project/dsep/address"
	dsepdns "github.com/dsep-project/dsep/address/dns"
	"github.com/dsep-project/dsep/dht"
	"github.com/dsep-project/dsep/dht/record"
	"github.com/dsep-project/dsep/testnet/dnstest"
)

// Defaults of LookupBench.
const (
	DefaultBenchNodes   = 50
	DefaultBenchLookups = 200
)

// BenchDomain is the domain of the lookup benchmark's users,
// user<i>@BenchDomain.
const BenchDomain = "example.org"

const (
	// benchLookupTimeout bounds one timed ResolveEmail or Get.
	benchLookupTimeout = 10 * time.Second
	// benchPutTries is how often a record is put before the run fails.
	benchPutTries = 3
	// benchPublishers is how many users publish their records at once.
	benchPublishers = 8
)

// LookupBench describes the lookup benchmark of RunLookupBench. Its zero
// value works: 50 nodes, 200 lookups, seed 0, silent.
type LookupBench struct {
	// Nodes is the size of the network, one user per node; at least 2.
	// Default DefaultBenchNodes (50).
	Nodes int
	// Lookups is the number of timed ResolveEmail calls, and of bare Gets.
	// Default DefaultBenchLookups (200).
	Lookups int
	// Seed seeds the choice of the node and the user of each lookup: the
	// same seed on the same network size makes the same choices.
	Seed int64
	// Logger receives the phases of the run (Info) and the nodes'
	// diagnostics (tagged "node"). Default nil: silent.
	Logger *slog.Logger
}

// LookupResult is what RunLookupBench measured. Latencies are in
// milliseconds; the JSON names are those of `dsep testnet bench lookup
// --json`.
type LookupResult struct {
	Nodes   int `json:"nodes"`
	Lookups int `json:"lookups"`
	// FormedS is how long the network took to form (testnet.New), in
	// seconds.
	FormedS float64 `json:"formed_s"`
	// P50Ms, P95Ms and P99Ms are percentiles (nearest rank) of the
	// latency of ResolveEmail over all lookups, failed ones included.
	P50Ms float64 `json:"p50_ms"`
	P95Ms float64 `json:"p95_ms"`
	P99Ms float64 `json:"p99_ms"`
	// Success is the fraction of lookups that returned no error and the
	// key of the user asked for.
	Success float64 `json:"success"`
	// RPCsPerLookup is the mean number of DHT requests (GET_VALUE) one
	// ResolveEmail sent, counted from kad-dht's SendingQuery query events.
	// It leaves out the PUT_VALUE corrections kad-dht sends after a
	// lookup that met outdated copies, and the nodes' routing table
	// refreshes.
	RPCsPerLookup float64 `json:"rpcs_per_lookup"`
	// MemPerNodeMB is the growth of the process's resident set size
	// (/proc/self/statm) from before the network was built to when it had
	// formed, divided by Nodes, in MiB; 0 where /proc is unavailable.
	MemPerNodeMB float64 `json:"mem_per_node_mb"`
	// BareGetP50Ms and BareGetP99Ms are percentiles of the latency of a
	// plain dht.Node.Get of a user's key record from a random node (a
	// record of the same size as those ResolveEmail fetches, without the
	// resolver's DNS step, chain and verification), timed alongside the
	// lookups: what the DSEP chain costs on top of kad-dht.
	BareGetP50Ms float64 `json:"bare_get_p50_ms"`
	BareGetP99Ms float64 `json:"bare_get_p99_ms"`
	// FirstError is the error of the first failed lookup or Get, if any.
	FirstError string `json:"first_error,omitempty"`
}

// benchUser is one user of the benchmark, living on the node of the same
// index.
type benchUser struct {
	email address.Email
	key   *address.Key // with the domain's certification
}

// RunLookupBench measures resolving email addresses on a fresh network:
// it starts a DNS server on 127.0.0.1 holding the TXT record of a domain
// key for BenchDomain, and a network of cfg.Nodes nodes (in-memory
// stores, TCP only); node i publishes the records of user i (its key, the
// email record the domain signed, and a reach record delegating to node
// i as a device, with node i's addresses), and node 0 the domain key's
// record. Once every record is confirmed stored, it runs cfg.Lookups
// timed lookups, each the ResolveEmail of a random user by a fresh
// resolver (cold record cache; the DNS cache is shared and warm) on a
// random other node, each followed by a timed bare Get of a random
// user's key record from a random node.
//
// progress, if not nil, is called with (0, Lookups) once the records
// are published and with (i, Lookups) after lookup i, from the calling
// goroutine. RunLookupBench stops everything it started before it
// returns; it returns ctx's error when ctx ends first.
func RunLookupBench(ctx context.Context, cfg LookupBench, progress func(done, total int)) (_ *LookupResult, err error) {
	if cfg.Nodes == 0 {
		cfg.Nodes = DefaultBenchNodes
	}
	if cfg.Lookups == 0 {
		cfg.Lookups = DefaultBenchLookups
	}
	if cfg.Nodes < 2 {
		return nil, fmt.Errorf("testnet: a lookup benchmark needs at least 2 nodes, not %d", cfg.Nodes)
	}
	if cfg.Lookups < 0 {
		return nil, fmt.Errorf("testnet: %d lookups", cfg.Lookups)
	}
	if progress == nil {
		progress = func(int, int) {}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}

	// The domain and its users, before anything is measured.
	now := time.Now()
	dom, err := address.NewDomainKey(BenchDomain, address.NewIdentityOptions{Now: now.Add(-time.Hour)})
	if err != nil {
		return nil, fmt.Errorf("testnet: domain key: %w", err)
	}
	users := make([]benchUser, cfg.Nodes)
	for i := range users {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if users[i], err = newBenchUser(dom, i, now); err != nil {
			return nil, err
		}
	}

	srv, err := dnstest.Start("127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("testnet: %w", err)
	}
	defer func() { err = closeJoin(err, srv.Close()) }()
	srv.AddTXT(address.TXTName(BenchDomain), address.DomainRecord{Key: dom.Fingerprint()}.String())
	dnsr, err := dsepdns.New(dsepdns.Config{Servers: []string{srv.Addr()}})
	if err != nil {
		return nil, fmt.Errorf("testnet: %w", err)
	}

	// The network.
	rss0, rssErr := residentBytes()
	start := time.Now()
	n, err := New(ctx, Config{
		Nodes:     cfg.Nodes,
		Validator: record.NamespacedValidator(record.Validator{}),
		Logger:    cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	defer func() { err = closeJoin(err, n.Close()) }()
	res := &LookupResult{Nodes: cfg.Nodes, Lookups: cfg.Lookups, FormedS: time.Since(start).Seconds()}
	if rss1, err := residentBytes(); rssErr == nil && err == nil {
		res.MemPerNodeMB = float64(rss1-rss0) / float64(cfg.Nodes) / (1 << 20)
	} else {
		log.Warn("testnet bench: cannot read the resident set size", "err", errors.Join(rssErr, err))
	}
	log.Info("testnet bench: network formed", "nodes", cfg.Nodes, "took", time.Since(start).Round(time.Millisecond),
		"mem_per_node_mb", res.MemPerNodeMB)

	start = time.Now()
	if err := publishBench(ctx, n, dom, users); err != nil {
		return nil, err
	}
	log.Info("testnet bench: records published", "users", len(users), "took", time.Since(start).Round(time.Millisecond))
	progress(0, cfg.Lookups)

	// The lookups, each followed by a bare Get.
	rng := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x6473657062656e63)) // "dsepbenc"
	var (
		lookups  = make([]time.Duration, 0, cfg.Lookups)
		gets     = make([]time.Duration, 0, cfg.Lookups)
		ok, rpcs int
	)
	for i := range cfg.Lookups {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		node, user := pickPair(rng, cfg.Nodes)
		d, sent, lerr := timeResolve(ctx, dnsr, n.Node(node), users[user])
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		lookups = append(lookups, d)
		rpcs += sent
		if lerr == nil {
			ok++
		} else {
			log.Debug("testnet bench: lookup failed", "node", node, "user", users[user].email, "err", lerr)
			if res.FirstError == "" {
				res.FirstError = fmt.Sprintf("node %d resolving %s: %v", node, users[user].email, lerr)
			}
		}

		node, user = pickPair(rng, cfg.Nodes)
		d, gerr := timeGet(ctx, n.Node(node), users[user])
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		gets = append(gets, d)
		if gerr != nil && res.FirstError == "" {
			res.FirstError = fmt.Sprintf("node %d getting the key record of %s: %v", node, users[user].email, gerr)
		}
		progress(i+1, cfg.Lookups)
	}

	if cfg.Lookups > 0 {
		res.Success = float64(ok) / float64(cfg.Lookups)
		res.RPCsPerLookup = float64(rpcs) / float64(cfg.Lookups)
	}
	res.P50Ms, res.P95Ms, res.P99Ms = percentileMs(lookups, 50), percentileMs(lookups, 95), percentileMs(lookups, 99)
	res.BareGetP50Ms, res.BareGetP99Ms = percentileMs(gets, 50), percentileMs(gets, 99)
	log.Info("testnet bench: done", "p50_ms", res.P50Ms, "p99_ms", res.P99Ms, "success", res.Success,
		"rpcs_per_lookup", res.RPCsPerLookup)
	return res, nil
}

// newBenchUser makes user<i>@BenchDomain, certified by dom.
func newBenchUser(dom *address.Key, i int, now time.Time) (benchUser, error) {
	email, err := address.ParseEmail("user" + strconv.Itoa(i) + "@" + BenchDomain)
	if err != nil {
		return benchUser{}, fmt.Errorf("testnet: user %d: %w", i, err)
	}
	k, err := address.NewIdentity("", email, address.NewIdentityOptions{Now: now.Add(-time.Hour)})
	if err != nil {
		return benchUser{}, fmt.Errorf("testnet: user %d: %w", i, err)
	}
	uid, ok := k.UserIDFor(email, now)
	if !ok {
		return benchUser{}, fmt.Errorf("testnet: user %d: the new key has no User ID for %s", i, email)
	}
	if k, err = address.Certify(k, uid, dom, now.Add(-time.Minute), 0); err != nil {
		return benchUser{}, fmt.Errorf("testnet: user %d: %w", i, err)
	}
	return benchUser{email: email, key: k}, nil
}

// publishBench has node i publish user i's key, email and reach records,
// and node 0 the domain key's record, a few users at a time; it returns
// once every record is confirmed stored by a peer.
func publishBench(ctx context.Context, n *Network, dom *address.Key, users []benchUser) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		sem      = make(chan struct{}, benchPublishers)
	)
	for i, u := range users {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := publishUser(ctx, n, i, dom, u); err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
					cancel()
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

// publishUser builds and puts node i's records.
func publishUser(ctx context.Context, n *Network, i int, dom *address.Key, u benchUser) error {
	node := n.Node(i)
	now := time.Now()
	var addrs []ma.Multiaddr
	for _, a := range node.Host().Addrs() {
		if len(addrs) < record.MaxAddrsPerDelegate {
			addrs = append(addrs, a)
		}
	}
	reach := record.Reach{
		Delegations: []address.Delegation{{Peer: n.ID(i), Role: address.RoleDevice, NotAfter: now.Add(24 * time.Hour)}},
		Addrs:       map[peer.ID][]ma.Multiaddr{n.ID(i): addrs},
	}
	builds := []func() (string, []byte, error){
		func() (string, []byte, error) { return record.NewKey(u.key, 1, now, 0) },
		func() (string, []byte, error) { return record.NewEmail(dom, u.key, u.email, 1, now, 0) },
		func() (string, []byte, error) { return record.NewReach(u.key, reach, 1, now, 0) },
	}
	if i == 0 {
		builds = append(builds, func() (string, []byte, error) { return record.NewKey(dom, 1, now, 0) })
	}
	for _, build := range builds {
		key, value, err := build()
		if err != nil {
			return fmt.Errorf("testnet: node %d: building a record of %s: %w", i, u.email, err)
		}
		for try := 1; ; try++ {
			_, err := node.Put(ctx, key, value)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if try == benchPutTries {
				return fmt.Errorf("testnet: node %d: publishing %s for %s (%d tries): %w", i, key, u.email, try, err)
			}
		}
	}
	return nil
}

// pickPair returns a random node and a random user of another node.
func pickPair(rng *rand.Rand, nodes int) (node, user int) {
	node = rng.IntN(nodes)
	user = rng.IntN(nodes - 1)
	if user >= node {
		user++
	}
	return node, user
}

// timeResolve times one ResolveEmail of u by a fresh resolver on node and
// counts the DHT requests it sent. The error also covers a resolution to
// another key than u's.
func timeResolve(ctx context.Context, dnsr *dsepdns.Resolver, node *dht.Node, u benchUser) (time.Duration, int, error) {
	r, err := dht.NewResolver(dht.ResolverConfig{DNS: dnsr, DHT: node, Timeout: benchLookupTimeout})
	if err != nil {
		return 0, 0, err
	}
	evCtx, cancel := context.WithCancel(ctx)
	evCtx, events := routing.RegisterForQueryEvents(evCtx)
	counted := make(chan int, 1)
	go func() {
		sent := 0
		for ev := range events { // closed once evCtx is cancelled
			if ev.Type == routing.SendingQuery {
				sent++
			}
		}
		counted <- sent
	}()
	start := time.Now()
	res, err := r.ResolveEmail(evCtx, u.email)
	d := time.Since(start)
	cancel()
	sent := <-counted
	if err == nil && res.Key.Fingerprint() != u.key.Fingerprint() {
		err = fmt.Errorf("resolved to key %s, want %s", res.Key.Fingerprint(), u.key.Fingerprint())
	}
	return d, sent, err
}

// timeGet times one Get of u's key record on node.
func timeGet(ctx context.Context, node *dht.Node, u benchUser) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, benchLookupTimeout)
	defer cancel()
	start := time.Now()
	_, err := node.Get(ctx, record.KeyOf(record.KeyType, u.key.Fingerprint()))
	return time.Since(start), err
}

// percentileMs returns the p-th percentile of ds (nearest rank), in
// milliseconds; 0 for none.
func percentileMs(ds []time.Duration, p float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	rank = min(max(rank, 1), len(s))
	return float64(s[rank-1]) / float64(time.Millisecond)
}

// residentBytes returns the resident set size of the process.
func residentBytes() (int64, error) {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0, fmt.Errorf("testnet: /proc/self/statm: unexpected %q", b)
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("testnet: /proc/self/statm: %w", err)
	}
	return pages * int64(os.Getpagesize()), nil
}

// closeJoin adds a Close error to err.
func closeJoin(err, cerr error) error {
	if cerr == nil {
		return err
	}
	return errors.Join(err, cerr)
}
