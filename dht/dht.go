// Package dht runs a node of the DSEP Kademlia network: a private
// go-libp2p-kad-dht (wire protocol /dsep/kad/1.0.0, docs/protocol.md §9)
// that holds DSEP's signed records (keys, revocations, reach and email
// records) and the relays' provider announcements.
//
// The network is separate from IPFS: every node is a DHT server, speaks only
// the /dsep protocol prefix, and knows only the record namespaces of the
// validator it is given (the /pk and /ipns namespaces of IPFS do not exist
// here). Records are validated by that validator on every store and on
// every value a reader receives; the record formats themselves live in
// package dht/record.
//
// Put confirms replication: kad-dht's PutValue reports success even when no
// other node stored the record, so Put asks the peers it stored to for the
// record afterwards and returns how many hold it.
//
// Records live 48 hours in every node's store and nothing republishes them
// automatically: their owners re-put them every 12 to 24 hours.
package dht

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4/options"
	"github.com/ipfs/go-cid"
	datastore "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	badger4 "github.com/ipfs/go-ds-badger4"
	kaddht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p-kad-dht/amino"
	pb "github.com/libp2p/go-libp2p-kad-dht/pb"
	"github.com/libp2p/go-libp2p-kad-dht/records"
	kb "github.com/libp2p/go-libp2p-kbucket"
	record "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/core/routing"
)

// ProtocolPrefix is the protocol prefix of the DSEP DHT.
const ProtocolPrefix protocol.ID = "/dsep"

// ProtocolID is the DHT's wire protocol: ProtocolPrefix + "/kad/1.0.0".
const ProtocolID protocol.ID = ProtocolPrefix + "/kad/1.0.0"

// Defaults of Config.
const (
	DefaultQuorum  = 1
	DefaultTimeout = 10 * time.Second
)

// confirmTimeout bounds each direct GET_VALUE Put sends to confirm a store.
const confirmTimeout = 5 * time.Second

var (
	// ErrNotFound is returned by Get and GetLocal when no valid record is
	// found under the key.
	ErrNotFound = errors.New("dht: record not found")

	// ErrNoPeers is returned when the routing table is empty: the node is
	// not connected to the DSEP network. Put still keeps the record in the
	// node's own store, and Bootstrap may connect it.
	ErrNoPeers = errors.New("dht: not connected to the DSEP network (routing table empty); check the bootstrap peers and the network connection")

	// ErrInvalidRecord is wrapped, together with the validator's own error,
	// by Put when the validator rejects the record.
	ErrInvalidRecord = errors.New("dht: invalid record")

	// ErrStale is wrapped by Put's error when a better record (by the
	// validator's Select) is already held, locally or by the peers asked to
	// store it: publish a record with a higher sequence number.
	ErrStale = errors.New("dht: a newer record is already published under this key")

	// ErrNotStored is wrapped by a *NotStoredError.
	ErrNotStored = errors.New("dht: no peer stored the record")

	// ErrNoValidator is returned by New when Config.Validator is nil.
	ErrNoValidator = errors.New("dht: Config.Validator is required")
)

// NotStoredError is returned by Put when the DHT had peers but none of those
// the record was sent to holds it afterwards. It wraps ErrNotStored, and
// ErrStale when some of them hold a newer record.
type NotStoredError struct {
	Key string
	// Peers is the number of peers the record was sent to (the closest to
	// the key that answered the lookup).
	Peers int
	// Newer counts the peers that hold a different record the validator
	// prefers to ours.
	Newer int
	// Missing counts the peers that answered without the record (they
	// refused it or hold a record the validator does not prefer either).
	Missing int
	// Unreachable counts the peers that did not answer the confirmation.
	Unreachable int
}

// Error describes the failure and what to do about it.
func (e *NotStoredError) Error() string {
	hint := "the peers refused or lost it; retry later"
	if e.Newer > 0 {
		hint = "a newer record is already published; publish one with a higher sequence number"
	}
	return fmt.Sprintf("dht: no peer stored the record %s (sent to %d: %d hold a newer record, %d without it, %d unreachable): %s",
		e.Key, e.Peers, e.Newer, e.Missing, e.Unreachable, hint)
}

// Unwrap returns ErrNotStored, and ErrStale when a peer holds a newer
// record.
func (e *NotStoredError) Unwrap() []error {
	if e.Newer > 0 {
		return []error{ErrNotStored, ErrStale}
	}
	return []error{ErrNotStored}
}

// Temporary reports whether retrying the same record later may succeed:
// false when peers hold a newer one.
func (e *NotStoredError) Temporary() bool { return e.Newer == 0 }

// Config describes a DHT node. Validator is required; every other zero
// value has a working default.
type Config struct {
	// Validator validates and selects the records of every namespace the
	// node accepts (normally the record.NamespacedValidator of package
	// dht/record). It replaces kad-dht's default set: keys outside its
	// namespaces, /pk and /ipns included, are refused. Its Select must
	// return 0 on ties (equal records), or republishing a record is
	// refused and the copies expire. Required.
	Validator record.Validator

	// Datastore is the directory of the node's badger store (created 0700
	// if missing), so records and provider announcements survive restarts.
	// Default "": an in-memory store, lost on Close. See BadgerOptions.
	Datastore string

	// Bootstrap are the peers to join the network through. They are
	// dialled only while the routing table is empty: at start, every two
	// minutes, and on Bootstrap.
	Bootstrap []peer.AddrInfo

	// Quorum is how many values Get collects before it stops early. The
	// node's own stored copy counts as one value, so with the default of
	// 1 a node holding the record still asks the network and returns after
	// the first other answer, and a node without it returns once two peers
	// answered (kad-dht stops after more than Quorum values). When fewer
	// values arrive the lookup runs to completion and returns the best
	// value seen. A negative Quorum always runs the complete lookup.
	// Default 1.
	Quorum int

	// Timeout bounds each Put, Get, Provide and FindProviders whose
	// context has no earlier deadline. Default 10s.
	Timeout time.Duration

	// Logger receives the node's diagnostics. Default nil: silent.
	Logger *slog.Logger

	// Client makes the node a DHT client: it queries and publishes but
	// serves no records and stays out of other nodes' routing tables. For
	// short-lived command-line lookups; a running node is a server.
	Client bool
}

// Node is a DSEP DHT node on a libp2p host. Its methods are safe for
// concurrent use.
type Node struct {
	h         host.Host
	dht       *kaddht.IpfsDHT
	store     datastore.Batching
	local     *records.ValueStore // reads the records dht keeps in store
	pm        *pb.ProtocolMessenger
	validator record.Validator
	bootstrap []peer.AddrInfo
	quorum    int // kad-dht's Quorum option value; 0 = complete lookup
	timeout   time.Duration
	log       *slog.Logger

	closeOnce sync.Once
	closeErr  error
}

// New starts a DHT node on h in server mode with DSEP's protocol prefix. It
// does not wait for the node to join the network: kad-dht dials the
// bootstrap peers in the background (see Bootstrap and RoutingTableSize).
// The caller owns h, which must outlive the node; Close the node before
// the host.
func New(ctx context.Context, h host.Host, cfg Config) (*Node, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if cfg.Validator == nil {
		return nil, ErrNoValidator
	}
	n := &Node{
		h:         h,
		validator: cfg.Validator,
		quorum:    cfg.Quorum,
		timeout:   cfg.Timeout,
		log:       cfg.Logger,
	}
	switch {
	case n.quorum == 0:
		n.quorum = DefaultQuorum
	case n.quorum < 0:
		n.quorum = 0
	}
	if n.timeout <= 0 {
		n.timeout = DefaultTimeout
	}
	if n.log == nil {
		n.log = slog.New(slog.DiscardHandler)
	}
	for _, ai := range cfg.Bootstrap {
		if ai.ID != h.ID() {
			n.bootstrap = append(n.bootstrap, ai)
		}
	}

	if cfg.Datastore == "" {
		n.store = dssync.MutexWrap(datastore.NewMapDatastore())
	} else {
		if err := os.MkdirAll(cfg.Datastore, 0o700); err != nil {
			return nil, fmt.Errorf("dht: creating the datastore directory: %w", err)
		}
		opts := BadgerOptions()
		bs, err := badger4.NewDatastore(cfg.Datastore, &opts)
		if err != nil {
			return nil, fmt.Errorf("dht: opening the datastore %s (is another node using it?): %w", cfg.Datastore, err)
		}
		n.store = bs
	}

	mode := kaddht.ModeServer
	if cfg.Client {
		mode = kaddht.ModeClient
	}
	d, err := kaddht.New(h,
		kaddht.Mode(mode),
		kaddht.ProtocolPrefix(ProtocolPrefix),
		kaddht.Validator(cfg.Validator),
		kaddht.Datastore(n.store),
		kaddht.BootstrapPeers(n.bootstrap...),
	)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("dht: %w", err), n.store.Close())
	}
	n.dht = d
	// Cannot fail: the constructor only applies options, and we give none.
	n.pm, err = pb.NewProtocolMessenger(d.MessageSender())
	if err != nil {
		return nil, errors.Join(fmt.Errorf("dht: %w", err), n.close())
	}
	n.local = records.NewValueStore(n.store, cfg.Validator, amino.DefaultMaxRecordAge)
	return n, nil
}

// BadgerOptions are the options of a node's persistent store, tuned for a
// small footprint (badger's defaults reserve 64 MiB memtables, a 256 MiB
// block cache and 1 GiB value-log files, which make a hundred in-process
// nodes impossible). A DHT node holds at most a few thousand records of at
// most 16 KiB (docs/protocol.md §9.2), so:
//
//   - 2 MiB memtables, at most 2 in memory (each is also a 2 MiB mmapped
//     write-ahead log);
//   - values up to 64 KiB are kept in the LSM tree itself, so the 8 MiB
//     value-log files hold nothing in practice;
//   - no compression (records are signed binary) and hence no block cache;
//     1 MiB tables, a 4 MiB base level, 2 compactors, no expvar metrics;
//   - writes are not synced one by one: they reach the operating system at
//     once (a crash of the process loses nothing), and a power failure can
//     cost the last records received, which their owners republish anyway.
//
// go-ds-badger4 runs badger's value-log GC every 15 minutes.
func BadgerOptions() badger4.Options {
	o := badger4.DefaultOptions
	o.Options = o.Options.
		WithMemTableSize(2 << 20).
		WithNumMemtables(2).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(8).
		WithBaseTableSize(1 << 20).
		WithBaseLevelSize(4 << 20).
		WithValueThreshold(64 << 10).
		WithValueLogFileSize(8 << 20).
		WithCompression(options.None).
		WithBlockCacheSize(0).
		WithIndexCacheSize(0).
		WithNumCompactors(2).
		WithNumGoroutines(2).
		WithMetricsEnabled(false).
		WithSyncWrites(false)
	return o
}

// withTimeout applies the node's default timeout to ctx.
func (n *Node) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, n.timeout)
}

// Put validates value, stores it in the node's own store and on the
// closest peers to key, then asks each of those peers for the record and
// returns how many hold exactly value. The node's own copy is not counted.
//
// A record the validator rejects is refused with an error wrapping
// ErrInvalidRecord. A record older than the one the node holds is refused
// with ErrStale. With an empty routing table the record is kept locally
// and Put returns 0 and ErrNoPeers. When peers were asked but none holds
// the record, Put returns 0 and a *NotStoredError.
func (n *Node) Put(ctx context.Context, key string, value []byte) (stored int, err error) {
	if err := n.validator.Validate(key, value); err != nil {
		return 0, fmt.Errorf("%w %s: %w", ErrInvalidRecord, key, err)
	}
	ctx, cancel := n.withTimeout(ctx)
	defer cancel()

	// kad-dht announces each peer it sends the record to as a Value query
	// event; collect them.
	evCtx, evCancel := context.WithCancel(ctx)
	evCtx, events := routing.RegisterForQueryEvents(evCtx)
	var targets []peer.ID
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		seen := make(map[peer.ID]bool)
		for ev := range events { // closed once evCtx is cancelled
			if ev.Type == routing.Value && !seen[ev.ID] && ev.ID != n.h.ID() {
				seen[ev.ID] = true
				targets = append(targets, ev.ID)
			}
		}
	}()
	err = n.dht.PutValue(evCtx, key, value)
	evCancel()
	<-collected

	switch {
	case errors.Is(err, kb.ErrLookupFailure):
		n.log.Warn("dht put: no peers; record kept locally", "key", key)
		return 0, ErrNoPeers
	case err != nil && ctx.Err() != nil:
		return 0, fmt.Errorf("dht: put %s: %w", key, ctx.Err())
	case err != nil:
		if old, _ := n.local.Get(ctx, key); old != nil && !bytes.Equal(old.GetValue(), value) {
			return 0, fmt.Errorf("%w (%s): %w", ErrStale, key, err)
		}
		return 0, fmt.Errorf("dht: put %s: %w", key, err)
	}

	if len(targets) == 0 {
		// Only if kad-dht stopped publishing Value events: find the
		// peers the record went to again.
		targets, err = n.dht.GetClosestPeers(ctx, key)
		if errors.Is(err, kb.ErrLookupFailure) {
			return 0, ErrNoPeers
		}
		if err != nil {
			return 0, fmt.Errorf("dht: put %s: confirming: %w", key, err)
		}
	}

	res := n.confirm(ctx, key, value, targets)
	n.log.Debug("dht put", "key", key, "peers", len(targets), "stored", res.stored,
		"newer", res.newer, "missing", res.missing, "unreachable", res.unreachable)
	if res.stored > 0 {
		return res.stored, nil
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("dht: put %s: confirming: %w", key, err)
	}
	if len(targets) == 0 {
		return 0, ErrNoPeers
	}
	return 0, &NotStoredError{Key: key, Peers: len(targets), Newer: res.newer, Missing: res.missing, Unreachable: res.unreachable}
}

// confirmation counts the answers to Put's confirmation requests.
type confirmation struct {
	stored, newer, missing, unreachable int
}

// confirm asks each peer directly (GET_VALUE, no lookup) for key and
// counts those holding value.
func (n *Node) confirm(ctx context.Context, key string, value []byte, peers []peer.ID) confirmation {
	var (
		mu  sync.Mutex
		res confirmation
		wg  sync.WaitGroup
	)
	for _, p := range peers {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, confirmTimeout)
			defer cancel()
			rec, _, err := n.pm.GetValue(ctx, p, key)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				res.unreachable++
			case rec != nil && bytes.Equal(rec.GetValue(), value):
				res.stored++
			case rec != nil && n.prefers(key, rec.GetValue(), value):
				res.newer++
			default:
				res.missing++
			}
		})
	}
	wg.Wait()
	return res
}

// prefers reports whether theirs is a valid record the validator selects
// over ours.
func (n *Node) prefers(key string, theirs, ours []byte) bool {
	if n.validator.Validate(key, theirs) != nil {
		return false
	}
	i, err := n.validator.Select(key, [][]byte{ours, theirs})
	return err == nil && i == 1
}

// Get returns the best valid record under key found by a lookup that stops
// after Config.Quorum values (see there). It returns an error wrapping
// ErrNotFound when no valid record exists, and the context's error when
// the lookup was cut short.
func (n *Node) Get(ctx context.Context, key string) ([]byte, error) {
	ctx, cancel := n.withTimeout(ctx)
	defer cancel()
	v, err := n.dht.GetValue(ctx, key, kaddht.Quorum(n.quorum))
	switch {
	case errors.Is(err, routing.ErrNotFound):
		return nil, fmt.Errorf("%w: %s", ErrNotFound, key)
	case err != nil:
		return nil, fmt.Errorf("dht: get %s: %w", key, err)
	}
	// Remote values were validated on receipt, but the node's own copy was
	// validated only when stored and may have expired since; kad-dht starts
	// from it and keeps it when Select prefers it (or fails), which hides
	// valid records on other nodes. Ask the closest peers without it.
	if verr := n.validator.Validate(key, v); verr != nil {
		n.log.Debug("dht get: local record no longer valid", "key", key, "err", verr)
		v, err = n.getRemote(ctx, key)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: the local record is no longer valid (%w) and %w", ErrNotFound, key, verr, err)
		}
	}
	return v, nil
}

// getRemote looks up the closest peers to key, asks each for the record and
// returns the best valid answer.
func (n *Node) getRemote(ctx context.Context, key string) ([]byte, error) {
	peers, err := n.dht.GetClosestPeers(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("the lookup failed: %w", err)
	}
	var (
		mu    sync.Mutex
		valid [][]byte
		wg    sync.WaitGroup
	)
	for _, p := range peers {
		wg.Go(func() {
			rec, _, err := n.pm.GetValue(ctx, p, key)
			if err != nil || rec == nil || n.validator.Validate(key, rec.GetValue()) != nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			valid = append(valid, rec.GetValue())
		})
	}
	wg.Wait()
	if len(valid) == 0 {
		return nil, fmt.Errorf("none of the %d closest peers holds a valid one", len(peers))
	}
	i, err := n.validator.Select(key, valid)
	if err != nil {
		return nil, fmt.Errorf("selecting among %d valid records: %w", len(valid), err)
	}
	if i < 0 || i >= len(valid) {
		return nil, fmt.Errorf("the validator selected record %d of %d", i, len(valid))
	}
	return valid[i], nil
}

// GetLocal returns the valid record under key in the node's own store,
// without asking the network. It returns an error wrapping ErrNotFound when
// the node holds none (or only an expired or no longer valid one).
func (n *Node) GetLocal(ctx context.Context, key string) ([]byte, error) {
	rec, err := n.local.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("dht: reading the local store: %w", err)
	}
	if rec == nil {
		return nil, fmt.Errorf("%w: %s (not held locally)", ErrNotFound, key)
	}
	if err := n.validator.Validate(key, rec.GetValue()); err != nil {
		return nil, fmt.Errorf("%w: %s: the local record is no longer valid: %w", ErrNotFound, key, err)
	}
	return rec.GetValue(), nil
}

// Provide announces this node as a provider of c to the closest peers to
// c (relays announce themselves under a well-known CID). Announcements
// expire after 48 hours: re-provide every 12 to 24.
func (n *Node) Provide(ctx context.Context, c cid.Cid) error {
	if n.RoutingTableSize() == 0 {
		return ErrNoPeers
	}
	ctx, cancel := n.withTimeout(ctx)
	defer cancel()
	if err := n.dht.Provide(ctx, c, true); err != nil {
		if errors.Is(err, kb.ErrLookupFailure) {
			return ErrNoPeers
		}
		return fmt.Errorf("dht: provide %s: %w", c, err)
	}
	return nil
}

// FindProviders returns up to max providers of c (max ≤ 0: 20), this node
// included if it provides c. It returns what it found when the lookup ends
// or the context or the node's timeout expires.
func (n *Node) FindProviders(ctx context.Context, c cid.Cid, max int) ([]peer.AddrInfo, error) {
	if !c.Defined() {
		return nil, errors.New("dht: find providers: undefined CID")
	}
	if max <= 0 {
		max = amino.DefaultBucketSize
	}
	ctx, cancel := n.withTimeout(ctx)
	defer cancel()
	var out []peer.AddrInfo
	for ai := range n.dht.FindProvidersAsync(ctx, c, max) {
		out = append(out, ai)
	}
	if len(out) == 0 && ctx.Err() != nil {
		return nil, fmt.Errorf("dht: find providers of %s: %w", c, ctx.Err())
	}
	return out, nil
}

// Bootstrap reconnects the node when its routing table is empty: it dials
// every bootstrap peer at once, ignoring the dial backoff a previous
// failure left (kad-dht itself retries only every two minutes), then asks
// kad-dht to refresh the routing table in the background. With a non-empty
// routing table it only requests the refresh. It fails when the table is
// empty and no bootstrap peer could be reached.
func (n *Node) Bootstrap(ctx context.Context) error {
	if n.RoutingTableSize() == 0 {
		if len(n.bootstrap) == 0 && len(n.h.Network().Peers()) == 0 {
			return ErrNoPeers
		}
		if err := n.connectBootstrap(ctx); err != nil {
			return err
		}
	}
	return n.dht.Bootstrap(ctx)
}

// connectBootstrap dials every bootstrap peer and fails only if all fail.
func (n *Node) connectBootstrap(ctx context.Context) error {
	if len(n.bootstrap) == 0 {
		return nil
	}
	dctx := network.WithForceDirectDial(ctx, "dsep bootstrap")
	errs := make([]error, len(n.bootstrap))
	var wg sync.WaitGroup
	for i, ai := range n.bootstrap {
		wg.Go(func() { errs[i] = n.h.Connect(dctx, ai) })
	}
	wg.Wait()
	for _, err := range errs {
		if err == nil {
			return nil
		}
	}
	return fmt.Errorf("dht: bootstrap: no bootstrap peer reachable: %w", errors.Join(errs...))
}

// Refresh refreshes the routing table (a lookup of the node's own ID and of
// a random ID per bucket) and waits for the refresh to finish.
func (n *Node) Refresh(ctx context.Context) error {
	select {
	case err := <-n.dht.RefreshRoutingTable():
		if err != nil {
			return fmt.Errorf("dht: refresh: %w", err)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// RoutingTableSize returns the number of peers in the routing table.
func (n *Node) RoutingTableSize() int {
	return n.dht.RoutingTable().Size()
}

// RoutingTable returns the peers in the routing table.
func (n *Node) RoutingTable() []peer.ID {
	return n.dht.RoutingTable().ListPeers()
}

// Host returns the node's libp2p host.
func (n *Node) Host() host.Host {
	return n.h
}

// Close stops serving the DHT protocol, stops the DHT and closes the
// datastore; the host stays open. It returns errors.Join of what failed and
// is idempotent.
func (n *Node) Close() error {
	n.closeOnce.Do(func() { n.closeErr = n.close() })
	return n.closeErr
}

func (n *Node) close() error {
	// Refuse new DHT streams first: kad-dht's Close neither removes its
	// handler nor waits for handlers in flight.
	n.h.RemoveStreamHandler(ProtocolID)
	err := n.dht.Close()
	if err != nil {
		err = fmt.Errorf("dht: closing the DHT: %w", err)
	}
	if cerr := n.store.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("dht: closing the datastore: %w", cerr))
	}
	return err
}
