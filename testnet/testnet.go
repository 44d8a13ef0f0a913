// Package testnet runs an in-process DSEP network on loopback: N real libp2p
// hosts (TLS 1.3 over TCP on 127.0.0.1, optionally QUIC too), each with a
// DSEP DHT node, joined through node 0. Tests, benchmarks and the
// `dsep testnet` command build on it; nodes can be stopped, restarted with
// the same identity and store, and partitioned from each other.
//
// The hosts use the host.Testnet resource limits (no per-address connection
// limits), which are unsafe on a reachable network.
package testnet

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	record "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/crypto"
	p2phost "github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/dsep-project/dsep/dht"
	"github.com/dsep-project/dsep/dht/host"
)

// DefaultNodes is the size of a network whose Config.Nodes is 0.
const DefaultNodes = 10

// formTimeout bounds New and Restart when their context has no deadline.
const formTimeout = 2 * time.Minute

// healTimeout bounds the reconnections Heal makes.
const healTimeout = 30 * time.Second

// Config describes a network. Validator is required.
type Config struct {
	// Nodes is the number of nodes. Default: DefaultNodes.
	Nodes int

	// Validator validates the records of every node (see dht.Config).
	// Required.
	Validator record.Validator

	// Dir, when set, holds each node's persistent state in Dir/node-<i>/:
	// its node key (node.key) and its DHT store (dht/). Default "": keys
	// and stores live in memory, and a restarted node comes back with an
	// empty store.
	Dir string

	// QUIC makes every node listen on QUIC as well as TCP (peers then
	// prefer QUIC). Default: TCP only.
	QUIC bool

	// Logger receives the nodes' diagnostics, tagged with "node". Default
	// nil: silent.
	Logger *slog.Logger
}

// Network is a running in-process network. Its methods are safe for
// concurrent use.
type Network struct {
	cfg Config

	// mu guards the host and node fields of every member, and blocked.
	mu      sync.Mutex
	members []*member
	// blocked are the pairs of nodes a Partition separates, as indexes.
	blocked [][2]int
}

// member is one node of the network, running or stopped.
type member struct {
	index int
	key   crypto.PrivKey
	id    peer.ID
	dir   string   // "" for an in-memory node
	gater *gater   // survives restarts: partitions hold across them
	addrs []string // listen addresses of the last run, reused on restart

	host p2phost.Host // nil while stopped
	node *dht.Node    // nil while stopped
}

// New starts a network and waits until every node's routing table holds at
// least min(Nodes-1, 4) peers, calling Bootstrap again for nodes that lag
// (a failed first dial would otherwise isolate a node for two minutes). It
// fails with the context's error if the network has not formed when ctx
// ends (after two minutes if ctx has no deadline); it stops whatever it
// started when it fails.
func New(ctx context.Context, cfg Config) (_ *Network, err error) {
	if cfg.Validator == nil {
		return nil, errors.New("testnet: Config.Validator is required")
	}
	if cfg.Nodes == 0 {
		cfg.Nodes = DefaultNodes
	}
	if cfg.Nodes < 0 {
		return nil, fmt.Errorf("testnet: %d nodes", cfg.Nodes)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, formTimeout)
		defer cancel()
	}
	n := &Network{cfg: cfg}
	defer func() {
		if err != nil {
			err = errors.Join(err, n.Close())
		}
	}()

	for i := range cfg.Nodes {
		m := &member{index: i, gater: newGater()}
		if cfg.Dir != "" {
			m.dir = filepath.Join(cfg.Dir, "node-"+strconv.Itoa(i))
			m.key, err = host.LoadOrCreateKey(filepath.Join(m.dir, "node.key"))
		} else {
			m.key, _, err = crypto.GenerateEd25519Key(rand.Reader)
		}
		if err != nil {
			return nil, fmt.Errorf("testnet: node %d: %w", i, err)
		}
		if m.id, err = peer.IDFromPrivateKey(m.key); err != nil {
			return nil, fmt.Errorf("testnet: node %d: %w", i, err)
		}
		n.members = append(n.members, m)
	}

	n.mu.Lock()
	defer n.mu.Unlock()
	for _, m := range n.members {
		var boot []peer.AddrInfo
		if m.index > 0 {
			boot = []peer.AddrInfo{n.addrInfoLocked(n.members[0])}
		}
		if err := n.startLocked(ctx, m, boot); err != nil {
			return nil, err
		}
	}
	if err := n.waitLocked(ctx, n.members, min(cfg.Nodes-1, 4)); err != nil {
		return nil, fmt.Errorf("testnet: forming the network: %w", err)
	}
	return n, nil
}

// listen returns the addresses a fresh node listens on.
func (n *Network) listen() []string {
	l := []string{"/ip4/127.0.0.1/tcp/0"}
	if n.cfg.QUIC {
		l = append(l, "/ip4/127.0.0.1/udp/0/quic-v1")
	}
	return l
}

// startLocked starts m's host and DHT node. A restarted node listens on its
// previous addresses when they are free, else on new ports.
func (n *Network) startLocked(ctx context.Context, m *member, boot []peer.AddrInfo) error {
	hcfg := host.Config{Key: m.key, Limits: host.Testnet, Gater: m.gater, Version: "testnet"}
	var (
		h   p2phost.Host
		err error
	)
	if len(m.addrs) > 0 {
		hcfg.Listen = m.addrs
		h, err = host.New(ctx, hcfg)
	}
	if h == nil {
		hcfg.Listen = n.listen()
		if h, err = host.New(ctx, hcfg); err != nil {
			return fmt.Errorf("testnet: node %d: %w", m.index, err)
		}
	}
	dcfg := dht.Config{Validator: n.cfg.Validator, Bootstrap: boot}
	if m.dir != "" {
		dcfg.Datastore = filepath.Join(m.dir, "dht")
	}
	if n.cfg.Logger != nil {
		dcfg.Logger = n.cfg.Logger.With("node", m.index)
	}
	d, err := dht.New(ctx, h, dcfg)
	if err != nil {
		h.Close()
		return fmt.Errorf("testnet: node %d: %w", m.index, err)
	}
	m.host, m.node = h, d
	m.addrs = m.addrs[:0]
	for _, a := range h.Network().ListenAddresses() {
		m.addrs = append(m.addrs, a.String())
	}
	return nil
}

// addrInfoLocked returns m's peer ID and current listen addresses.
func (n *Network) addrInfoLocked(m *member) peer.AddrInfo {
	ai := peer.AddrInfo{ID: m.id}
	for _, s := range m.addrs {
		if a, err := ma.NewMultiaddr(s); err == nil {
			ai.Addrs = append(ai.Addrs, a)
		}
	}
	return ai
}

// waitLocked polls until every running node of ms has want peers in its
// routing table, calling Bootstrap on laggards every second. It releases
// n.mu while it sleeps.
func (n *Network) waitLocked(ctx context.Context, ms []*member, want int) error {
	const poll = 50 * time.Millisecond
	for round := 1; ; round++ {
		var low []*member
		for _, m := range ms {
			if m.node != nil && m.node.RoutingTableSize() < want {
				low = append(low, m)
			}
		}
		if len(low) == 0 {
			return nil
		}
		if round%20 == 0 {
			for _, m := range low {
				if err := m.node.Bootstrap(ctx); err != nil {
					n.logger().Debug("testnet: bootstrap", "node", m.index, "err", err)
				}
			}
		}
		msg := fmt.Sprintf("%d nodes have fewer than %d routing table peers, node %d has %d",
			len(low), want, low[0].index, low[0].node.RoutingTableSize())
		n.mu.Unlock()
		select {
		case <-ctx.Done():
			n.mu.Lock()
			return fmt.Errorf("%s: %w", msg, ctx.Err())
		case <-time.After(poll):
		}
		n.mu.Lock()
	}
}

func (n *Network) logger() *slog.Logger {
	if n.cfg.Logger != nil {
		return n.cfg.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// Len returns the number of nodes, running or stopped.
func (n *Network) Len() int { return len(n.members) }

// Node returns node i, or nil while it is stopped.
func (n *Network) Node(i int) *dht.Node {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.members[i].node
}

// ID returns node i's peer ID, also while it is stopped.
func (n *Network) ID(i int) peer.ID { return n.members[i].id }

// Stop closes node i's DHT node and host. Its key, and its store when the
// network has a Dir, are kept for Restart.
func (n *Network) Stop(i int) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	m := n.members[i]
	if m.node == nil {
		return fmt.Errorf("testnet: node %d is not running", i)
	}
	return n.stopLocked(m)
}

func (n *Network) stopLocked(m *member) error {
	err := m.node.Close()
	if herr := m.host.Close(); herr != nil {
		err = errors.Join(err, fmt.Errorf("testnet: node %d: closing the host: %w", m.index, herr))
	}
	m.node, m.host = nil, nil
	return err
}

// Restart starts the stopped node i again with the same key (hence the same
// peer ID) and store, on its previous addresses when they are free, joined
// through node 0 (or, for node 0, through up to three running nodes). It
// waits until the node's routing table holds min(running-1, 4) peers.
func (n *Network) Restart(ctx context.Context, i int) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, formTimeout)
		defer cancel()
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	m := n.members[i]
	if m.node != nil {
		return fmt.Errorf("testnet: node %d is running", i)
	}
	// Join through node 0 first, then other running nodes m may reach.
	var boot []peer.AddrInfo
	reachable := 0
	for _, o := range n.members {
		if o.node == nil || o == m || m.gater.blocks(o.id) {
			continue
		}
		reachable++
		if len(boot) < 3 {
			boot = append(boot, n.addrInfoLocked(o))
		}
	}
	if err := n.startLocked(ctx, m, boot); err != nil {
		return err
	}
	if len(boot) == 0 {
		return nil
	}
	if err := n.waitLocked(ctx, []*member{m}, min(reachable, 4)); err != nil {
		return fmt.Errorf("testnet: node %d rejoining: %w", i, err)
	}
	return nil
}

// Partition separates the nodes of a from those of b: their connections are
// closed and neither side can dial or accept the other, also across
// restarts, until Heal. Nodes in neither group reach both sides.
func (n *Network) Partition(a, b []int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, x := range a {
		for _, y := range b {
			if x == y {
				continue
			}
			mx, my := n.members[x], n.members[y]
			mx.gater.block(my.id)
			my.gater.block(mx.id)
			n.blocked = append(n.blocked, [2]int{x, y})
		}
	}
	for _, x := range a {
		for _, y := range b {
			mx, my := n.members[x], n.members[y]
			if mx.host != nil {
				_ = mx.host.Network().ClosePeer(my.id)
			}
			if my.host != nil {
				_ = my.host.Network().ClosePeer(mx.id)
			}
		}
	}
}

// Heal undoes every Partition, reconnects every formerly separated pair of
// running nodes (at most 30 seconds in all) and asks each of those nodes to
// refresh its routing table.
func (n *Network) Heal() {
	type dial struct {
		h  p2phost.Host
		ai peer.AddrInfo
	}
	var (
		dials []dial
		nodes = make(map[*dht.Node]bool)
	)
	n.mu.Lock()
	for _, m := range n.members {
		m.gater.clear()
	}
	for _, p := range n.blocked {
		mx, my := n.members[p[0]], n.members[p[1]]
		if mx.host == nil || my.host == nil {
			continue
		}
		dials = append(dials, dial{mx.host, n.addrInfoLocked(my)})
		nodes[mx.node], nodes[my.node] = true, true
	}
	n.blocked = nil
	n.mu.Unlock()

	// A node stopped meanwhile fails its dials and Bootstrap: harmless.
	ctx, cancel := context.WithTimeout(context.Background(), healTimeout)
	defer cancel()
	ctx = network.WithForceDirectDial(ctx, "testnet heal")
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for _, d := range dials {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			_ = d.h.Connect(ctx, d.ai)
		})
	}
	wg.Wait()
	for d := range nodes {
		_ = d.Bootstrap(ctx)
	}
}

// Close stops every running node and returns errors.Join of what failed.
func (n *Network) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	var errs []error
	for _, m := range n.members {
		if m.node != nil {
			errs = append(errs, n.stopLocked(m))
		}
	}
	return errors.Join(errs...)
}

// gater refuses connections to and from blocked peers.
type gater struct {
	mu      sync.RWMutex
	blocked map[peer.ID]bool
}

func newGater() *gater { return &gater{blocked: make(map[peer.ID]bool)} }

func (g *gater) block(p peer.ID) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.blocked[p] = true
}

func (g *gater) clear() {
	g.mu.Lock()
	defer g.mu.Unlock()
	clear(g.blocked)
}

func (g *gater) blocks(p peer.ID) bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.blocked[p]
}

// InterceptPeerDial refuses dials to blocked peers.
func (g *gater) InterceptPeerDial(p peer.ID) bool { return !g.blocks(p) }

// InterceptAddrDial refuses dials to blocked peers.
func (g *gater) InterceptAddrDial(p peer.ID, _ ma.Multiaddr) bool { return !g.blocks(p) }

// InterceptAccept accepts every inbound connection until its peer is known.
func (g *gater) InterceptAccept(network.ConnMultiaddrs) bool { return true }

// InterceptSecured refuses authenticated connections from blocked peers.
func (g *gater) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return !g.blocks(p)
}

// InterceptUpgraded refuses connections to blocked peers.
func (g *gater) InterceptUpgraded(c network.Conn) (bool, control.DisconnectReason) {
	return !g.blocks(c.RemotePeer()), 0
}
