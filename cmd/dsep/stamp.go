package main

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/dsep-project/dsep/node/stamp"
	"github.com/spf13/cobra"
)

func (a *app) stampCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "stamp",
		Short: "Mint, check and benchmark hashcash stamps (interoperable with the hashcash tool)",
		Long: `DSEP pays for each message with a hashcash v1 stamp
(1:bits:date:resource:ext:rand:counter, SHA-1): the resource is the
recipient's fingerprint and ext carries the payload digest. These commands
read and write the same stamps as the hashcash tool (hashcash -m, hashcash -c).`,
		Example: `  dsep stamp mint --bits 20 0123456789abcdef0123456789abcdef01234567
  dsep stamp check --bits 20 --resource 0123…4567 '1:20:261121:0123…4567::…'
  dsep stamp bench --seconds 5 --json`,
	}
	c.AddCommand(a.stampMintCommand(), a.stampCheckCommand(), a.stampBenchCommand())
	return c
}

func (a *app) stampMintCommand() *cobra.Command {
	var bits, workers int
	var ext string
	c := &cobra.Command{
		Use:   "mint --bits N RESOURCE",
		Short: "Mint a stamp for RESOURCE (like hashcash -m)",
		Long: `Search for a stamp with N leading zero bits of SHA-1, on every core.
Each extra bit doubles the expected work: 20 bits take about 0.1 s on one
core here, 24 bits about 1.3 s. Progress goes to standard error; Ctrl-C
stops.`,
		Example: `  dsep stamp mint --bits 20 0123456789abcdef0123456789abcdef01234567
  dsep stamp mint --bits 24 --ext d=… RESOURCE --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if bits < 0 || bits > 40 {
				return fail("use --bits between 0 and 40 (each bit doubles the work)", "bad --bits %d", bits)
			}
			if workers <= 0 {
				workers = runtime.NumCPU()
			}
			start := time.Now()
			var mu sync.Mutex
			last := start
			progress := func(tries uint64) {
				mu.Lock()
				defer mu.Unlock()
				if time.Since(last) < time.Second {
					return
				}
				last = time.Now()
				el := time.Since(start).Seconds()
				fmt.Fprintf(a.stderr, "dsep: minting %d bits: %d tries in %.0f s (%.1f M/s; expected %.3g tries)\n",
					bits, tries, el, float64(tries)/el/1e6, float64(uint64(1)<<bits))
			}
			s, err := stamp.Mint(cmd.Context(), stamp.MintParams{Bits: bits, Resource: args[0], Ext: ext, Workers: workers}, progress)
			if err != nil {
				if errors.Is(err, cmd.Context().Err()) {
					return &exitError{code: 130, msg: "minting interrupted"}
				}
				return fail("the resource and ext may hold printable ASCII but no ':' or spaces", "%v", err)
			}
			if a.jsonOut {
				return a.printJSON(map[string]any{"stamp": s, "bits": bits, "seconds": time.Since(start).Seconds()})
			}
			fmt.Fprintln(a.stdout, s)
			return nil
		},
	}
	c.Flags().IntVarP(&bits, "bits", "b", 20, "leading zero bits")
	c.Flags().StringVar(&ext, "ext", "", "the ext field (DSEP: d=<hex SHA-256 of the payload>)")
	c.Flags().IntVar(&workers, "workers", 0, "goroutines searching (default: one per CPU)")
	return c
}

func (a *app) stampCheckCommand() *cobra.Command {
	var bits int
	var resource, ext string
	var window time.Duration
	c := &cobra.Command{
		Use:   "check --bits N --resource R STAMP",
		Short: "Check a stamp (like hashcash -c, without the spent-stamp database)",
		Long: `Check that STAMP claims at least N bits and has them, is for RESOURCE
(case-insensitively, as hashcash), carries --ext if given, and is fresh
(its date within --window). Exit status 0 when valid. Double spending is
checked by the receiving node, not here.`,
		Example: `  dsep stamp check --bits 20 --resource 0123456789abcdef0123456789abcdef01234567 "$(hashcash -q -m -b 20 0123456789abcdef0123456789abcdef01234567)"`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if resource == "" {
				return fail("pass --resource, the recipient's fingerprint", "no --resource given")
			}
			st, err := stamp.Check(args[0], stamp.CheckParams{Bits: bits, Resource: resource, Ext: ext, Window: window})
			if a.jsonOut {
				out := map[string]any{"valid": err == nil}
				if err != nil {
					out["error"] = err.Error()
				} else {
					out["bits"], out["resource"], out["date"] = st.Bits, st.Resource, st.Date.UTC()
				}
				if perr := a.printJSON(out); perr != nil {
					return perr
				}
			}
			if err != nil {
				return &exitError{code: 1, msg: "invalid stamp: " + err.Error(), hint: stampHint(err)}
			}
			if !a.jsonOut {
				fmt.Fprintf(a.stdout, "valid: %d bits for %s, dated %s\n", st.Bits, st.Resource, st.Date.UTC().Format("2006-01-02"))
			}
			return nil
		},
	}
	c.Flags().IntVarP(&bits, "bits", "b", 20, "minimum bits required")
	c.Flags().StringVarP(&resource, "resource", "r", "", "resource required (required)")
	c.Flags().StringVar(&ext, "ext", "", "ext required exactly (default: any)")
	c.Flags().DurationVar(&window, "window", stamp.DefaultWindow, "freshness window")
	return c
}

func stampHint(err error) string {
	switch {
	case errors.Is(err, stamp.ErrTooFewBits), errors.Is(err, stamp.ErrWork):
		return "mint a new stamp with enough bits: dsep stamp mint --bits N RESOURCE"
	case errors.Is(err, stamp.ErrStale), errors.Is(err, stamp.ErrFuture):
		return "mint a new stamp (and check the clock of the machine that minted it)"
	case errors.Is(err, stamp.ErrWrongResource), errors.Is(err, stamp.ErrWrongExt):
		return "the stamp was minted for another recipient or message"
	}
	return "a stamp reads 1:bits:date:resource:ext:rand:counter"
}

func (a *app) stampBenchCommand() *cobra.Command {
	var seconds float64
	var workers int
	c := &cobra.Command{
		Use:   "bench [--seconds S] [--workers N]",
		Short: "Measure the minting loop's speed (compare with hashcash -s)",
		Example: `  dsep stamp bench --seconds 5
  dsep stamp bench --workers 1 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if seconds <= 0 || seconds > 600 {
				return fail("use --seconds between 0.1 and 600", "bad --seconds %v", seconds)
			}
			if workers <= 0 {
				workers = runtime.NumCPU()
			}
			d := time.Duration(seconds * float64(time.Second))
			rate := stamp.Bench(cmd.Context(), d, workers)
			if a.jsonOut {
				return a.printJSON(map[string]any{"tries_per_sec": rate, "workers": workers, "seconds": seconds})
			}
			fmt.Fprintf(a.stdout, "%.2f M tries/s with %d worker(s) over %.1f s\n", rate/1e6, workers, seconds)
			return nil
		},
	}
	c.Flags().Float64Var(&seconds, "seconds", 3, "how long to measure")
	c.Flags().IntVar(&workers, "workers", 0, "goroutines (default: one per CPU)")
	return c
}
