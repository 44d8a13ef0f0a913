package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/dsep-project/dsep/testnet"
	"github.com/spf13/cobra"
)

// Limits of `dsep testnet bench lookup`.
const (
	benchMaxNodes   = 500
	benchMaxLookups = 100000
)

func (a *app) testnetCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "testnet",
		Short: "Run an in-process DSEP network on loopback for trying out and benchmarking",
		Long: `Build a DSEP network inside this process: real libp2p hosts (TLS 1.3 over
TCP on 127.0.0.1), a DHT node on each, and an authoritative DNS server on
127.0.0.1 holding a test domain's TXT record. Nothing listens beyond
loopback, and everything stops when the command ends.`,
		Example: `  dsep testnet bench lookup
  dsep testnet bench lookup --nodes 100 --lookups 500 --json`,
	}
	c.AddCommand(a.testnetBenchCommand(), a.testnetUpCommand())
	return c
}

// testnetUpMax bounds dsep testnet up (each user runs a node process).
const testnetUpMax = 50

func (a *app) testnetUpCommand() *cobra.Command {
	var dir string
	var users int
	c := &cobra.Command{
		Use:   "up --nodes N --dir DIR",
		Short: "Run a local DSEP network with N users' nodes, ready for mail clients and scripts",
		Long: `Bring up what dsep demo does, without its step-by-step output, for N users:
a DNS server on 127.0.0.1 with the domain example.org, a six-node DSEP
network, and a running node per user (dsep run, as child processes, logging
to DIR/<user>/node.log), each with IMAP and SMTP on loopback and a
mail-client password. alice sends bob a welcome message.

Once everything is ready it writes DIR/testnet.json (mode 0600: it holds
the passwords):

  {"dns": "127.0.0.1:P", "bootstrap": "/ip4/…/p2p/…",
   "users": [{"email": …, "fingerprint": …, "data": DIR/alice,
              "imap": "127.0.0.1:P", "smtp": "127.0.0.1:P",
              "username": …, "password": …}, …]}

and keeps running until Ctrl-C. Every dsep command works against a user's
node with --data set to its "data" directory.`,
		Example: `  dsep testnet up --nodes 3 --dir /tmp/dsep-net
  dsep testnet up --nodes 10 --dir ./net --json &
  jq -r '.users[1].imap' ./net/testnet.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if users < 2 || users > testnetUpMax {
				return fail(fmt.Sprintf("use --nodes between 2 and %d", testnetUpMax), "bad --nodes %d", users)
			}
			if dir == "" {
				return fail("pass --dir DIR: the users' data directories and testnet.json go there", "no --dir")
			}
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return fail("choose a writable --dir", "%v", err)
			}
			fmt.Fprintf(a.stderr, "bringing up %d users' nodes in %s…\n", users, dir)
			return a.runDemo(cmd.Context(), demoOpts{dir: dir, users: users, quiet: true, ready: func(st *demoState) error {
				b, err := json.MarshalIndent(st, "", "  ")
				if err != nil {
					return err
				}
				path := filepath.Join(dir, "testnet.json")
				if err := writeFileAtomic(path, append(b, '\n')); err != nil {
					return err
				}
				if a.jsonOut {
					return a.printJSON(st)
				}
				fmt.Fprintf(a.stdout, "DSEP testnet up: DNS %s, %d users; settings in %s\nCtrl-C stops it.\n", st.DNS, len(st.Users), path)
				return nil
			}})
		},
	}
	c.Flags().IntVar(&users, "nodes", 3, fmt.Sprintf("number of users, each with a running node (2 to %d)", testnetUpMax))
	c.Flags().StringVar(&dir, "dir", "", "directory for the users' data and testnet.json")
	return c
}

func (a *app) testnetBenchCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "bench",
		Short: "Measure a test network: latency, success, cost per operation",
		Example: `  dsep testnet bench lookup --nodes 50 --lookups 200
  dsep testnet bench lookup --json > lookup.json`,
	}
	c.AddCommand(a.testnetBenchLookupCommand(), a.testnetBenchDeliverCommand())
	return c
}

func (a *app) testnetBenchDeliverCommand() *cobra.Command {
	var cfg testnet.DeliverBench
	var seconds float64
	c := &cobra.Command{
		Use:   "deliver",
		Short: "Measure mail delivery between two nodes, end to end",
		Long: `Build a test network (DNS, a domain, a small DHT backbone) with two users,
alice and bob, each on their own node, then send mail from alice to bob for
--seconds (or exactly --messages) and count what bob files. Every message
takes the whole path: alice's durable queue, sign then encrypt, the
/dsep/deliver stream, bob's durable store and acknowledgement, decryption,
signature, recipient and binding checks, indexing, and a signed receipt
back to alice. Bob gives alice a waiver, so no stamps are minted (stamp
minting is measured by ` + "`dsep stamp bench`" + `).

Without --rate, alice sends as fast as the path drains (at most 2048
messages in flight); with --rate, at that many messages per second.

Reported: msgs_per_sec filed at bob; p50/p99 latency from Send to filing;
lost and duplicate messages; receipts; and crypto_bound_msgs_per_sec, the
rate one core would reach doing nothing but the message's crypto (sign and
encrypt, decrypt and verify, receipt sign and verify), timed in this run.
Exit status 1 if a message was lost or duplicated.`,
		Example: `  dsep testnet bench deliver --nodes 2 --seconds 60 --size 4096 --json
  dsep testnet bench deliver --messages 2000
  dsep testnet bench deliver --seconds 60 --rate 200 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg.Nodes != 2 {
				return fail("use --nodes 2", "bad --nodes %d: the delivery benchmark runs a sender and a recipient", cfg.Nodes)
			}
			if cfg.Size < 1 || cfg.Size > 25<<20 {
				return fail("use a --size between 1 and 26214400 bytes", "bad --size %d", cfg.Size)
			}
			if cfg.Messages < 0 || cfg.Rate < 0 || seconds < 0 {
				return fail("give positive numbers", "negative --messages, --rate or --seconds")
			}
			if cfg.Messages == 0 {
				if seconds == 0 {
					seconds = testnet.DefaultDeliverSeconds
				}
				cfg.Duration = time.Duration(seconds * float64(time.Second))
			}
			ctx := cmd.Context()
			fmt.Fprintln(a.stderr, "building the network…")
			res, err := testnet.RunDeliverBench(ctx, cfg, func(sent, filed int) {
				fmt.Fprintf(a.stderr, "sent %d, filed %d\n", sent, filed)
			})
			switch {
			case err != nil && ctx.Err() != nil:
				return &exitError{code: 130, msg: "interrupted; the test network is stopped"}
			case err != nil:
				return fail("if it persists, report it as a bug", "%v", err)
			}
			if a.jsonOut {
				err = a.printJSON(res)
			} else {
				fmt.Fprintf(a.stdout, "%d sent, %d filed in %.1fs: %.0f msgs/s (%.0f%% of the crypto bound, %.0f msgs/s)\n",
					res.Sent, res.Received, res.Seconds, res.MsgsPerSec, 100*res.OfCryptoBound, res.CryptoBoundMsgsPerSec)
				fmt.Fprintf(a.stdout, "latency send → filed: p50 %.1f ms, p99 %.1f ms\nlost %d, duplicates %d, receipts %d\n",
					res.P50Ms, res.P99Ms, res.Lost, res.Duplicates, res.Receipts)
			}
			if err != nil {
				return err
			}
			if res.Lost > 0 || res.Duplicates > 0 {
				return &exitError{code: 1, msg: fmt.Sprintf("%d lost, %d duplicated", res.Lost, res.Duplicates), hint: "this is a bug: please report it with the output of --json"}
			}
			return nil
		},
	}
	c.Flags().IntVar(&cfg.Nodes, "nodes", 2, "number of mail nodes (2: a sender and a recipient)")
	c.Flags().IntVar(&cfg.Messages, "messages", 0, "send exactly this many messages (instead of --seconds)")
	c.Flags().Float64Var(&seconds, "seconds", 0, fmt.Sprintf("send for this long (default %d)", testnet.DefaultDeliverSeconds))
	c.Flags().IntVar(&cfg.Size, "size", testnet.DefaultDeliverSize, "size of each mail in bytes")
	c.Flags().Float64Var(&cfg.Rate, "rate", 0, "messages per second (default: as fast as possible)")
	return c
}

func (a *app) testnetBenchLookupCommand() *cobra.Command {
	var cfg testnet.LookupBench
	c := &cobra.Command{
		Use:   "lookup",
		Short: "Time resolving email addresses over DNS and the DHT",
		Long: `Build a network of --nodes nodes with one user per node (user<i>@example.org,
certified by the domain, whose key is in the test DNS server's TXT record),
publish every user's key, email and reach records and the domain key, then
time --lookups resolutions: each resolves a random user from a random other
node with an empty record cache (DNS answers are cached), verifying the whole
chain. Each lookup is paired with a bare DHT get of a user's key record from
a random node, to show what the DSEP chain costs on top of Kademlia.

Reported: the time the network took to form; latency percentiles of the
lookups and of the bare gets; the fraction of lookups that succeeded; DHT
requests sent per lookup; and the growth of the process's resident memory
while the network formed, per node. Progress goes to standard error.`,
		Example: `  dsep testnet bench lookup
  dsep testnet bench lookup --nodes 100 --lookups 1000 --seed 7
  dsep testnet bench lookup --nodes 25 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg.Nodes < 2 || cfg.Nodes > benchMaxNodes {
				return fail(fmt.Sprintf("use --nodes between 2 and %d (each node costs a few MB and about 300 goroutines)", benchMaxNodes),
					"bad --nodes %d", cfg.Nodes)
			}
			if cfg.Lookups < 1 || cfg.Lookups > benchMaxLookups {
				return fail(fmt.Sprintf("use --lookups between 1 and %d", benchMaxLookups), "bad --lookups %d", cfg.Lookups)
			}
			ctx := cmd.Context()
			start := time.Now()
			fmt.Fprintf(a.stderr, "building %d nodes and publishing %d users…\n", cfg.Nodes, cfg.Nodes)
			// Progress every tenth of the lookups, or every 5 seconds.
			step, shown := max(cfg.Lookups/10, 1), time.Now()
			res, err := testnet.RunLookupBench(ctx, cfg, func(done, total int) {
				switch {
				case done == 0:
					fmt.Fprintf(a.stderr, "network ready in %.1fs\n", time.Since(start).Seconds())
				case done%step == 0 || done == total || time.Since(shown) > 5*time.Second:
					fmt.Fprintf(a.stderr, "lookups %d/%d\n", done, total)
				default:
					return
				}
				shown = time.Now()
			})
			switch {
			case err != nil && ctx.Err() != nil:
				return &exitError{code: 130, msg: "interrupted; the test network is stopped"}
			case errors.Is(err, context.DeadlineExceeded):
				return fail("try fewer --nodes, or a machine with more memory and CPUs", "the test network was not ready in time: %v", err)
			case err != nil:
				return fail("try fewer --nodes; if it persists, report it as a bug", "%v", err)
			}
			if a.jsonOut {
				err = a.printJSON(res)
			} else {
				err = a.printLookupBench(res)
			}
			if err != nil {
				return err
			}
			if res.Success < 1 {
				failed := res.Lookups - int(math.Round(res.Success*float64(res.Lookups)))
				return &exitError{code: 1, msg: fmt.Sprintf("%d of %d lookups failed, the first: %s", failed, res.Lookups, res.FirstError),
					hint: "the network may be overloaded: try fewer --nodes"}
			}
			return nil
		},
	}
	c.Flags().IntVar(&cfg.Nodes, "nodes", testnet.DefaultBenchNodes, fmt.Sprintf("number of nodes, one user each (2 to %d)", benchMaxNodes))
	c.Flags().IntVar(&cfg.Lookups, "lookups", testnet.DefaultBenchLookups, fmt.Sprintf("number of timed lookups (1 to %d)", benchMaxLookups))
	c.Flags().Int64Var(&cfg.Seed, "seed", 1, "seed of the random choice of nodes and users")
	return c
}

// printLookupBench prints the result as a small table.
func (a *app) printLookupBench(r *testnet.LookupResult) error {
	fmt.Fprintf(a.stdout, "%d nodes formed in %.1fs, %.1f MB of memory each\n", r.Nodes, r.FormedS, r.MemPerNodeMB)
	fmt.Fprintf(a.stdout, "%d lookups: %.1f%% succeeded, %.1f DHT requests each\n\n", r.Lookups, 100*r.Success, r.RPCsPerLookup)
	tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "\tp50 ms\tp95 ms\tp99 ms\t\n")
	fmt.Fprintf(tw, "email lookup\t%.1f\t%.1f\t%.1f\t\n", r.P50Ms, r.P95Ms, r.P99Ms)
	fmt.Fprintf(tw, "bare DHT get\t%.1f\t-\t%.1f\t\n", r.BareGetP50Ms, r.BareGetP99Ms)
	return tw.Flush()
}
