package deliver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

// sink is a ReceiptSink for tests: it answers by the receipt's text.
type sink struct {
	mu   sync.Mutex // guards got
	got  []string
	from []peer.ID
}

func (s *sink) take(ctx context.Context, remote peer.ID, receipt []byte) error {
	s.mu.Lock()
	s.got = append(s.got, string(receipt))
	s.from = append(s.from, remote)
	s.mu.Unlock()
	switch string(receipt) {
	case "forged":
		return &Refusal{Status: StatusRejected, Reason: "bad signature"}
	case "later":
		return fmt.Errorf("store: %w", &Refusal{Status: StatusRetry})
	case "broken":
		return errors.New("badger: disk full")
	case "panic":
		panic("sink")
	}
	return nil
}

func newTestReceiptServer(t testing.TB, h host.Host, sk ReceiptSink, cfg ReceiptConfig) *ReceiptServer {
	t.Helper()
	s, err := NewReceiptServer(h, sk, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

func TestReceiptRoundTrip(t *testing.T) {
	from, to := pair(t)
	sk := &sink{}
	newTestReceiptServer(t, to, sk.take, ReceiptConfig{})
	in := []string{"r1", "forged", "later", "broken", "panic", "r2", string(make([]byte, MaxReceipt))}
	want := []ReceiptStatus{ReceiptAccepted, ReceiptRefused, ReceiptRetry, ReceiptRetry, ReceiptRetry, ReceiptAccepted, ReceiptAccepted}
	var receipts [][]byte
	for _, r := range in {
		receipts = append(receipts, []byte(r))
	}
	got, err := SendReceipts(testCtx(t), from, to.ID(), receipts)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("statuses %v, want %v", got, want)
	}
	sk.mu.Lock()
	defer sk.mu.Unlock()
	if fmt.Sprint(sk.got) != fmt.Sprint(in) {
		t.Fatalf("sink got %q", sk.got)
	}
	for _, p := range sk.from {
		if p != from.ID() {
			t.Fatalf("sink saw peer %s, want %s", p, from.ID())
		}
	}
}

func TestReceiptLimits(t *testing.T) {
	t.Run("rate", func(t *testing.T) {
		from, to := pair(t)
		newTestReceiptServer(t, to, (&sink{}).take, ReceiptConfig{PeerRate: 0.1, PeerBurst: 2})
		got, err := SendReceipts(testCtx(t), from, to.ID(), [][]byte{[]byte("a"), []byte("b"), []byte("c"), []byte("d")})
		if !errors.Is(err, ErrStreamEnded) || fmt.Sprint(got) != fmt.Sprint([]ReceiptStatus{ReceiptAccepted, ReceiptAccepted, ReceiptRetry}) {
			t.Fatalf("SendReceipts: %v, %v", got, err)
		}
	})
	t.Run("client checks", func(t *testing.T) {
		from, to := pair(t)
		for _, r := range [][]byte{nil, make([]byte, MaxReceipt+1)} {
			if _, err := SendReceipts(testCtx(t), from, to.ID(), [][]byte{r}); err == nil {
				t.Errorf("SendReceipts accepted a receipt of %d bytes", len(r))
			}
		}
	})
	t.Run("oversize frame", func(t *testing.T) {
		from, to := pair(t)
		sk := &sink{}
		newTestReceiptServer(t, to, sk.take, ReceiptConfig{})
		ctx := testCtx(t)
		s, err := from.NewStream(ctx, to.ID(), ReceiptProtocol)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Reset()
		frame, _ := appendReceipt(nil, []byte("ok"))
		if _, err := s.Write(append(frame, 0xff, 0xff)); err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(s)
		if err != nil || string(got) != string([]byte{byte(ReceiptAccepted), byte(ReceiptRefused)}) {
			t.Fatalf("statuses %v, %v; want accepted, refused, end", got, err)
		}
	})
	t.Run("streams", func(t *testing.T) {
		from, to := pair(t)
		entered := make(chan struct{}, 1)
		release := make(chan struct{})
		newTestReceiptServer(t, to, func(ctx context.Context, remote peer.ID, receipt []byte) error {
			select {
			case entered <- struct{}{}:
			default:
			}
			if !wait(ctx, release) {
				return ctx.Err()
			}
			return nil
		}, ReceiptConfig{MaxStreamsPerPeer: 1})
		first := make(chan error, 1)
		go func() {
			_, err := SendReceipts(testCtx(t), from, to.ID(), [][]byte{[]byte("a")})
			first <- err
		}()
		<-entered
		got, err := SendReceipts(testCtx(t), from, to.ID(), [][]byte{[]byte("b"), []byte("c")})
		if !errors.Is(err, ErrStreamEnded) || len(got) != 1 || got[0] != ReceiptRetry {
			t.Fatalf("second stream: %v, %v", got, err)
		}
		close(release)
		if err := <-first; err != nil {
			t.Fatal(err)
		}
	})
}

func TestReceiptServerChecks(t *testing.T) {
	h := newHost(t)
	if _, err := NewReceiptServer(h, nil, ReceiptConfig{}); err == nil {
		t.Error("NewReceiptServer accepted a nil sink")
	}
	if _, err := NewReceiptServer(nil, (&sink{}).take, ReceiptConfig{}); err == nil {
		t.Error("NewReceiptServer accepted a nil host")
	}
	s := newTestReceiptServer(t, h, (&sink{}).take, ReceiptConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}
