package deliver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// ReceiptSink takes one receipt from the authenticated peer remote; the
// bytes are the sender's, unchecked (their format is node/receipt's). It
// returns nil to accept, a *Refusal (possibly wrapped) to refuse for good
// (StatusRejected) or for now (StatusRetry), and any other error for a
// temporary failure (answered retry and logged). It is called from many
// goroutines at once, one per stream, and may keep receipt. ctx is
// canceled when the server closes.
type ReceiptSink func(ctx context.Context, remote peer.ID, receipt []byte) error

// ReceiptConfig configures a ReceiptServer. The zero value selects the
// defaults.
type ReceiptConfig struct {
	// PeerRate is how many receipts per second one peer may send,
	// sustained, and PeerBurst how many at once; over it a receipt is
	// answered retry and the stream ends. Defaults: DefaultPeerRate (50),
	// DefaultPeerBurst (200). A negative or infinite PeerRate disables
	// the limit.
	PeerRate  float64
	PeerBurst int

	// MaxStreamsPerPeer bounds the streams one peer may have open at
	// once. Default: DefaultMaxStreamsPerPeer (8). Negative: no limit.
	MaxStreamsPerPeer int

	// ReadTimeout bounds the wait for each receipt and the writing of
	// each status. Default: DefaultReadTimeout (2 min).
	ReadTimeout time.Duration

	// Logger receives refusals (debug), sink failures (warn) and recovered
	// panics (error); never a receipt's bytes. Default: silent.
	Logger *slog.Logger
}

// ReceiptServer serves /dsep/receipt/1.0.0 on a host.
type ReceiptServer struct {
	sink    ReceiptSink
	cfg     ReceiptConfig
	log     *slog.Logger
	peers   *peerLimits
	streams *streams
}

// NewReceiptServer registers the handler of ReceiptProtocol on h; every
// receipt received goes to sink. The caller must Close the server before
// closing h.
func NewReceiptServer(h host.Host, sink ReceiptSink, cfg ReceiptConfig) (*ReceiptServer, error) {
	if h == nil {
		return nil, errors.New("deliver: NewReceiptServer needs a host")
	}
	s, err := newReceiptServer(sink, cfg)
	if err != nil {
		return nil, err
	}
	s.streams = newStreams(h, ReceiptProtocol, func(ctx context.Context, st network.Stream) {
		s.serve(ctx, st, st.Conn().RemotePeer())
	})
	return s, nil
}

// newReceiptServer builds a server without a host (tests, fuzzing).
func newReceiptServer(sink ReceiptSink, cfg ReceiptConfig) (*ReceiptServer, error) {
	if sink == nil {
		return nil, errors.New("deliver: NewReceiptServer needs a sink")
	}
	if cfg.PeerRate == 0 {
		cfg.PeerRate = DefaultPeerRate
	}
	if cfg.PeerBurst <= 0 {
		cfg.PeerBurst = DefaultPeerBurst
	}
	if cfg.MaxStreamsPerPeer == 0 {
		cfg.MaxStreamsPerPeer = DefaultMaxStreamsPerPeer
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = DefaultReadTimeout
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &ReceiptServer{
		sink:  sink,
		cfg:   cfg,
		log:   log,
		peers: newPeerLimits(cfg.PeerRate, cfg.PeerBurst, 0, 0, cfg.MaxStreamsPerPeer),
	}, nil
}

// Shutdown stops the server gracefully: no new stream or receipt is
// read; the receipts being handled are answered. When ctx is done first,
// it closes the server as Close does and returns ctx's error.
func (s *ReceiptServer) Shutdown(ctx context.Context) error { return s.streams.shutdown(ctx) }

// Close removes the handler, cancels the sink's context, resets every open
// stream and waits for their goroutines.
func (s *ReceiptServer) Close() error { return s.streams.close() }

// serve runs one receipt stream: read a frame, call the sink, write the
// status, until the stream ends. Receipts are small, so they are handled
// one at a time. It recovers its panics and closes the stream (reset on
// failure).
func (s *ReceiptServer) serve(ctx context.Context, c conn, remote peer.ID) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("panic serving a receipt stream", "peer", remote.String(), "panic", p, "stack", string(debug.Stack()))
			c.Reset()
		}
	}()
	if !s.peers.open(remote, time.Now()) {
		s.log.Debug("too many receipt streams", "peer", remote.String())
		s.finish(c, remote, ReceiptRetry)
		return
	}
	defer func() { s.peers.close(remote, time.Now()) }()
	br := bufio.NewReaderSize(c, 2+MaxReceipt)
	for {
		if ctx.Err() != nil || (s.streams != nil && s.streams.draining.Load()) {
			c.Close()
			return
		}
		c.SetReadDeadline(time.Now().Add(s.cfg.ReadTimeout))
		receipt, err := readReceipt(br)
		switch {
		case err == io.EOF:
			c.Close()
			return
		case errors.Is(err, errEmptyReceipt) || errors.Is(err, errReceiptTooLarge):
			s.log.Debug("malformed receipt frame", "peer", remote.String(), "err", err)
			s.finish(c, remote, ReceiptRefused)
			return
		case err != nil:
			s.log.Debug("receipt stream cut short", "peer", remote.String(), "err", err)
			c.Reset()
			return
		}
		if wait := s.peers.take(remote, 0, time.Now()); wait > 0 {
			s.log.Debug("receipt rate limit", "peer", remote.String(), "retry_after", wait)
			s.finish(c, remote, ReceiptRetry)
			return
		}
		if !s.write(c, remote, s.take(ctx, remote, receipt)) {
			c.Reset()
			return
		}
	}
}

// finish writes a last status and closes the stream.
func (s *ReceiptServer) finish(c conn, remote peer.ID, st ReceiptStatus) {
	if s.write(c, remote, st) {
		c.Close()
	} else {
		c.Reset()
	}
}

// write writes one status byte.
func (s *ReceiptServer) write(c conn, remote peer.ID, st ReceiptStatus) bool {
	c.SetWriteDeadline(time.Now().Add(s.cfg.ReadTimeout))
	if _, err := c.Write([]byte{byte(st)}); err != nil {
		s.log.Debug("writing a receipt status", "peer", remote.String(), "err", err)
		return false
	}
	return true
}

// take calls the sink and returns the status to send.
func (s *ReceiptServer) take(ctx context.Context, remote peer.ID, receipt []byte) (st ReceiptStatus) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("panic in ReceiptSink", "peer", remote.String(), "panic", p, "stack", string(debug.Stack()))
			st = ReceiptRetry
		}
	}()
	err := s.sink(ctx, remote, receipt)
	if err == nil {
		return ReceiptAccepted
	}
	var rf *Refusal
	if errors.As(err, &rf) {
		s.log.Debug("receipt refused", "peer", remote.String(), "status", rf.Status.String(), "reason", rf.Reason)
		if rf.Status == StatusRejected {
			return ReceiptRefused
		}
		return ReceiptRetry
	}
	s.log.Warn("receipt sink failed", "peer", remote.String(), "err", err)
	return ReceiptRetry
}

// SendReceipts sends receipts to peer p on one /dsep/receipt/1.0.0
// stream, pipelined, and returns the status of each receipt answered, in
// order. When fewer than len(receipts) were answered, the error says why
// (ErrStreamEnded: the receiver ended the stream, after refusing a
// malformed frame or rate limiting; the rest may be sent again). A receipt
// that is empty or over MaxReceipt bytes is refused before anything is
// sent. ctx bounds the whole exchange.
func SendReceipts(ctx context.Context, h host.Host, p peer.ID, receipts [][]byte) ([]ReceiptStatus, error) {
	if len(receipts) == 0 {
		return nil, nil
	}
	for i, r := range receipts {
		if _, err := appendReceipt(nil, r); err != nil {
			return nil, fmt.Errorf("deliver: receipt %d: %w", i, err)
		}
	}
	s, err := h.NewStream(ctx, p, ReceiptProtocol)
	if err != nil {
		return nil, fmt.Errorf("deliver: opening a receipt stream to %s: %w", p, err)
	}
	return pipeline(ctx, s, len(receipts), func(w io.Writer) error {
		var buf []byte
		for _, r := range receipts {
			buf, _ = appendReceipt(buf[:0], r)
			if _, err := w.Write(buf); err != nil {
				return err
			}
		}
		return nil
	}, func(r io.Reader, i int) (ReceiptStatus, bool, error) {
		var b [1]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			if err == io.EOF {
				return 0, false, io.EOF
			}
			return 0, false, fmt.Errorf("deliver: reading the status of receipt %d: %w", i, err)
		}
		st := ReceiptStatus(b[0])
		if st > ReceiptRetry {
			return st, false, fmt.Errorf("%w: unknown receipt status %d", ErrMalformedResponse, b[0])
		}
		// The stream may end after a refusal or a retry; a following read
		// tells.
		return st, true, nil
	})
}
