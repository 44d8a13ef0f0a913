package deliver

import (
	"math"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"
)

// pruneEvery is how often, at most, idle peers are dropped from the table.
const pruneEvery = 30 * time.Second

// peerLimits holds the per-peer token buckets and stream counts of one
// server, keyed by authenticated peer ID.
//
// A peer's entry is dropped once it has no open stream and has been idle
// long enough for its buckets to be full again (refill), so dropping it
// forgets nothing: a new entry starts with full buckets too.
type peerLimits struct {
	// Fixed at construction.
	rate       rate.Limit // items per second; rate.Inf: no limit
	burst      int
	byteRate   rate.Limit // payload bytes per second; 0: not counted
	byteBurst  int
	maxStreams int // ≤ 0: no limit
	refill     time.Duration

	mu        sync.Mutex // guards peers and lastPrune
	peers     map[peer.ID]*peerState
	lastPrune time.Time
}

// peerState is one peer's entry; its fields are guarded by peerLimits.mu
// (the limiters also lock themselves).
type peerState struct {
	items   *rate.Limiter
	bytes   *rate.Limiter // nil when bytes are not counted
	streams int
	last    time.Time
}

// newPeerLimits returns the limits: r items per second with burst b,
// byteRate payload bytes per second with burst byteBurst (byteRate ≤ 0:
// not counted), at most maxStreams open streams (≤ 0: no limit). A
// negative or infinite r means no item limit.
func newPeerLimits(r float64, b int, byteRate int64, byteBurst int, maxStreams int) *peerLimits {
	l := &peerLimits{burst: b, maxStreams: maxStreams, peers: make(map[peer.ID]*peerState)}
	if r < 0 || math.IsInf(r, 1) {
		l.rate = rate.Inf
	} else {
		l.rate = rate.Limit(r)
		l.refill = durationFor(float64(b), r)
	}
	if byteRate > 0 {
		l.byteRate = rate.Limit(byteRate)
		l.byteBurst = byteBurst
		l.refill = max(l.refill, durationFor(float64(byteBurst), float64(byteRate)))
	}
	l.refill += time.Second
	return l
}

// durationFor returns how long n tokens take at r per second.
func durationFor(n, r float64) time.Duration {
	if r <= 0 {
		return time.Hour
	}
	return time.Duration(n / r * float64(time.Second))
}

// entry returns p's entry, creating it. l.mu must be held.
func (l *peerLimits) entry(p peer.ID, now time.Time) *peerState {
	st := l.peers[p]
	if st == nil {
		st = &peerState{items: rate.NewLimiter(l.rate, l.burst)}
		if l.byteRate > 0 {
			st.bytes = rate.NewLimiter(l.byteRate, l.byteBurst)
		}
		l.peers[p] = st
	}
	st.last = now
	return st
}

// open counts a new stream from p. It returns false when p already has
// maxStreams open; otherwise the caller must call close(p) when the stream
// ends.
func (l *peerLimits) open(p peer.ID, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastPrune) >= pruneEvery {
		l.prune(now)
	}
	st := l.entry(p, now)
	if l.maxStreams > 0 && st.streams >= l.maxStreams {
		return false
	}
	st.streams++
	return true
}

// close ends a stream counted by open.
func (l *peerLimits) close(p peer.ID, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if st := l.peers[p]; st != nil {
		st.streams--
		st.last = now
	}
}

// prune drops idle entries. l.mu must be held.
func (l *peerLimits) prune(now time.Time) {
	l.lastPrune = now
	for p, st := range l.peers {
		if st.streams == 0 && now.Sub(st.last) >= l.refill {
			delete(l.peers, p)
		}
	}
}

// take charges p for one item of n payload bytes. It returns 0 when
// allowed, and otherwise how long p should wait (at least a second), in
// which case nothing is charged.
func (l *peerLimits) take(p peer.ID, n uint64, now time.Time) time.Duration {
	l.mu.Lock()
	st := l.entry(p, now)
	l.mu.Unlock()
	ri := st.items.ReserveN(now, 1)
	wait := ri.DelayFrom(now)
	if !ri.OK() {
		wait = time.Hour
	}
	var rb *rate.Reservation
	if st.bytes != nil && n > 0 {
		rb = st.bytes.ReserveN(now, int(min(n, math.MaxInt)))
		switch d := rb.DelayFrom(now); {
		case !rb.OK():
			wait = max(wait, time.Hour)
		case d > wait:
			wait = d
		}
	}
	if wait == 0 {
		return 0
	}
	ri.CancelAt(now)
	if rb != nil {
		rb.CancelAt(now)
	}
	return max(wait, time.Second)
}

// budget bounds the payload bytes held in memory across all streams.
type budget struct {
	mu   sync.Mutex // guards used
	used int64
	max  int64
}

// take reserves n bytes; it returns false, reserving nothing, if that
// would go over the limit.
func (b *budget) take(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n > b.max-b.used {
		return false
	}
	b.used += n
	return true
}

// give releases n bytes reserved by take.
func (b *budget) give(n int64) {
	b.mu.Lock()
	b.used -= n
	b.mu.Unlock()
}
