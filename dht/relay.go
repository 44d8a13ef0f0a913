package dht

import (
	"context"
	"fmt"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	mh "github.com/multiformats/go-multihash"
)

// RelayProviderContext is hashed into the well-known provider key under
// which onion relays announce themselves (docs/protocol.md §9.5).
const RelayProviderContext = "dsep-relays-v1"

// RelayKey is the provider key relays announce under: a CIDv1 (raw codec)
// of the SHA-256 multihash of RelayProviderContext.
var RelayKey = func() cid.Cid {
	h, err := mh.Sum([]byte(RelayProviderContext), mh.SHA2_256, -1)
	if err != nil {
		panic(err)
	}
	return cid.NewCidV1(cid.Raw, h)
}()

// AnnounceRelay announces this node as a relay under RelayKey. Provider
// records expire (kad-dht: 48 h), so a relay announces again periodically.
func (n *Node) AnnounceRelay(ctx context.Context) error {
	if err := n.Provide(ctx, RelayKey); err != nil {
		return fmt.Errorf("dht: announcing as a relay: %w", err)
	}
	return nil
}

// ListRelays returns up to max peers announced as relays (this node
// included, if it is one). Whether a listed peer really relays, and under
// which onion key, is for the onion layer to check.
func (n *Node) ListRelays(ctx context.Context, max int) ([]peer.AddrInfo, error) {
	return n.FindProviders(ctx, RelayKey, max)
}
