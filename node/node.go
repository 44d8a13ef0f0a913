// Package node is the DSEP daemon (DESIGN.md "Messages and delivery"): a
// libp2p host with the DHT, the delivery protocol in both directions, the
// outbound queue, the mailbox store, signed receipts, the republishing of
// the identity's records and the self-monitoring of its addresses.
//
// Receiving, in order (docs/protocol.md §11): size and per-peer rate
// limits, the stamp or waiver (price, resource, freshness, payload
// digest, spent stamps), the durable write of the envelope, the
// acknowledgement; then decryption, signature, recipient check, sender
// binding and classification, indexing in the mailbox and a receipt.
// Sending: resolve the recipient (following a rotation to the successor
// key), sign then encrypt, pay (waiver if the recipient gave one, else a
// stamp at the recipient's price), and deliver to every delegate in the
// recipient's reach record, retrying with backoff until the lifetime ends,
// then bounce.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dsep-project/dsep/address"
	"github.com/dsep-project/dsep/address/book"
	"github.com/dsep-project/dsep/dht"
	"github.com/dsep-project/dsep/dht/host"
	"github.com/dsep-project/dsep/dht/record"
	"github.com/dsep-project/dsep/node/deliver"
	"github.com/dsep-project/dsep/node/imap"
	"github.com/dsep-project/dsep/node/queue"
	"github.com/dsep-project/dsep/node/stamp"
	"github.com/dsep-project/dsep/node/store"
	"github.com/dsep-project/dsep/node/submit"
	"github.com/libp2p/go-libp2p/core/crypto"
	p2phost "github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
)

// Defaults of Config.
const (
	DefaultLifetime        = 5 * 24 * time.Hour
	DefaultRetryMin        = 30 * time.Second
	DefaultRetryMax        = time.Hour
	DefaultMonitorInterval = time.Hour
	DefaultReachTTL        = 48 * time.Hour
	DefaultDelegationLife  = 30 * 24 * time.Hour
	// DefaultDeliverTimeout bounds one delivery attempt to one delegate.
	DefaultDeliverTimeout = 2 * time.Minute
)

// receiptRateFactor scales the per-peer envelope limits into the receipt
// limits.
const receiptRateFactor = 20

// Record is a DHT record the node keeps published (verbatim bytes).
type Record struct {
	Key   string
	Value []byte
}

// Config describes a node. Identity, NodeKey, Dir, DNS and (unless
// InsecurePlaintextStore) StoreKey are required; every other zero value
// has a working default.
type Config struct {
	// Identity is the user's key with its secret material (to decrypt,
	// sign and sign the reach record).
	Identity *address.Key
	// Emails are the identity's own addresses, watched by self-monitoring
	// and checked as From of what the user sends. Default: the addresses
	// of the key's User IDs.
	Emails []address.Email

	// NodeKey is the libp2p identity of this device.
	NodeKey crypto.PrivKey
	// Dir holds the node's state: store/ (mailbox, queue, spent stamps)
	// and dht/ (the DHT records it serves).
	Dir string
	// StoreKey encrypts the store at rest (32 bytes).
	StoreKey []byte
	// InsecurePlaintextStore keeps the store unencrypted (tests only).
	InsecurePlaintextStore bool

	// Listen and Announce are the host's addresses (see dht/host.Config).
	Listen, Announce []string
	// Limits selects the host's resource limits. Default: Production.
	Limits host.Limits
	// Bootstrap are the DHT peers to join through.
	Bootstrap []peer.AddrInfo
	// DNS looks up the _dsep TXT records.
	DNS dht.TXTLookup

	// Devices are other devices of the same identity, listed in the reach
	// record with this one (each gets every message).
	Devices []record.DelegateAddrs
	// Records are further records to keep published verbatim (a domain
	// node's email records).
	Records []Record
	// NoPublish leaves the identity's own key and reach records
	// unpublished (someone else publishes them).
	NoPublish bool

	// StampBits is the base stamp price announced in the reach record.
	// Default: record.DefaultStampBits.
	StampBits int
	// MaxPayload is the largest payload accepted. Default 25 MiB.
	MaxPayload uint64
	// Lifetime is how long a message is retried before it bounces.
	Lifetime time.Duration
	// RetryMin and RetryMax bound the backoff between attempts.
	RetryMin, RetryMax time.Duration
	// PeerRate and PeerBurst limit envelopes per second from one peer.
	PeerRate  float64
	PeerBurst int
	// NoReceipts stops sending receipts for received messages.
	NoReceipts bool
	// RepublishInterval and MonitorInterval pace the background work.
	RepublishInterval, MonitorInterval time.Duration
	// Workers is the number of received messages processed in parallel.
	// Each waits for two syncs per message (filing, the receipt), so
	// there are more of them than cores. Default: 16.
	Workers int
	// MintWorkers is the goroutines a stamp is minted with. Default: all
	// cores.
	MintWorkers int

	// SMTPListen and IMAPListen are the loopback "IP:port" addresses of
	// the servers for mail clients; "" leaves a server off.
	SMTPListen, IMAPListen string
	// Authenticate checks a mail client's username and password (the
	// local account, node/account), slowing failures down. Without it no
	// client can log in.
	Authenticate func(ctx context.Context, username, password string) error

	// Logger receives the node's log. Default: silent.
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Version is reported by Status.
	Version string
	// Book is the user's address book, owned by the caller (who closes it
	// after Close). When set, a sender whose binding DNS and the DHT do not
	// show is verified if the user pinned its key for the From address
	// (`dsep verify --key`, `dsep contacts approve|verify`), and the
	// control API serves the contacts calls from it. Default nil: no book.
	Book *book.Book

	// BeforeSync and AfterSync, when set, are called around every group
	// sync of the store (AfterSync with the number of writes the sync
	// covered): for metrics, and for tests that must see no envelope
	// acknowledged before its sync returned.
	BeforeSync func()
	AfterSync  func(writes int)
	// OnFiled, when set, is called after a received message was filed in
	// the mailbox (metrics, benchmarks). It must not block.
	OnFiled func(m store.Meta)
}

// Stats are the node's counters since start.
type Stats struct {
	Received   atomic.Uint64 // envelopes stored
	Duplicates atomic.Uint64 // envelopes acknowledged again
	Refused    atomic.Uint64 // envelopes refused before storing
	Decrypted  atomic.Uint64 // payloads decryption was attempted on
	Rejected   atomic.Uint64 // decrypted messages rejected
	Delivered  atomic.Uint64 // messages put in the mailbox
	Sent       atomic.Uint64 // envelopes acknowledged by a delegate
	Receipts   atomic.Uint64 // receipts accepted
}

// Node is a running DSEP node.
type Node struct {
	cfg    Config
	log    *slog.Logger
	now    func() time.Time
	id     *address.Key
	fpr    address.Fingerprint
	emails []address.Email

	host     p2phost.Host
	dht      *dht.Node
	resolver *dht.Resolver
	store    *store.Store
	queue    *scheduled
	spent    *stamp.Spent
	waivers  *waiverBook
	deliver  *deliver.Server
	receipts *deliver.ReceiptServer
	repub    *dht.Republisher
	smtp     *submit.Server
	imap     *imap.Server
	smtpAddr net.Addr
	imapAddr net.Addr
	backoff  queue.Backoff
	cache    *cache

	stats   Stats
	started time.Time

	incoming chan inbound  // stored envelopes to process
	wake     chan struct{} // the delivery loop has work

	mu         sync.Mutex // guards alerts, inflight, processing, overflow, lastRep*
	alerts     []dht.Alert
	inflight   map[[32]byte]int  // queue items being worked on (holders)
	processing map[[32]byte]bool // received envelopes being processed
	overflow   bool              // some stored envelopes await a rescan
	lastRep    dht.RepublishReport
	lastRepT   time.Time

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New starts a node: it opens the store, starts the host and the DHT,
// serves the delivery protocols, publishes the identity's records and
// starts the background loops. Close stops it.
func New(ctx context.Context, cfg Config) (_ *Node, err error) {
	if cfg.Identity == nil || !cfg.Identity.HasSecret() {
		return nil, errors.New("node: the identity with its secret key is required")
	}
	if cfg.NodeKey == nil {
		return nil, errors.New("node: a node key is required")
	}
	if cfg.Dir == "" {
		return nil, errors.New("node: a state directory is required")
	}
	if cfg.DNS == nil {
		return nil, errors.New("node: a DNS resolver is required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Lifetime <= 0 {
		cfg.Lifetime = DefaultLifetime
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = DefaultRetryMin
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = DefaultRetryMax
	}
	if cfg.MonitorInterval <= 0 {
		cfg.MonitorInterval = DefaultMonitorInterval
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 16
	}
	if cfg.StampBits == 0 {
		cfg.StampBits = record.DefaultStampBits
	}
	now := cfg.Now()
	n := &Node{
		cfg:        cfg,
		log:        cfg.Logger,
		now:        cfg.Now,
		id:         cfg.Identity,
		fpr:        cfg.Identity.Fingerprint(),
		emails:     cfg.Emails,
		backoff:    queue.Backoff{Min: cfg.RetryMin, Max: cfg.RetryMax},
		started:    now,
		incoming:   make(chan inbound, 1024),
		wake:       make(chan struct{}, 1),
		cache:      newCache(cfg.Now),
		inflight:   map[[32]byte]int{},
		processing: map[[32]byte]bool{},
	}
	if len(n.emails) == 0 {
		n.emails = cfg.Identity.Emails(now)
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			n.Close()
		}
	}()

	n.store, err = store.Open(store.Options{
		Dir:               filepath.Join(cfg.Dir, "store"),
		Key:               cfg.StoreKey,
		InsecurePlaintext: cfg.InsecurePlaintextStore,
		Logger:            cfg.Logger,
		BeforeSync:        cfg.BeforeSync,
		AfterSync:         cfg.AfterSync,
	})
	if err != nil {
		return nil, err
	}
	if n.queue, err = newScheduled(queue.New(n.store)); err != nil {
		return nil, fmt.Errorf("node: loading the queue: %w", err)
	}
	n.spent = stamp.NewSpent(n.store.DB(), []byte("s/"), 0)
	if _, err := n.store.CreateFolder(ctx, "Junk"); err != nil && !errors.Is(err, store.ErrFolderExists) {
		return nil, fmt.Errorf("node: the Junk folder: %w", err)
	}
	n.waivers = &waiverBook{db: n.store}

	n.host, err = host.New(ctx, host.Config{
		Key:      cfg.NodeKey,
		Listen:   cfg.Listen,
		Announce: cfg.Announce,
		Limits:   cfg.Limits,
		Version:  cfg.Version,
	})
	if err != nil {
		return nil, fmt.Errorf("node: starting the host: %w", err)
	}
	n.dht, err = dht.New(ctx, n.host, dht.Config{
		Validator: record.NamespacedValidator(record.Validator{}),
		Datastore: filepath.Join(cfg.Dir, "dht"),
		Bootstrap: cfg.Bootstrap,
		Logger:    cfg.Logger.With("part", "dht"),
	})
	if err != nil {
		return nil, fmt.Errorf("node: starting the DHT: %w", err)
	}
	n.resolver, err = dht.NewResolver(dht.ResolverConfig{DNS: cfg.DNS, DHT: n.dht, Now: cfg.Now})
	if err != nil {
		return nil, err
	}
	n.deliver, err = deliver.NewServer(n.host, deliver.ServerConfig{
		Policy:     (*policy)(n),
		MaxPayload: cfg.MaxPayload,
		PeerRate:   cfg.PeerRate,
		PeerBurst:  cfg.PeerBurst,
		Logger:     cfg.Logger.With("part", "deliver"),
	})
	if err != nil {
		return nil, err
	}
	// Receipts answer mail this node sent: a peer that takes N messages a
	// second sends back N receipts. They cost a lookup in the queue (an
	// unknown one is refused before any signature check), so their limit
	// is a multiple of the envelopes'.
	rate, burst := cfg.PeerRate, cfg.PeerBurst
	if rate == 0 {
		rate = deliver.DefaultPeerRate
	}
	if burst == 0 {
		burst = deliver.DefaultPeerBurst
	}
	n.receipts, err = deliver.NewReceiptServer(n.host, n.acceptReceipt, deliver.ReceiptConfig{
		PeerRate:  rate * receiptRateFactor,
		PeerBurst: burst * receiptRateFactor,
		Logger:    cfg.Logger.With("part", "receipt"),
	})
	if err != nil {
		return nil, err
	}

	n.repub = dht.NewRepublisher(n.dht, dht.RepublishConfig{Interval: cfg.RepublishInterval, Now: cfg.Now, Logger: cfg.Logger.With("part", "republish")})
	if !cfg.NoPublish {
		recs, err := n.ownRecords(now)
		if err != nil {
			return nil, err
		}
		for _, r := range recs {
			if err := n.repub.Add(r.Key, r.Value); err != nil {
				return nil, fmt.Errorf("node: own record %s: %w", r.Key, err)
			}
		}
	}
	for _, r := range cfg.Records {
		if err := n.repub.Add(r.Key, r.Value); err != nil {
			return nil, fmt.Errorf("node: record %s: %w", r.Key, err)
		}
	}

	if err := n.startClients(); err != nil {
		return nil, err
	}
	for i := 0; i < cfg.Workers; i++ {
		n.goLoop(n.processLoop)
	}
	n.goLoop(n.recoverSpool)
	n.goLoop(n.deliveryLoop)
	n.goLoop(n.republishLoop)
	n.goLoop(n.monitorLoop)
	n.log.Info("node started", "fingerprint", n.fpr.String(), "peer", n.host.ID().String(), "addrs", n.host.Addrs())
	return n, nil
}

func (n *Node) goLoop(f func(ctx context.Context)) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		f(n.ctx)
	}()
}

// Close stops the node: no new envelopes are accepted, the loops finish
// what they are doing, and the store is closed last. Everything
// acknowledged is on disk; queued work resumes at the next start.
func (n *Node) Close() error {
	n.cancel()
	var errs []error
	if n.smtp != nil {
		errs = append(errs, n.smtp.Close())
	}
	if n.imap != nil {
		errs = append(errs, n.imap.Close())
	}
	if n.deliver != nil {
		errs = append(errs, n.deliver.Close())
	}
	if n.receipts != nil {
		errs = append(errs, n.receipts.Close())
	}
	n.wg.Wait()
	if n.dht != nil {
		errs = append(errs, n.dht.Close())
	}
	if n.host != nil {
		errs = append(errs, n.host.Close())
	}
	if n.store != nil {
		errs = append(errs, n.store.Close())
	}
	return errors.Join(errs...)
}

// Host is the node's libp2p host.
func (n *Node) Host() p2phost.Host { return n.host }

// DHT is the node's DHT node.
func (n *Node) DHT() *dht.Node { return n.dht }

// Resolver is the node's resolver.
func (n *Node) Resolver() *dht.Resolver { return n.resolver }

// Store is the node's store.
func (n *Node) Store() *store.Store { return n.store }

// Queue is the node's outbound queue.
func (n *Node) Queue() *queue.Queue { return n.queue.Queue }

// Stats are the node's counters.
func (n *Node) Stats() *Stats { return &n.stats }

// Fingerprint is the identity's fingerprint.
func (n *Node) Fingerprint() address.Fingerprint { return n.fpr }

// AddrInfo is how peers reach this node.
func (n *Node) AddrInfo() peer.AddrInfo {
	return peer.AddrInfo{ID: n.host.ID(), Addrs: n.host.Addrs()}
}

// ownRecords builds the identity's key record, revocation record (if
// revoked) and reach record naming this device and cfg.Devices.
func (n *Node) ownRecords(now time.Time) ([]Record, error) {
	// Milliseconds: two devices of one identity starting in the same
	// second still order their records.
	seq := uint64(now.UnixMilli())
	var out []Record
	k, v, err := record.NewKey(n.id, seq, now, DefaultReachTTL)
	if err != nil {
		return nil, fmt.Errorf("node: key record: %w", err)
	}
	out = append(out, Record{k, v})
	if rev := n.id.Revocation(); rev != nil {
		k, v, err := record.NewRev(n.id, rev, seq, now, DefaultReachTTL)
		if err != nil {
			return nil, fmt.Errorf("node: revocation record: %w", err)
		}
		out = append(out, Record{k, v})
	}
	notAfter := now.Add(DefaultDelegationLife).Truncate(time.Second)
	reach := record.Reach{
		Addrs:     map[peer.ID][]multiaddr.Multiaddr{},
		StampBits: n.cfg.StampBits,
	}
	self := n.host.ID()
	reach.Delegations = append(reach.Delegations, address.Delegation{Peer: self, Role: address.RoleDevice, NotAfter: notAfter})
	reach.Addrs[self] = publicAddrs(n.host.Addrs())
	for _, d := range n.cfg.Devices {
		if d.Peer == self {
			continue
		}
		reach.Delegations = append(reach.Delegations, address.Delegation{Peer: d.Peer, Role: address.RoleDevice, NotAfter: notAfter})
		reach.Addrs[d.Peer] = d.Addrs
	}
	k, v, err = record.NewReach(n.id, reach, seq, now, DefaultReachTTL)
	if err != nil {
		return nil, fmt.Errorf("node: reach record: %w", err)
	}
	return append(out, Record{k, v}), nil
}

// publicAddrs caps the announced addresses at what a reach record holds.
func publicAddrs(as []multiaddr.Multiaddr) []multiaddr.Multiaddr {
	if len(as) > record.MaxAddrsPerDelegate {
		as = as[:record.MaxAddrsPerDelegate]
	}
	return as
}

// Publish republishes every kept record now.
func (n *Node) Publish(ctx context.Context) dht.RepublishReport {
	rep := n.repub.RepublishNow(ctx)
	n.mu.Lock()
	n.lastRep, n.lastRepT = rep, n.now()
	n.mu.Unlock()
	return rep
}

func (n *Node) republishLoop(ctx context.Context) {
	// A first round as soon as the DHT has peers, then the republisher's
	// own pace.
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for n.dht.RoutingTableSize() == 0 {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
	n.Publish(ctx)
	iv := n.cfg.RepublishInterval
	if iv <= 0 {
		iv = dht.DefaultRepublishInterval
	}
	tick := time.NewTicker(iv)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			n.Publish(ctx)
		}
	}
}

func (n *Node) monitorLoop(ctx context.Context) {
	m := &dht.Monitor{Resolver: n.resolver, DNS: n.cfg.DNS, Own: n.fpr, Emails: n.emails, Now: n.now}
	// Give the first republish a head start.
	select {
	case <-ctx.Done():
		return
	case <-time.After(min(time.Minute, n.cfg.MonitorInterval)):
	}
	t := time.NewTicker(n.cfg.MonitorInterval)
	defer t.Stop()
	for {
		alerts := m.Check(ctx)
		for _, a := range alerts {
			n.log.Warn("self-monitoring alert", "kind", string(a.Kind), "email", a.Email.String(), "message", a.Message)
		}
		n.mu.Lock()
		n.alerts = alerts
		n.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Alerts returns the findings of the latest self-monitoring round.
func (n *Node) Alerts() []dht.Alert {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]dht.Alert(nil), n.alerts...)
}
