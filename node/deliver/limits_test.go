package deliver

import (
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

func TestPeerLimits(t *testing.T) {
	now := time.Unix(1e9, 0)
	l := newPeerLimits(2, 2, 100, 100, 1)
	a, b := peer.ID("a"), peer.ID("b")
	if !l.open(a, now) || l.open(a, now) {
		t.Fatal("stream limit of 1 not kept")
	}
	if !l.open(b, now) {
		t.Fatal("another peer's stream refused")
	}
	l.close(b, now)
	// Items: a burst of 2, then one every 500 ms.
	for i, want := range []time.Duration{0, 0, time.Second} {
		if got := l.take(a, 1, now); got != want {
			t.Fatalf("take %d: wait %v, want %v", i, got, want)
		}
	}
	if got := l.take(a, 1, now.Add(500*time.Millisecond)); got != 0 {
		t.Fatalf("after 500 ms: wait %v", got)
	}
	// Bytes: a refused item costs nothing.
	if got := l.take(b, 101, now); got != time.Hour {
		t.Fatalf("over the byte burst: wait %v", got)
	}
	if got := l.take(b, 100, now); got != 0 {
		t.Fatalf("the byte burst: wait %v", got)
	}
	if got := l.take(b, 50, now); got != time.Second {
		t.Fatalf("over the byte rate: wait %v, want 1s (0.5 s rounded up)", got)
	}
	// Idle peers are pruned once their buckets would be full again; a peer
	// with a stream open is kept.
	later := now.Add(l.refill + pruneEvery)
	l.open(peer.ID("c"), later)
	l.mu.Lock()
	_, hasA := l.peers[a]
	_, hasB := l.peers[b]
	n := len(l.peers)
	l.mu.Unlock()
	if !hasA || hasB || n != 2 {
		t.Fatalf("after pruning: a kept %v, b kept %v, %d entries", hasA, hasB, n)
	}
	// Unlimited.
	u := newPeerLimits(-1, 0, 0, 0, -1)
	for i := 0; i < 1000; i++ {
		if !u.open(a, now) || u.take(a, 1<<30, now) != 0 {
			t.Fatal("an unlimited peer was limited")
		}
	}
}

func TestBudget(t *testing.T) {
	b := &budget{max: 10}
	if !b.take(6) || b.take(5) || !b.take(4) || b.take(1) {
		t.Fatal("budget of 10 not kept")
	}
	b.give(6)
	if !b.take(6) {
		t.Fatal("a released reservation was not reusable")
	}
}
