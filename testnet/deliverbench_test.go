package testnet_test

import (
	"context"
	"testing"
	"time"

	"github.com/dsep-project/dsep/testnet"
)

// The delivery benchmark's path end to end, small: nothing lost, nothing
// twice, every receipt back.
func TestDeliverBenchSmall(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	n := 100
	if testing.Short() {
		n = 20
	}
	res, err := testnet.RunDeliverBench(ctx, testnet.DeliverBench{Messages: n, Dir: t.TempDir()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != n || res.Received != n || res.Lost != 0 || res.Duplicates != 0 || res.Receipts != n {
		t.Fatalf("result: %+v", res)
	}
	if res.MsgsPerSec <= 0 || res.P50Ms <= 0 || res.P99Ms < res.P50Ms || res.CryptoBoundMsgsPerSec <= 0 {
		t.Fatalf("figures: %+v", res)
	}
	t.Logf("%+v", res)
}

func BenchmarkDeliver(b *testing.B) {
	ctx := context.Background()
	res, err := testnet.RunDeliverBench(ctx, testnet.DeliverBench{Messages: max(b.N, 100), Dir: b.TempDir()}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(res.MsgsPerSec, "msgs/s")
	b.ReportMetric(res.P50Ms, "p50-ms")
	b.ReportMetric(res.P99Ms, "p99-ms")
	b.ReportMetric(res.CryptoBoundMsgsPerSec, "crypto-bound-msgs/s")
	b.ReportMetric(float64(res.Lost+res.Duplicates), "lost+dup")
}
