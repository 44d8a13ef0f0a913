package deliver

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// conn is what a server needs of a stream: a network.Stream, or a fake in
// tests and fuzzing.
type conn interface {
	io.ReadWriter
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
	// CloseRead interrupts reads in progress and refuses further ones.
	CloseRead() error
	// Close ends the stream gracefully: what was written is delivered,
	// then end of stream.
	Close() error
	// Reset aborts the stream both ways.
	Reset() error
}

var _ conn = network.Stream(nil)

// streams runs the handler of one protocol on a host and owns the
// goroutines serving its streams: it tracks them so that Shutdown can stop
// reading and Close can abort them, and waits for them.
type streams struct {
	h     host.Host
	proto protocol.ID
	serve func(ctx context.Context, s network.Stream)

	// ctx is given to every stream and canceled by abort.
	ctx    context.Context
	cancel context.CancelFunc
	// draining is set once the server stops reading new items.
	draining atomic.Bool

	mu     sync.Mutex // guards closed and open; wg.Add happens under it
	closed bool
	open   map[network.Stream]struct{}
	wg     sync.WaitGroup

	stopOnce sync.Once
}

// newStreams registers serve as the handler of proto on h.
func newStreams(h host.Host, proto protocol.ID, serve func(context.Context, network.Stream)) *streams {
	t := &streams{h: h, proto: proto, serve: serve, open: make(map[network.Stream]struct{})}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	if h != nil {
		h.SetStreamHandler(proto, t.handle)
	}
	return t
}

// handle is the libp2p stream handler.
func (t *streams) handle(s network.Stream) {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		s.Reset()
		return
	}
	t.open[s] = struct{}{}
	t.wg.Add(1)
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		delete(t.open, s)
		t.mu.Unlock()
		t.wg.Done()
	}()
	t.serve(t.ctx, s)
}

// each calls f on every open stream.
func (t *streams) each(f func(network.Stream)) {
	t.mu.Lock()
	open := make([]network.Stream, 0, len(t.open))
	for s := range t.open {
		open = append(open, s)
	}
	t.mu.Unlock()
	for _, s := range open {
		f(s)
	}
}

// stop removes the handler, refuses new streams, and stops reading on the
// open ones: each answers what it has read and ends.
func (t *streams) stop() {
	t.stopOnce.Do(func() {
		if t.h != nil {
			t.h.RemoveStreamHandler(t.proto)
		}
		t.draining.Store(true)
		t.mu.Lock()
		t.closed = true
		t.mu.Unlock()
		t.each(func(s network.Stream) { s.CloseRead() })
	})
}

// abort cancels the context of every stream and resets them all.
func (t *streams) abort() {
	t.cancel()
	t.each(func(s network.Stream) { s.Reset() })
}

// shutdown stops, then waits for the streams to finish until ctx is done,
// when it aborts them.
func (t *streams) shutdown(ctx context.Context) error {
	t.stop()
	done := make(chan struct{})
	go func() {
		t.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		t.cancel()
		return nil
	case <-ctx.Done():
		t.abort()
		<-done
		return ctx.Err()
	}
}

// close stops and aborts, and waits for every stream goroutine.
func (t *streams) close() error {
	t.stop()
	t.abort()
	t.wg.Wait()
	return nil
}

// isTimeout reports whether err is a deadline expiry.
func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}
