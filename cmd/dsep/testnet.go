package main

import (
	"context"
	"errors"
	"fmt"
	"math"
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
	c.AddCommand(a.testnetBenchCommand())
	return c
}

func (a *app) testnetBenchCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "bench",
		Short: "Measure a test network: latency, success, cost per operation",
		Example: `  dsep testnet bench lookup --nodes 50 --lookups 200
  dsep testnet bench lookup --json > lookup.json`,
	}
	c.AddCommand(a.testnetBenchLookupCommand())
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
