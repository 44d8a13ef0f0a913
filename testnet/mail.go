package testnet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/dsep-project/dsep/address"
	dsepdns "github.com/dsep-project/dsep/address/dns"
	"github.com/dsep-project/dsep/dht"
	"github.com/dsep-project/dsep/dht/host"
	"github.com/dsep-project/dsep/dht/record"
	"github.com/dsep-project/dsep/node"
	"github.com/dsep-project/dsep/testnet/dnstest"
)

// MailConfig describes a mail network: DNS on loopback, one domain with
// its key, a backbone of DHT nodes, and users whose nodes join it.
type MailConfig struct {
	// Dir holds every node's state (Dir/<user>-<device>/). Required.
	Dir string
	// Domain is the users' domain. Default "example.org".
	Domain string
	// Backbone is the number of plain DHT nodes. Default 4.
	Backbone int
	// Node, when set, adjusts every user node's configuration.
	Node func(*node.Config)
	// Logger receives the nodes' logs. Default nil: silent.
	Logger *slog.Logger
}

// MailNet is a running mail network.
type MailNet struct {
	cfg    MailConfig
	DNS    *dnstest.Server
	Domain *address.Key
	Net    *Network

	mu    sync.Mutex
	users []*User
}

// User is one identity with one or more device nodes.
type User struct {
	net   *MailNet
	Email address.Email
	// Key is the identity with its secret key.
	Key *address.Key
	// Devices are the user's nodes (nil while stopped).
	Devices []*node.Node

	keys []crypto.PrivKey
	dirs []string
	cfgs []node.Config
}

// UserOptions describe a user.
type UserOptions struct {
	// Devices is the number of device nodes. Default 1.
	Devices int
	// Node, when set, adjusts this user's node configurations.
	Node func(*node.Config)
	// NoEmailRecord leaves the domain's email record for the user
	// unpublished: the key is certified by the domain, but resolving the
	// address fails (no binding), as for a user the domain has not yet
	// listed.
	NoEmailRecord bool
}

// NewMailNet starts DNS, the domain and the backbone.
func NewMailNet(ctx context.Context, cfg MailConfig) (_ *MailNet, err error) {
	if cfg.Dir == "" {
		return nil, errors.New("testnet: MailConfig.Dir is required")
	}
	if cfg.Domain == "" {
		cfg.Domain = BenchDomain
	}
	if cfg.Backbone <= 0 {
		cfg.Backbone = 4
	}
	m := &MailNet{cfg: cfg}
	defer func() {
		if err != nil {
			m.Close()
		}
	}()
	if m.DNS, err = dnstest.Start("127.0.0.1:0"); err != nil {
		return nil, err
	}
	if m.Domain, err = address.NewDomainKey(cfg.Domain, address.NewIdentityOptions{Now: time.Now().Add(-time.Hour)}); err != nil {
		return nil, err
	}
	m.DNS.AddTXT(address.TXTName(cfg.Domain), address.DomainRecord{Key: m.Domain.Fingerprint()}.String())
	if m.Net, err = New(ctx, Config{Nodes: cfg.Backbone, Validator: record.NamespacedValidator(record.Validator{}), Logger: cfg.Logger}); err != nil {
		return nil, err
	}
	k, v, err := record.NewKey(m.Domain, 1, time.Now(), 0)
	if err != nil {
		return nil, err
	}
	if err := m.put(ctx, k, v); err != nil {
		return nil, err
	}
	return m, nil
}

// Put stores a record in the backbone.
func (m *MailNet) Put(ctx context.Context, k string, v []byte) error { return m.put(ctx, k, v) }

// put stores a record in the backbone.
func (m *MailNet) put(ctx context.Context, k string, v []byte) error {
	var err error
	for try := 0; try < 3; try++ {
		if _, err = m.Net.Node(try%m.Net.Len()).Put(ctx, k, v); err == nil {
			return nil
		}
	}
	return fmt.Errorf("testnet: put %s: %w", k, err)
}

// Bootstrap is the backbone's first nodes, for nodes joining it.
func (m *MailNet) Bootstrap() []peer.AddrInfo {
	var out []peer.AddrInfo
	for i := 0; i < m.Net.Len() && i < 3; i++ {
		h := m.Net.Node(i).Host()
		out = append(out, peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()})
	}
	return out
}

// DNSResolver is a resolver asking the network's DNS server.
func (m *MailNet) DNSResolver() (*dsepdns.Resolver, error) {
	return dsepdns.New(dsepdns.Config{Servers: []string{m.DNS.Addr()}})
}

// Resolver is a resolver reading through backbone node i with cold
// caches.
func (m *MailNet) Resolver(i int) (*dht.Resolver, error) {
	d, err := dsepdns.New(dsepdns.Config{Servers: []string{m.DNS.Addr()}, CacheSize: -1})
	if err != nil {
		return nil, err
	}
	return dht.NewResolver(dht.ResolverConfig{DNS: d, DHT: m.Net.Node(i), CacheSize: -1})
}

// AddUser makes local@domain: an identity certified by the domain, its
// email record published (unless opt.NoEmailRecord), and its device nodes started with their reach
// record naming every device. It returns once the address resolves.
func (m *MailNet) AddUser(ctx context.Context, local string, opt UserOptions) (*User, error) {
	if opt.Devices <= 0 {
		opt.Devices = 1
	}
	now := time.Now()
	e, err := address.ParseEmail(local + "@" + m.cfg.Domain)
	if err != nil {
		return nil, err
	}
	k, err := address.NewIdentity("", e, address.NewIdentityOptions{Now: now.Add(-time.Hour)})
	if err != nil {
		return nil, err
	}
	uid, _ := k.UserIDFor(e, now)
	if k, err = address.Certify(k, uid, m.Domain, now.Add(-time.Minute), 0); err != nil {
		return nil, err
	}
	if !opt.NoEmailRecord {
		ek, ev, err := record.NewEmail(m.Domain, k, e, 1, now, 0)
		if err != nil {
			return nil, err
		}
		if err := m.put(ctx, ek, ev); err != nil {
			return nil, err
		}
	}
	u := &User{net: m, Email: e, Key: k}
	for i := 0; i < opt.Devices; i++ {
		dir := filepath.Join(m.cfg.Dir, fmt.Sprintf("%s-%d", local, i))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		nk, err := host.LoadOrCreateKey(filepath.Join(dir, "node.key"))
		if err != nil {
			return nil, err
		}
		dns, err := m.DNSResolver()
		if err != nil {
			return nil, err
		}
		cfg := node.Config{
			Identity:               k,
			NodeKey:                nk,
			Dir:                    dir,
			InsecurePlaintextStore: true,
			Listen:                 []string{"/ip4/127.0.0.1/tcp/0"},
			Limits:                 host.Testnet,
			Bootstrap:              m.Bootstrap(),
			DNS:                    dns,
			NoPublish:              true,
			RetryMin:               200 * time.Millisecond,
			RetryMax:               2 * time.Second,
			MonitorInterval:        time.Hour,
		}
		if m.cfg.Logger != nil {
			cfg.Logger = m.cfg.Logger.With("user", local, "device", i)
		}
		if m.cfg.Node != nil {
			m.cfg.Node(&cfg)
		}
		if opt.Node != nil {
			opt.Node(&cfg)
		}
		u.keys = append(u.keys, nk)
		u.dirs = append(u.dirs, dir)
		u.cfgs = append(u.cfgs, cfg)
		u.Devices = append(u.Devices, nil)
		if err := u.Start(ctx, i); err != nil {
			u.Stop()
			return nil, err
		}
	}
	m.mu.Lock()
	m.users = append(m.users, u)
	m.mu.Unlock()
	if err := u.Publish(ctx); err != nil {
		u.Stop()
		return nil, err
	}
	return u, nil
}

// Start (re)starts device i from its state directory.
func (u *User) Start(ctx context.Context, i int) error {
	if u.Devices[i] != nil {
		return nil
	}
	n, err := node.New(ctx, u.cfgs[i])
	if err != nil {
		return err
	}
	u.Devices[i] = n
	// Remember the port: a restarted device comes back where its reach
	// record says it is.
	var listen []string
	for _, a := range n.Host().Addrs() {
		listen = append(listen, a.String())
	}
	u.cfgs[i].Listen = listen
	return waitRouting(ctx, n)
}

func waitRouting(ctx context.Context, n *node.Node) error {
	for n.DHT().RoutingTableSize() == 0 {
		_ = n.DHT().Bootstrap(ctx)
		select {
		case <-ctx.Done():
			return fmt.Errorf("testnet: node did not join the DHT: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

// Stop stops device i (every device without an argument).
func (u *User) Stop(which ...int) error {
	if len(which) == 0 {
		for i := range u.Devices {
			which = append(which, i)
		}
	}
	var errs []error
	for _, i := range which {
		if u.Devices[i] != nil {
			errs = append(errs, u.Devices[i].Close())
			u.Devices[i] = nil
		}
	}
	return errors.Join(errs...)
}

// SetKey replaces the user's identity (after a rotation) in the
// configuration of every device; stopped devices start with it.
func (u *User) SetKey(k *address.Key) {
	u.Key = k
	for i := range u.cfgs {
		u.cfgs[i].Identity = k
	}
}

// Dir is device i's state directory.
func (u *User) Dir(i int) string { return u.dirs[i] }

// Node is device 0.
func (u *User) Node() *node.Node { return u.Devices[0] }

// Publish puts the user's key record and a reach record naming every
// device at the address it listens on.
func (u *User) Publish(ctx context.Context) error {
	now := time.Now()
	seq := uint64(now.UnixMilli())
	reach := record.Reach{Addrs: map[peer.ID][]ma.Multiaddr{}, StampBits: u.cfgs[0].StampBits}
	for i, nk := range u.keys {
		id, err := peer.IDFromPrivateKey(nk)
		if err != nil {
			return err
		}
		reach.Delegations = append(reach.Delegations, address.Delegation{Peer: id, Role: address.RoleDevice, NotAfter: now.Add(24 * time.Hour).Truncate(time.Second)})
		for _, s := range u.cfgs[i].Listen {
			a, err := ma.NewMultiaddr(s)
			if err != nil {
				return err
			}
			reach.Addrs[id] = append(reach.Addrs[id], a)
		}
	}
	k, v, err := record.NewKey(u.Key, seq, now, 0)
	if err != nil {
		return err
	}
	if err := u.net.put(ctx, k, v); err != nil {
		return err
	}
	if rev := u.Key.Revocation(); rev != nil {
		k, v, err := record.NewRev(u.Key, rev, seq, now, 0)
		if err != nil {
			return err
		}
		if err := u.net.put(ctx, k, v); err != nil {
			return err
		}
	}
	k, v, err = record.NewReach(u.Key, reach, seq, now, 0)
	if err != nil {
		return err
	}
	return u.net.put(ctx, k, v)
}

// Close stops every user node, the backbone and DNS.
func (m *MailNet) Close() error {
	var errs []error
	m.mu.Lock()
	users := m.users
	m.users = nil
	m.mu.Unlock()
	for _, u := range users {
		errs = append(errs, u.Stop())
	}
	if m.Net != nil {
		errs = append(errs, m.Net.Close())
	}
	if m.DNS != nil {
		errs = append(errs, m.DNS.Close())
	}
	return errors.Join(errs...)
}
