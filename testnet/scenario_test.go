package testnet

import (
	"context"
	"testing"
	"time"
)

func TestRunLookupBench(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const lookups = 20
	calls, last := 0, -1
	res, err := RunLookupBench(ctx, LookupBench{Nodes: 8, Lookups: lookups, Seed: 1}, func(done, total int) {
		if total != lookups || done != last+1 {
			t.Errorf("progress(%d, %d) after progress(%d, …)", done, total, last)
		}
		calls++
		last = done
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", *res)
	if res.Success != 1 {
		t.Errorf("success %v, want 1; first error: %s", res.Success, res.FirstError)
	}
	if res.FirstError != "" {
		t.Errorf("first error: %s", res.FirstError)
	}
	if res.RPCsPerLookup <= 0 {
		t.Errorf("rpcs_per_lookup %v, want > 0", res.RPCsPerLookup)
	}
	if res.P50Ms <= 0 || res.P50Ms > res.P95Ms || res.P95Ms > res.P99Ms {
		t.Errorf("percentiles p50 %v, p95 %v, p99 %v: want 0 < p50 ≤ p95 ≤ p99", res.P50Ms, res.P95Ms, res.P99Ms)
	}
	if res.BareGetP50Ms <= 0 || res.BareGetP50Ms > res.BareGetP99Ms {
		t.Errorf("bare get p50 %v, p99 %v", res.BareGetP50Ms, res.BareGetP99Ms)
	}
	if res.Nodes != 8 || res.Lookups != lookups || res.FormedS <= 0 {
		t.Errorf("nodes %d, lookups %d, formed in %vs", res.Nodes, res.Lookups, res.FormedS)
	}
	if calls != lookups+1 {
		t.Errorf("%d progress calls, want %d", calls, lookups+1)
	}
}

func TestRunLookupBenchRefuses(t *testing.T) {
	for _, cfg := range []LookupBench{{Nodes: 1}, {Nodes: -3}, {Nodes: 2, Lookups: -1}} {
		if _, err := RunLookupBench(context.Background(), cfg, nil); err == nil {
			t.Errorf("%+v: no error", cfg)
		}
	}
}

func TestRunLookupBenchCancel(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, err := RunLookupBench(ctx, LookupBench{Nodes: 3, Lookups: 1000}, func(done, _ int) {
		if done == 2 {
			cancel()
		}
	})
	if err != context.Canceled {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

func TestPercentileMs(t *testing.T) {
	ds := make([]time.Duration, 100)
	for i := range ds {
		ds[len(ds)-1-i] = time.Duration(i+1) * time.Millisecond // 100 … 1 ms
	}
	for _, tt := range []struct{ p, want float64 }{{50, 50}, {95, 95}, {99, 99}, {100, 100}, {0, 1}} {
		if got := percentileMs(ds, tt.p); got != tt.want {
			t.Errorf("p%v = %v, want %v", tt.p, got, tt.want)
		}
	}
	if got := percentileMs([]time.Duration{3 * time.Millisecond}, 99); got != 3 {
		t.Errorf("p99 of one = %v", got)
	}
	if got := percentileMs(nil, 50); got != 0 {
		t.Errorf("p50 of none = %v", got)
	}
}

// BenchmarkLookup50 runs the lookup benchmark on 50 nodes:
// go test -run '^$' -bench Lookup50 ./testnet/
func BenchmarkLookup50(b *testing.B) {
	if testing.Short() {
		b.Skip("builds a 50-node network")
	}
	var res *LookupResult
	for range b.N {
		var err error
		res, err = RunLookupBench(b.Context(), LookupBench{Nodes: 50, Lookups: 200, Seed: 1}, nil)
		if err != nil {
			b.Fatal(err)
		}
		if res.FirstError != "" {
			b.Logf("first error: %s", res.FirstError)
		}
	}
	b.ReportMetric(0, "ns/op") // one op is a whole network: meaningless
	b.ReportMetric(res.P50Ms, "p50_ms")
	b.ReportMetric(res.P99Ms, "p99_ms")
	b.ReportMetric(res.BareGetP50Ms, "bare_get_p50_ms")
	b.ReportMetric(res.RPCsPerLookup, "rpcs/lookup")
	b.ReportMetric(res.MemPerNodeMB, "MB/node")
	b.ReportMetric(res.Success, "success")
}
