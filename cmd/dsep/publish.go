package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/dsep-project/dsep/address"
	"github.com/dsep-project/dsep/dht"
	"github.com/dsep-project/dsep/dht/host"
	"github.com/dsep-project/dsep/dht/record"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
	"github.com/spf13/cobra"
)

// nodeKeyFile holds the data directory's libp2p node key.
const nodeKeyFile = "node.key"

// builtRecord is one record ready to put.
type builtRecord struct {
	What  string `json:"what"`
	Key   string `json:"key"`
	value []byte
}

type publishedJSON struct {
	builtRecord
	Stored int    `json:"stored"`
	Error  string `json:"error,omitempty"`
}

func (a *app) publishCommand() *cobra.Command {
	var nf netFlags
	var announce []string
	var ttl time.Duration
	c := &cobra.Command{
		Use:   "publish",
		Short: "Publish (or republish now) this directory's records in the DSEP network",
		Long: `Join the DSEP network for the duration of the command and publish:

  for a user:   the key record, the revocation record if the key is revoked,
                and the reach record delegating this directory's node key
                (node.key) as a device, with the --announce addresses;
  for a domain: the domain key's record, and the email record of every
                address it certified (certified/) whose certification is
                still valid.

Each record gets a new sequence number (the current Unix time), so it
replaces what the network held. Records expire after --ttl; until the
daemon republishes for you, run this again before then. The output says
how many peers confirmed holding each record; exit status 1 if any record
was confirmed by none.`,
		Example: `  dsep --data ./example.org publish --bootstrap /ip4/127.0.0.1/tcp/4101/p2p/12D3KooW…
  dsep --data ./alice publish --announce /ip4/192.0.2.7/tcp/4101 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if ttl < time.Hour || ttl > record.MaxLifetime {
				return fail("use a --ttl between 1h and 720h", "bad --ttl %v", ttl)
			}
			var addrs []multiaddr.Multiaddr
			for _, s := range announce {
				m, err := multiaddr.NewMultiaddr(s)
				if err != nil {
					return fail("give a multiaddr like /ip4/192.0.2.7/tcp/4101", "bad --announce %q: %v", s, err)
				}
				addrs = append(addrs, m)
			}
			d, err := a.openDataDir()
			if err != nil {
				return err
			}
			k, _, err := a.unlock(d)
			if err != nil {
				return err
			}
			nodeKey, err := host.LoadOrCreateKey(d.file(nodeKeyFile))
			if err != nil {
				return fail("the node key file must be private to you (mode 0600)", "node key: %v", err)
			}
			self, err := peer.IDFromPrivateKey(nodeKey)
			if err != nil {
				return err
			}
			now := time.Now()
			recs, err := d.buildRecords(k, self, addrs, uint64(now.Unix()), now, ttl)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), nf.timeout)
			defer cancel()
			j, err := nf.join(ctx, nodeKey, false)
			if err != nil {
				return err
			}
			defer j.stop()
			return a.putAll(ctx, j.node, recs)
		},
	}
	nf.register(c)
	c.Flags().StringSliceVar(&announce, "announce", nil, "multiaddr at which this node can be reached, for the reach record (repeatable)")
	c.Flags().DurationVar(&ttl, "ttl", record.DefaultTTL, "lifetime of the records")
	return c
}

// buildRecords makes the records the data directory publishes.
func (d *dataDir) buildRecords(k *address.Key, self peer.ID, addrs []multiaddr.Multiaddr, seq uint64, now time.Time, ttl time.Duration) ([]builtRecord, error) {
	var out []builtRecord
	add := func(what, key string, value []byte, err error) error {
		if err != nil {
			return fmt.Errorf("building the %s record: %w", what, err)
		}
		out = append(out, builtRecord{What: what, Key: key, value: value})
		return nil
	}
	key, val, err := record.NewKey(k, seq, now, ttl)
	if err := add("key", key, val, err); err != nil {
		return nil, err
	}
	if rev := k.Revocation(); rev != nil {
		key, val, err := record.NewRev(k, rev, seq, now, ttl)
		if err := add("revocation", key, val, err); err != nil {
			return nil, err
		}
	}
	if d.meta.Kind == kindUser && k.Revocation() == nil {
		reach := record.Reach{Delegations: []address.Delegation{{Peer: self, Role: address.RoleDevice, NotAfter: now.Add(ttl)}}}
		if len(addrs) > 0 {
			reach.Addrs = map[peer.ID][]multiaddr.Multiaddr{self: addrs}
		}
		key, val, err := record.NewReach(k, reach, seq, now, ttl)
		if err := add("reach", key, val, err); err != nil {
			return nil, err
		}
	}
	if d.meta.Kind == kindDomain {
		users, err := d.certifiedKeys()
		if err != nil {
			return nil, err
		}
		for _, u := range users {
			for _, e := range u.Emails(now) {
				if e.Domain() != d.meta.Domain {
					continue
				}
				uid, _ := u.UserIDFor(e, now)
				if _, err := address.FindCertification(u, uid, k, now); err != nil {
					continue // expired or revoked: no longer published
				}
				key, val, err := record.NewEmail(k, u, e, seq, now, ttl)
				if err := add("email "+e.String(), key, val, err); err != nil {
					return nil, err
				}
			}
		}
	}
	return out, nil
}

// certifiedKeys reads certified/*.asc.
func (d *dataDir) certifiedKeys() ([]*address.Key, error) {
	ents, err := os.ReadDir(d.file(certifiedDir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []*address.Key
	for _, e := range ents {
		if filepath.Ext(e.Name()) != ".asc" {
			continue
		}
		b, err := readSmallFile(d.file(certifiedDir, e.Name()), address.MaxKeyBytes)
		if err != nil {
			return nil, err
		}
		k, err := address.ReadKey(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", e.Name(), err)
		}
		out = append(out, k)
	}
	return out, nil
}

// putAll puts every record and reports how many peers hold each.
func (a *app) putAll(ctx context.Context, n *dht.Node, recs []builtRecord) error {
	var out []publishedJSON
	failed := 0
	for _, r := range recs {
		stored, err := n.Put(ctx, r.Key, r.value)
		p := publishedJSON{builtRecord: r, Stored: stored}
		if err != nil {
			p.Error = err.Error()
			failed++
		}
		out = append(out, p)
		if !a.jsonOut {
			status := fmt.Sprintf("held by %d peer(s)", stored)
			if err != nil {
				status = "NOT STORED: " + err.Error()
			}
			fmt.Fprintf(a.stdout, "%-28s %s  %s\n", r.What, r.Key, status)
		}
	}
	if a.jsonOut {
		if err := a.printJSON(out); err != nil {
			return err
		}
	}
	if failed > 0 {
		return &exitError{code: 1, msg: fmt.Sprintf("%d of %d records were not stored by any peer", failed, len(recs)), hint: "check that the network has other nodes, then run `dsep publish` again"}
	}
	return nil
}
