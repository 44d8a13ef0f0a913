package deliver

import (
	"context"
	"testing"
	"time"

	"github.com/dsep-project/dsep/node/envelope"
	"github.com/libp2p/go-libp2p/core/peer"
)

// instant is a Policy that stores nothing and accepts at once.
type instant struct{}

func (instant) Admit(peer.ID, envelope.Header) error { return nil }
func (instant) Accept(context.Context, peer.ID, envelope.Header, envelope.ID, []byte) (bool, error) {
	return false, nil
}

// BenchmarkDeliverStream: two hosts on loopback (TCP, TLS 1.3, yamux),
// 4 KiB payloads pipelined on one stream per batch of 256, a policy that
// accepts at once. It measures the protocol and transport, not a store.
func BenchmarkDeliverStream(b *testing.B) {
	const size, batch = 4 << 10, 256
	from, to := pair(b)
	newTestServer(b, to, ServerConfig{Policy: instant{}, PeerRate: -1, PeerBytesPerSec: -1})
	envs := outgoing(batch, size)
	ctx := context.Background()
	if _, err := Send(ctx, from, to.ID(), envs[:1]); err != nil { // connect
		b.Fatal(err)
	}
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for n := b.N; n > 0; n -= batch {
		resps, err := Send(ctx, from, to.ID(), envs[:min(n, batch)])
		if err != nil {
			b.Fatal(err)
		}
		if resps[len(resps)-1].Status != StatusStored {
			b.Fatalf("response %+v", resps[len(resps)-1])
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}
