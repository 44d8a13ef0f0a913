package deliver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/dsep-project/dsep/node/envelope"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Policy is the node's side of the deliver protocol: what it admits and
// how it stores. The server calls it from many goroutines at once (one
// per stream, and several envelopes of one stream may be in Accept at
// once); its methods must be safe for that.
//
// To refuse, a method returns a *Refusal (possibly wrapped): its status,
// reason and retry delay go to the sender. Any other error is answered
// with StatusRetry and a generic reason, and logged here; its text is
// never sent.
type Policy interface {
	// Admit runs after the envelope header is read and before any
	// payload byte is: the cheap checks (proof syntax, price for
	// h.PayloadLen, freshness, a spent stamp). remote is the
	// authenticated peer. A refusal here ends the stream after the
	// response; the payload is never read.
	Admit(remote peer.ID, h envelope.Header) error

	// Accept gets the whole payload and its message ID (the SHA-256
	// computed while reading it). It checks what needs the payload (the
	// proof against the payload digest, spending the stamp), makes the
	// envelope durable, and returns only once it is: the server writes the
	// acknowledgement after Accept returns, never before. dup is true when
	// the envelope was already stored (the sender retried): it is
	// acknowledged again. ctx is canceled when the server closes.
	//
	// Accept may keep payload: the server does not reuse it. The server
	// counts it against MaxInflightBytes until Accept returns.
	Accept(ctx context.Context, remote peer.ID, h envelope.Header, id envelope.ID, payload []byte) (dup bool, err error)
}

// Defaults of ServerConfig and ReceiptConfig.
const (
	DefaultPeerRate          = 50
	DefaultPeerBurst         = 200
	DefaultPeerBytesPerSec   = 8 << 20
	DefaultMaxStreamsPerPeer = 8
	DefaultMaxInflightBytes  = 256 << 20
	DefaultReadTimeout       = 2 * time.Minute
)

// minReadRate is the slowest payload transfer the server waits for, in
// bytes per second, on top of ReadTimeout.
const minReadRate = 64 << 10

// acceptDepth is how many envelopes of one stream may wait for Accept
// while the server reads the next one.
const acceptDepth = 16

// responseBatch is the most bytes of responses written at once.
const responseBatch = 16 << 10

// busyRetry is the retry delay sent when the server is over its memory
// budget or a peer has too many streams open.
const busyRetry = 5 * time.Second

// The reasons the server itself sends. They say what to do and nothing
// about the receiving node's internals.
const (
	reasonMalformed = "malformed envelope header"
	reasonCutShort  = "the envelope was cut short or sent too slowly; send it again"
	reasonRateLimit = "too many envelopes from your node; slow down and send again later"
	reasonStreams   = "too many streams open from your node; send again later"
	reasonBusy      = "the receiving node is busy; send again later"
	reasonFailure   = "the receiving node failed to take the envelope; send it again later"
	reasonShutdown  = "the receiving node is shutting down; send again later"
)

// ServerConfig configures a deliver Server. The zero value of every field
// but Policy selects its default.
type ServerConfig struct {
	// Policy admits and stores envelopes. Required.
	Policy Policy

	// MaxPayload is the largest payload accepted, in bytes; a larger one
	// is rejected before any of it is read. Default:
	// envelope.DefaultMaxPayload (25 MiB).
	MaxPayload uint64

	// PeerRate is how many envelopes per second one peer may send,
	// sustained, and PeerBurst how many at once. Over it an envelope is
	// answered StatusRetry with a RetryAfter and the stream ends.
	// Defaults: DefaultPeerRate (50), DefaultPeerBurst (200). A negative
	// or infinite PeerRate disables the limit.
	PeerRate  float64
	PeerBurst int

	// PeerBytesPerSec is how many payload bytes per second one peer may
	// send, sustained; the burst is MaxPayload or one second's worth,
	// whichever is larger, so an envelope of MaxPayload can always pass.
	// Payload bytes are charged when the header is read. Default:
	// DefaultPeerBytesPerSec (8 MiB/s). Negative: no limit.
	PeerBytesPerSec int64

	// MaxStreamsPerPeer bounds the streams one peer may have open at
	// once; a stream over it is answered StatusRetry at once and ended.
	// Default: DefaultMaxStreamsPerPeer (8). Negative: no limit.
	MaxStreamsPerPeer int

	// MaxInflightBytes bounds the payload bytes held in memory across all
	// streams (read, or being read, and not yet through Accept). An
	// envelope that would go over it is answered StatusRetry before its
	// payload is read. Default: DefaultMaxInflightBytes (256 MiB); it
	// must be at least MaxPayload.
	MaxInflightBytes int64

	// ReadTimeout bounds the wait for the next envelope on an open
	// stream, and for each envelope's header. A payload gets ReadTimeout
	// plus one second per 64 KiB. Default: DefaultReadTimeout (2 min). It
	// also bounds writing each response.
	ReadTimeout time.Duration

	// Logger receives refusals (debug), policy failures (warn) and
	// recovered panics (error). Payloads and proofs are never logged.
	// Default: silent.
	Logger *slog.Logger
}

// Server serves /dsep/deliver/1.0.0 on a host.
type Server struct {
	cfg      ServerConfig
	log      *slog.Logger
	peers    *peerLimits
	inflight *budget
	streams  *streams
	now      func() time.Time
}

// NewServer checks cfg, applies its defaults and registers the handler of
// Protocol on h. The caller must Close (or Shutdown) the server before
// closing h.
func NewServer(h host.Host, cfg ServerConfig) (*Server, error) {
	if h == nil {
		return nil, errors.New("deliver: NewServer needs a host")
	}
	s, err := newServer(cfg)
	if err != nil {
		return nil, err
	}
	s.streams = newStreams(h, Protocol, func(ctx context.Context, st network.Stream) {
		s.serve(ctx, st, st.Conn().RemotePeer())
	})
	return s, nil
}

// newServer builds a server without a host (tests, fuzzing).
func newServer(cfg ServerConfig) (*Server, error) {
	if cfg.Policy == nil {
		return nil, errors.New("deliver: ServerConfig.Policy is required")
	}
	if cfg.MaxPayload == 0 {
		cfg.MaxPayload = envelope.DefaultMaxPayload
	}
	if cfg.PeerRate == 0 {
		cfg.PeerRate = DefaultPeerRate
	}
	if cfg.PeerBurst <= 0 {
		cfg.PeerBurst = DefaultPeerBurst
	}
	if cfg.PeerBytesPerSec == 0 {
		cfg.PeerBytesPerSec = DefaultPeerBytesPerSec
	}
	if cfg.MaxStreamsPerPeer == 0 {
		cfg.MaxStreamsPerPeer = DefaultMaxStreamsPerPeer
	}
	if cfg.MaxInflightBytes == 0 {
		cfg.MaxInflightBytes = DefaultMaxInflightBytes
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = DefaultReadTimeout
	}
	if cfg.MaxInflightBytes < 0 || uint64(cfg.MaxInflightBytes) < cfg.MaxPayload {
		return nil, fmt.Errorf("deliver: MaxInflightBytes %d is below MaxPayload %d: no envelope of the maximum size could ever be read",
			cfg.MaxInflightBytes, cfg.MaxPayload)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	byteBurst := max(cfg.MaxPayload, uint64(max(cfg.PeerBytesPerSec, 0)))
	return &Server{
		cfg:      cfg,
		log:      log,
		peers:    newPeerLimits(cfg.PeerRate, cfg.PeerBurst, cfg.PeerBytesPerSec, int(byteBurst), cfg.MaxStreamsPerPeer),
		inflight: &budget{max: cfg.MaxInflightBytes},
		now:      time.Now,
	}, nil
}

// Shutdown stops the server gracefully: it removes the handler, stops
// reading new envelopes, and lets the envelopes already read go through
// Accept and get their responses. When ctx is done first, it closes the
// server as Close does and returns ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.streams.shutdown(ctx)
}

// Close removes the handler, cancels the context given to Accept, resets
// every open stream and waits for their goroutines (including Accept calls
// in progress) to finish. An envelope that became durable while its stream
// was reset is not acknowledged; the sender's retry is answered duplicate.
func (s *Server) Close() error { return s.streams.close() }

// draining reports whether the server stopped reading new envelopes.
func (s *Server) draining() bool { return s.streams != nil && s.streams.draining.Load() }

// slot carries the response to one envelope from whoever produces it to
// the goroutine writing responses, in stream order.
type slot chan Response

// ready returns a slot holding r.
func ready(r Response) slot {
	sl := make(slot, 1)
	sl <- r
	return sl
}

// serve runs one stream: this goroutine reads envelopes and starts their
// Accept calls; a second one writes the responses in order. Both recover
// their panics; serve returns once both and every Accept it started have
// finished, having closed the stream (reset on failure).
func (s *Server) serve(ctx context.Context, c conn, remote peer.ID) {
	queue := make(chan slot, acceptDepth)
	werr := make(chan error, 1)
	go func() { werr <- s.respond(c, remote, queue) }()
	var accepts sync.WaitGroup
	// The stream counts against the peer's limit until its last Accept
	// has returned and its last response is written.
	opened := s.peers.open(remote, s.now())
	clean := true
	if opened {
		clean = s.readLoop(ctx, c, remote, queue, &accepts)
	} else {
		s.log.Debug("too many deliver streams", "peer", remote.String())
		queue <- ready(Response{Status: StatusRetry, Reason: reasonStreams, RetryAfter: busyRetry})
	}
	close(queue)
	err := <-werr
	accepts.Wait()
	if opened {
		s.peers.close(remote, s.now())
	}
	if clean && err == nil {
		c.Close()
	} else {
		c.Reset()
	}
}

// respond writes the response of every slot of queue, in order, each once
// it is ready. Responses ready together go out in one write: the buffer is
// written whenever the next response is not ready yet (or it is full).
// After a write failure respond stops the reader and keeps draining, so
// no producer blocks.
func (s *Server) respond(c conn, remote peer.ID, queue <-chan slot) (err error) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("panic writing deliver responses", "peer", remote.String(), "panic", p, "stack", string(debug.Stack()))
			err = fmt.Errorf("deliver: panic: %v", p)
			c.CloseRead()
			for sl := range queue {
				<-sl
			}
		}
	}()
	var buf []byte
	flush := func() {
		if err != nil || len(buf) == 0 {
			buf = buf[:0]
			return
		}
		c.SetWriteDeadline(s.now().Add(s.cfg.ReadTimeout))
		if _, err = c.Write(buf); err != nil {
			s.log.Debug("writing deliver responses", "peer", remote.String(), "err", err)
			c.CloseRead()
		}
		buf = buf[:0]
	}
	for {
		var sl slot
		var ok bool
		select {
		case sl, ok = <-queue:
		default:
			flush()
			sl, ok = <-queue
		}
		if !ok {
			break
		}
		var r Response
		select {
		case r = <-sl:
		default:
			flush()
			r = <-sl
		}
		if err == nil {
			buf = appendResponse(buf, r)
			if len(buf) >= responseBatch {
				flush()
			}
		}
	}
	flush()
	return err
}

// readLoop reads envelopes until the stream ends, one is refused before
// its payload, or reading fails. It reports whether it ended without a
// panic.
func (s *Server) readLoop(ctx context.Context, c conn, remote peer.ID, queue chan<- slot, accepts *sync.WaitGroup) (clean bool) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("panic serving a deliver stream", "peer", remote.String(), "panic", p, "stack", string(debug.Stack()))
			clean = false
		}
	}()
	for {
		if ctx.Err() != nil || s.draining() {
			return true
		}
		r, ok := s.next(ctx, c, remote, accepts)
		if r == nil {
			return true
		}
		queue <- r
		if !ok {
			return true
		}
	}
}

// next reads one envelope. It returns the slot its response will come in
// and whether to go on reading; a nil slot means the stream ended with
// nothing to answer.
func (s *Server) next(ctx context.Context, c conn, remote peer.ID, accepts *sync.WaitGroup) (slot, bool) {
	// The first byte: end of stream here is the sender's clean end.
	c.SetReadDeadline(s.now().Add(s.cfg.ReadTimeout))
	var first [1]byte
	if _, err := io.ReadFull(c, first[:]); err != nil {
		if err != io.EOF {
			s.log.Debug("deliver stream idle or broken", "peer", remote.String(), "err", err)
		}
		return nil, false
	}
	c.SetReadDeadline(s.now().Add(s.cfg.ReadTimeout))
	tr := &trackReader{r: c}
	h, err := envelope.ReadHeader(io.MultiReader(bytes.NewReader(first[:]), tr), s.cfg.MaxPayload)
	if err != nil {
		r := Response{Status: StatusRejected, Reason: reasonMalformed}
		switch {
		case errors.Is(err, envelope.ErrTooLarge):
			r.Reason = fmt.Sprintf("envelope too large: this node accepts payloads of at most %d bytes", s.cfg.MaxPayload)
		case errors.Is(err, envelope.ErrVersion):
			r.Reason = fmt.Sprintf("unsupported envelope version %d: this node speaks version %d", h.Version, envelope.Version)
		case tr.err != nil:
			// Not the format but the stream: it ended, timed out or broke
			// inside the header.
			r = Response{Status: StatusRetry, Reason: reasonCutShort}
		}
		s.log.Debug("deliver header refused", "peer", remote.String(), "err", err)
		return ready(r), false
	}
	if wait := s.peers.take(remote, h.PayloadLen, s.now()); wait > 0 {
		s.log.Debug("deliver rate limit", "peer", remote.String(), "retry_after", wait)
		return ready(Response{Status: StatusRetry, Reason: reasonRateLimit, RetryAfter: wait}), false
	}
	if err := s.admit(remote, h); err != nil {
		return ready(s.refusal(ctx, remote, zeroID, err)), false
	}
	n := int64(h.PayloadLen)
	if !s.inflight.take(n) {
		s.log.Warn("deliver memory budget exhausted", "peer", remote.String(), "payload", n)
		return ready(Response{Status: StatusRetry, Reason: reasonBusy, RetryAfter: busyRetry}), false
	}
	payload := make([]byte, n)
	c.SetReadDeadline(s.now().Add(s.cfg.ReadTimeout + time.Duration(n/minReadRate)*time.Second))
	id, err := envelope.Payload(c, h, &fill{b: payload})
	if err != nil {
		s.inflight.give(n)
		s.log.Debug("deliver payload cut short", "peer", remote.String(), "err", err)
		reason := reasonCutShort
		if s.draining() {
			reason = reasonShutdown
		}
		return ready(Response{Status: StatusRetry, Reason: reason}), false
	}
	sl := make(slot, 1)
	accepts.Add(1)
	go func() {
		defer accepts.Done()
		defer s.inflight.give(n)
		sl <- s.accept(ctx, remote, h, id, payload)
	}()
	return sl, true
}

// admit calls Policy.Admit, turning a panic into an error.
func (s *Server) admit(remote peer.ID, h envelope.Header) (err error) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("panic in Policy.Admit", "peer", remote.String(), "panic", p, "stack", string(debug.Stack()))
			err = fmt.Errorf("deliver: panic in Policy.Admit: %v", p)
		}
	}()
	return s.cfg.Policy.Admit(remote, h)
}

// accept calls Policy.Accept and returns the response to send.
func (s *Server) accept(ctx context.Context, remote peer.ID, h envelope.Header, id envelope.ID, payload []byte) (r Response) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("panic in Policy.Accept", "peer", remote.String(), "id", id.String(), "panic", p, "stack", string(debug.Stack()))
			r = Response{Status: StatusRetry, ID: id, Reason: reasonFailure}
		}
	}()
	dup, err := s.cfg.Policy.Accept(ctx, remote, h, id, payload)
	switch {
	case err != nil:
		return s.refusal(ctx, remote, id, err)
	case dup:
		return Response{Status: StatusDuplicate, ID: id}
	default:
		return Response{Status: StatusStored, ID: id}
	}
}

// refusal turns an error of the Policy into a response: a *Refusal as it
// says, anything else as a retry with a generic reason (logged, not sent).
func (s *Server) refusal(ctx context.Context, remote peer.ID, id envelope.ID, err error) Response {
	var rf *Refusal
	if errors.As(err, &rf) && (rf.Status == StatusRejected || rf.Status == StatusRetry) {
		r := Response{Status: rf.Status, ID: id, Reason: rf.Reason}
		if rf.Status == StatusRetry {
			r.RetryAfter = rf.RetryAfter
		}
		if r.Reason == "" {
			r.Reason = "refused by the receiving node"
		}
		s.log.Debug("deliver refusal", "peer", remote.String(), "id", id.String(), "status", rf.Status.String(), "reason", rf.Reason)
		return r
	}
	level := slog.LevelWarn
	if ctx.Err() != nil {
		level = slog.LevelDebug // the server is closing
	}
	s.log.Log(ctx, level, "deliver policy failed", "peer", remote.String(), "id", id.String(), "err", err)
	return Response{Status: StatusRetry, ID: id, Reason: reasonFailure}
}

// trackReader remembers the first error of the reader it wraps.
type trackReader struct {
	r   io.Reader
	err error
}

func (t *trackReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err != nil && t.err == nil {
		t.err = err
	}
	return n, err
}

// fill is a writer into a buffer of the exact payload size.
type fill struct {
	b []byte
	n int
}

func (f *fill) Write(p []byte) (int, error) {
	if len(p) > len(f.b)-f.n {
		return 0, io.ErrShortBuffer
	}
	f.n += copy(f.b[f.n:], p)
	return len(p), nil
}
