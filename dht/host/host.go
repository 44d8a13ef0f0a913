// Package host builds the libp2p host a DSEP node runs on: the one host shared
// by the DHT (package dht) and, later, the delivery protocol.
//
// The host speaks TLS 1.3 only (the libp2p TLS handshake, /tls/1.0.0, on TCP;
// QUIC's built-in TLS 1.3 on QUIC): both sides prove the private key behind
// their peer ID, and a dial to a peer ID whose key the remote cannot prove
// fails with "peer id mismatch". Noise, plaintext, relays, NAT port mapping and
// hole punching are all off; they are options for later issues, not defaults.
//
// The node key is an Ed25519 libp2p key kept in the node's data directory
// (LoadOrCreateKey); its peer ID embeds the public key, so a peer ID is
// enough to authenticate a connection.
package host

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"runtime/debug"
	"strings"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/crypto"
	p2phost "github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	cmgr "github.com/libp2p/go-libp2p/p2p/net/connmgr"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	libp2pquic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"github.com/libp2p/go-libp2p/x/rate"
	ma "github.com/multiformats/go-multiaddr"
	"go.uber.org/fx"
)

// DefaultListen are the addresses a host listens on when Config.Listen is
// empty: TCP and QUIC on port 4101 on every IPv4 interface.
var DefaultListen = []string{"/ip4/0.0.0.0/tcp/4101", "/ip4/0.0.0.0/udp/4101/quic-v1"}

// Default connection manager watermarks (go-libp2p's own defaults). Above
// DefaultConnHigh connections the host trims back to DefaultConnLow, sparing
// connections younger than a minute and those the DHT tags as routing table
// peers.
const (
	DefaultConnLow  = 160
	DefaultConnHigh = 192
)

// ErrNoKey is returned by New when Config.Key is nil.
var ErrNoKey = errors.New("host: no node key (load or create one with LoadOrCreateKey)")

// Limits selects the resource limits of a host.
type Limits int

const (
	// Production limits are go-libp2p's default limits scaled to the
	// machine's memory and file descriptors, enforced by a real resource
	// manager: at most 8 connections and 0.2 new connections per second from
	// any one non-loopback IPv4 address (/56 for IPv6), bounded streams per
	// peer and protocol. Loopback is exempt from the per-address limits.
	Production Limits = iota

	// Testnet limits are unlimited (rcmgr.InfiniteLimits) with no
	// per-address connection count or rate limit, so ~100 in-process nodes
	// can all dial one bootstrap node at once. Never use them on a network
	// someone else can reach.
	Testnet
)

// String returns the name of the limits.
func (l Limits) String() string {
	switch l {
	case Production:
		return "production"
	case Testnet:
		return "testnet"
	default:
		return fmt.Sprintf("Limits(%d)", int(l))
	}
}

// Config describes a host. The zero value is not usable: Key is required.
type Config struct {
	// Key is the node's Ed25519 private key; its peer ID is the host's
	// identity. Required: a nil Key makes New fail with ErrNoKey (load or
	// create the key with LoadOrCreateKey).
	Key crypto.PrivKey

	// Listen are the multiaddrs to listen on. Default: DefaultListen.
	// The QUIC transport is enabled only when one of them is a quic-v1
	// address; TCP is always enabled, so the host can dial TCP addresses.
	Listen []string

	// Announce, when set, are the addresses the host announces to peers
	// (identify, DHT records) instead of its listen addresses: for a node
	// behind a port forward or with a public DNS name. Default: the listen
	// addresses (with 0.0.0.0 expanded to the interface addresses).
	Announce []string

	// Limits selects the resource limits. Default: Production.
	Limits Limits

	// ConnLow and ConnHigh are the connection manager's watermarks: above
	// ConnHigh connections the host closes the least useful ones until
	// ConnLow remain. Defaults: DefaultConnLow, DefaultConnHigh.
	ConnLow, ConnHigh int

	// Gater, when set, may refuse dials and inbound connections per peer or
	// address (a blocklist; testnet partitions). Default: none.
	Gater connmgr.ConnectionGater

	// Version is the software version announced in the identify user agent
	// "dsep/<Version>". Default: the main module's version from the build
	// information, or "dev".
	Version string
}

// New starts a libp2p host listening on cfg.Listen. The host speaks TLS 1.3
// only, over TCP (and QUIC when a listen address asks for it), multiplexes
// streams with yamux, and runs no relay, NAT port mapping, hole punching or
// metrics. The caller owns the host and must Close it.
func New(ctx context.Context, cfg Config) (p2phost.Host, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if cfg.Key == nil {
		return nil, ErrNoKey
	}
	if cfg.Key.Type() != crypto.Ed25519 {
		return nil, fmt.Errorf("host: node key is %v, want Ed25519", cfg.Key.Type())
	}
	listen := cfg.Listen
	if len(listen) == 0 {
		listen = DefaultListen
	}
	quic := false
	var listenAddrs []ma.Multiaddr
	for _, s := range listen {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("host: listen address %q: %w", s, err)
		}
		if _, err := a.ValueForProtocol(ma.P_QUIC_V1); err == nil {
			quic = true
		}
		listenAddrs = append(listenAddrs, a)
	}
	var announce []ma.Multiaddr
	for _, s := range cfg.Announce {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("host: announce address %q: %w", s, err)
		}
		announce = append(announce, a)
	}
	low, high := cfg.ConnLow, cfg.ConnHigh
	if low <= 0 {
		low = DefaultConnLow
	}
	if high <= 0 {
		high = DefaultConnHigh
	}
	if high < low {
		return nil, fmt.Errorf("host: ConnHigh %d is below ConnLow %d", high, low)
	}
	version := cfg.Version
	if version == "" {
		version = buildVersion()
	}

	rm, err := newResourceManager(cfg.Limits)
	if err != nil {
		return nil, err
	}
	cm, err := cmgr.NewConnManager(low, high)
	if err != nil {
		rm.Close()
		return nil, fmt.Errorf("host: connection manager: %w", err)
	}

	opts := []libp2p.Option{
		libp2p.Identity(cfg.Key),
		libp2p.Security(libp2ptls.ID, libp2ptls.New),
		// Without SO_REUSEPORT a second daemon on the same port fails
		// instead of silently sharing the port's connections.
		libp2p.Transport(tcp.NewTCPTransport, tcp.DisableReuseport()),
		// Listen after construction: libp2p.New leaks the swarm's
		// goroutines when a listen address fails, and accepts a host that
		// could bind only some of its addresses.
		libp2p.NoListenAddrs,
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(cm),
		libp2p.UserAgent("dsep/" + version),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
		// Failures are returned to the caller; fx would also print them.
		libp2p.WithFxOption(fx.NopLogger),
	}
	if quic {
		opts = append(opts, libp2p.Transport(libp2pquic.NewTransport))
	}
	if announce != nil {
		opts = append(opts, libp2p.AddrsFactory(func([]ma.Multiaddr) []ma.Multiaddr { return announce }))
	}
	if cfg.Gater != nil {
		opts = append(opts, libp2p.ConnectionGater(cfg.Gater))
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		// libp2p closes what it was given only on some failure paths;
		// closing twice is harmless for both managers.
		rm.Close()
		cm.Close()
		return nil, fmt.Errorf("host: %w", err)
	}
	for _, a := range listenAddrs {
		if err := h.Network().Listen(a); err != nil {
			h.Close()
			return nil, fmt.Errorf("host: cannot listen on %s (is another node using the port?): %w", a, err)
		}
	}
	return h, nil
}

// newResourceManager returns the resource manager for the given limits.
func newResourceManager(l Limits) (network.ResourceManager, error) {
	var (
		rm  network.ResourceManager
		err error
	)
	switch l {
	case Production:
		limits := rcmgr.DefaultLimits
		libp2p.SetDefaultServiceLimits(&limits)
		rm, err = rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits.AutoScale()), rcmgr.WithMetricsDisabled())
	case Testnet:
		rm, err = rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(rcmgr.InfiniteLimits),
			rcmgr.WithMetricsDisabled(),
			// Unlimited connections from any address: every testnet node
			// shares 127.0.0.1 and dials the bootstrap node at once.
			rcmgr.WithNetworkPrefixLimit(
				[]rcmgr.NetworkPrefixLimit{{Network: netip.MustParsePrefix("0.0.0.0/0"), ConnCount: math.MaxInt}},
				[]rcmgr.NetworkPrefixLimit{{Network: netip.MustParsePrefix("::/0"), ConnCount: math.MaxInt}}),
			// A zero rate.Limit means no limit.
			rcmgr.WithConnRateLimiters(&rate.Limiter{}))
	default:
		return nil, fmt.Errorf("host: unknown limits %v", l)
	}
	if err != nil {
		return nil, fmt.Errorf("host: resource manager: %w", err)
	}
	return rm, nil
}

// buildVersion returns the main module's version, or "dev".
func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			return strings.TrimPrefix(v, "v")
		}
	}
	return "dev"
}
