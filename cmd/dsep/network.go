package main

import (
	"context"
	"os"
	"strings"
	"time"

	"github.com/dsep-project/dsep/dht"
	"github.com/dsep-project/dsep/dht/host"
	"github.com/dsep-project/dsep/dht/record"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/spf13/cobra"
)

// netFlags are the settings of commands that join the DSEP network for
// the duration of one command (until the daemon exists).
type netFlags struct {
	bootstrap []string
	listen    []string
	timeout   time.Duration
}

func (f *netFlags) register(c *cobra.Command) {
	c.Flags().StringSliceVar(&f.bootstrap, "bootstrap", nil, "multiaddr of a DSEP node to join through, with /p2p/<peer ID> (repeatable; default $DSEP_BOOTSTRAP, comma-separated)")
	c.Flags().StringSliceVar(&f.listen, "listen", []string{"/ip4/0.0.0.0/tcp/0"}, "multiaddrs to listen on while the command runs")
	c.Flags().DurationVar(&f.timeout, "timeout", 30*time.Second, "give up after this long")
}

func (f *netFlags) peers() ([]peer.AddrInfo, error) {
	list := f.bootstrap
	if len(list) == 0 {
		if env := os.Getenv("DSEP_BOOTSTRAP"); env != "" {
			list = strings.Split(env, ",")
		}
	}
	if len(list) == 0 {
		return nil, fail("pass --bootstrap /ip4/…/tcp/…/p2p/<peer ID> (a running node's address; `dsep demo` and `dsep testnet` print one), or set DSEP_BOOTSTRAP",
			"no DSEP node to join the network through")
	}
	var out []peer.AddrInfo
	for _, s := range list {
		ai, err := peer.AddrInfoFromString(strings.TrimSpace(s))
		if err != nil {
			return nil, fail("a bootstrap address ends in /p2p/<peer ID>, e.g. /ip4/127.0.0.1/tcp/4101/p2p/12D3KooW…", "bad --bootstrap %q: %v", s, err)
		}
		out = append(out, *ai)
	}
	return out, nil
}

// joined is a short-lived DSEP node.
type joined struct {
	node *dht.Node
	stop func()
}

// join starts a host with key (nil: a throw-away key) and a DHT node that
// joins through the bootstrap peers; client nodes serve nothing.
func (f *netFlags) join(ctx context.Context, key crypto.PrivKey, client bool) (*joined, error) {
	boot, err := f.peers()
	if err != nil {
		return nil, err
	}
	if key == nil {
		if key, _, err = crypto.GenerateEd25519Key(nil); err != nil {
			return nil, err
		}
	}
	h, err := host.New(ctx, host.Config{Key: key, Listen: f.listen})
	if err != nil {
		return nil, fail("choose other --listen addresses", "starting the libp2p host: %v", err)
	}
	n, err := dht.New(ctx, h, dht.Config{Validator: record.NamespacedValidator(record.Validator{}), Bootstrap: boot, Client: client})
	if err != nil {
		h.Close()
		return nil, err
	}
	j := &joined{node: n, stop: func() { n.Close(); h.Close() }}
	// Wait until the routing table has someone in it.
	for n.RoutingTableSize() == 0 {
		if err := n.Bootstrap(ctx); err != nil && ctx.Err() == nil {
			// Bootstrap reports failed dials; keep trying until ctx ends.
			_ = err
		}
		select {
		case <-ctx.Done():
			j.stop()
			return nil, fail("check that the bootstrap node is running and reachable", "could not join the DSEP network through %v: %v", f.bootstrap, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
	return j, nil
}

func shortPeer(p peer.ID) string {
	s := p.String()
	if len(s) > 16 {
		return s[:8] + "…" + s[len(s)-6:]
	}
	return s
}
