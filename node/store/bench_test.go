package store

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// BenchmarkDurable: concurrent writers (at least GOMAXPROCS) of 4 KiB
// values, each waiting for its sync, on a real disk (the temporary
// directory). writes/sync shows the grouping.
func BenchmarkDurable(b *testing.B) {
	for _, writers := range []int{2, 16, 64, 256} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			var syncs atomic.Int64
			s := open(b, Options{AfterSync: func(int) { syncs.Add(1) }})
			val := make([]byte, 4<<10)
			var n atomic.Int64
			s0 := syncs.Load()
			b.SetBytes(int64(len(val)))
			b.SetParallelism(max(writers/runtime.GOMAXPROCS(0), 1))
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					k := fmt.Appendf(nil, "bench/%d", n.Add(1))
					err := s.Durable(context.Background(), func(txn *badger.Txn) error { return txn.Set(k, val) })
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			sec := b.Elapsed().Seconds()
			k := float64(syncs.Load() - s0)
			b.ReportMetric(float64(b.N)/sec, "writes/s")
			b.ReportMetric(k/sec, "syncs/s")
			b.ReportMetric(float64(b.N)/max(k, 1), "writes/sync")
		})
	}
}

// BenchmarkDeliver: 32 concurrent deliveries of 4 KiB messages (metadata,
// body, folder counters) into INBOX.
func BenchmarkDeliver(b *testing.B) {
	s := open(b, Options{})
	body := make([]byte, 4<<10)
	var n atomic.Int64
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := int(n.Add(1))
			m := Meta{ID: testID(i), Folder: FolderInbox, Direction: DirectionIn, From: "alice@example.org",
				To: []string{"bob@example.org"}, Subject: "a benchmark message", MessageID: fmt.Sprintf("<%d@example.org>", i)}
			if _, err := s.Deliver(context.Background(), m, body); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkList10k lists a folder of 10,000 messages with 64 KiB bodies
// (640 MiB, all in the value log) and reports how many values each listing
// read from the value log: none.
func BenchmarkList10k(b *testing.B) {
	const n = 10000
	s := open(b, Options{metrics: true})
	body := make([]byte, 64<<10)
	ctx := context.Background()
	var wg sync.WaitGroup
	var next atomic.Int64
	for range 64 {
		wg.Go(func() {
			for i := int(next.Add(1)); i <= n; i = int(next.Add(1)) {
				m := Meta{ID: testID(i), Folder: FolderInbox, Direction: DirectionIn, From: "alice@example.org",
					To: []string{"bob@example.org"}, Subject: fmt.Sprint("message ", i), MessageID: fmt.Sprintf("<%d@example.org>", i)}
				if _, err := s.Deliver(ctx, m, body); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	before := vlogReads()
	loops := 0
	for b.Loop() {
		l, err := s.List(FolderInbox, 0, 0)
		if err != nil || len(l) != n {
			b.Fatalf("List: %d, %v", len(l), err)
		}
		loops++
	}
	b.ReportMetric(float64(vlogReads()-before)/float64(loops), "vlog-reads/op")
	b.ReportMetric(float64(n*loops)/b.Elapsed().Seconds(), "msgs/s")
}
