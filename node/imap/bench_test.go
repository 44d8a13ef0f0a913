package imap

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dsep-project/dsep/node/store"
	"github.com/emersion/go-imap/v2"
)

// message4k is a message of 4 KiB (header and text).
func message4k(i int) []byte {
	head := simple(i, fmt.Sprintf("Sender %d <sender%d@example.org>", i%97, i%97), fmt.Sprintf("Benchmark message number %d", i), "")
	text := strings.Repeat("All work and no play makes Jack a dull boy.\r\n", 100)[:4096-len(head)-2]
	return []byte(head + text + "\r\n")
}

// fill delivers n 4 KiB messages into INBOX from 64 goroutines.
func fill(b *testing.B, st *store.Store, n int) {
	b.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for i := int(next.Add(1)); i <= n; i = int(next.Add(1)) {
				if _, err := deliverErr(st, store.FolderInbox, message4k(i)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// BenchmarkMailbox10k: a mail client on a mailbox of 10,000 messages of
// 4 KiB, over a real connection on loopback (client parsing included).
//
//   - SelectFetchEnvelopeFlags: SELECT INBOX and FETCH 1:* (ENVELOPE
//     FLAGS), the listing a client does when it opens a mailbox (target
//     ≤ 1 s);
//   - FetchBody4KiB: UID FETCH of one message's BODY.PEEK[] (target
//     ≤ 20 ms), with the p99 over the loop.
func BenchmarkMailbox10k(b *testing.B) {
	const n = 10_000
	st := openStore(b, b.TempDir())
	t0 := time.Now()
	fill(b, st, n)
	b.Logf("filled %d messages in %v", n, time.Since(t0))
	ts := start(b, st)
	c := login(b, ts, nil)

	b.Run("SelectFetchEnvelopeFlags", func(b *testing.B) {
		for b.Loop() {
			sd, err := c.Select("INBOX", nil).Wait()
			if err != nil || sd.NumMessages != n {
				b.Fatalf("SELECT: %+v, %v", sd, err)
			}
			msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{Envelope: true, Flags: true}).Collect()
			if err != nil || len(msgs) != n || msgs[n-1].Envelope == nil {
				b.Fatalf("FETCH: %d, %v", len(msgs), err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/op")
	})

	b.Run("FetchBody4KiB", func(b *testing.B) {
		if _, err := c.Select("INBOX", nil).Wait(); err != nil {
			b.Fatal(err)
		}
		r := rand.New(rand.NewPCG(1, 2))
		var lat []time.Duration
		for b.Loop() {
			start := time.Now()
			uid := imap.UID(1 + r.IntN(n))
			msgs, err := c.Fetch(imap.UIDSetNum(uid), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
			if err != nil || len(msgs) != 1 || len(msgs[0].BodySection) != 1 || len(msgs[0].BodySection[0].Bytes) != 4096 {
				b.Fatalf("UID FETCH %d BODY.PEEK[]: %d messages, %v", uid, len(msgs), err)
			}
			lat = append(lat, time.Since(start))
		}
		slices.Sort(lat)
		b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/op")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	})
}

// BenchmarkIngest: the store's ingest of 4 KiB messages as the node files
// inbound mail (header summary, metadata, body, one durable write each),
// from 1, 16 (the node's default number of inbound workers) and 64
// writers at once (target ≥ 1,000 msgs/s). An op is a batch of 1,000
// messages, so that -benchtime=1x measures something.
func BenchmarkIngest(b *testing.B) {
	const batch = 1000
	msgs := make([][]byte, 256)
	for i := range msgs {
		msgs[i] = message4k(i)
	}
	for _, writers := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			st := openStore(b, b.TempDir())
			for b.Loop() {
				var next atomic.Int64
				var wg sync.WaitGroup
				for range writers {
					wg.Go(func() {
						for i := int(next.Add(1)); i <= batch; i = int(next.Add(1)) {
							if _, err := deliverErr(st, store.FolderInbox, msgs[i%len(msgs)]); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
