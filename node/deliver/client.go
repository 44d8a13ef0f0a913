package deliver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/dsep-project/dsep/node/envelope"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Outgoing is an envelope to send: how it pays and its payload.
type Outgoing struct {
	Kind    envelope.Kind
	Proof   []byte
	Payload []byte
}

// writeBuffer is the client's write buffer: a header and a small payload
// go out in one write.
const writeBuffer = 64 << 10

// Send delivers envs to peer p on one /dsep/deliver/1.0.0 stream: a
// goroutine writes the envelopes one after the other while Send reads the
// responses, in order. It returns one Response per envelope answered, in
// the order of envs; when fewer than len(envs) were answered, the error
// says why: ErrStreamEnded after a refusal that ended the stream (the last
// response has an all-zero ID) or when the receiver hung up, ErrIDMismatch
// when a response names another message ID than the envelope's (that
// response is not returned), or the stream or ctx error. The unanswered
// envelopes are not delivered: send them again later (one the receiver
// stored before the stream broke is then answered duplicate).
//
// A response counts as an acknowledgement only if its Status is stored or
// duplicate; Send has checked that its ID is the envelope's
// (envelope.IDOf(payload)). Send has no timeout of its own: ctx bounds it.
func Send(ctx context.Context, h host.Host, p peer.ID, envs []Outgoing) ([]Response, error) {
	if len(envs) == 0 {
		return nil, nil
	}
	ids := make([]envelope.ID, len(envs))
	for i, e := range envs {
		if e.Kind != envelope.KindStamp && e.Kind != envelope.KindWaiver {
			return nil, fmt.Errorf("deliver: envelope %d: unknown proof kind %d", i, e.Kind)
		}
		if len(e.Proof) == 0 || len(e.Proof) > envelope.MaxProof {
			return nil, fmt.Errorf("deliver: envelope %d: proof of %d bytes (1..%d allowed)", i, len(e.Proof), envelope.MaxProof)
		}
		if len(e.Payload) == 0 {
			return nil, fmt.Errorf("deliver: envelope %d: empty payload", i)
		}
		ids[i] = envelope.IDOf(e.Payload)
	}
	s, err := h.NewStream(ctx, p, Protocol)
	if err != nil {
		return nil, fmt.Errorf("deliver: opening a stream to %s: %w", p, err)
	}
	return pipeline(ctx, s, len(envs), func(w io.Writer) error {
		for _, e := range envs {
			if err := envelope.WriteHeader(w, e.Kind, e.Proof, uint64(len(e.Payload))); err != nil {
				return err
			}
			if _, err := w.Write(e.Payload); err != nil {
				return err
			}
		}
		return nil
	}, func(r io.Reader, i int) (Response, bool, error) {
		resp, err := readResponse(r)
		if err != nil {
			return resp, false, err
		}
		switch {
		case resp.Status.Delivered() && resp.ID != ids[i]:
			return resp, false, fmt.Errorf("%w: envelope %d is %s, the response to it names %s", ErrIDMismatch, i, ids[i], resp.ID)
		case !resp.Status.Delivered() && resp.ID != zeroID && resp.ID != ids[i]:
			return resp, false, fmt.Errorf("%w: envelope %d is %s, the refusal of it names %s", ErrIDMismatch, i, ids[i], resp.ID)
		}
		// An all-zero ID: the payload was not read, the stream ends.
		return resp, resp.ID != zeroID, nil
	})
}

// pipeline runs a client stream: write, in a goroutine, writes every item
// and the stream is then half-closed; read reads the answer to item i and
// says whether the stream goes on after it. pipeline returns the answers
// read and, if there are fewer than n, why.
func pipeline[T any](ctx context.Context, s network.Stream, n int, write func(io.Writer) error, read func(r io.Reader, i int) (T, bool, error)) ([]T, error) {
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer stop()

	wdone := make(chan error, 1)
	go func() {
		bw := bufio.NewWriterSize(s, writeBuffer)
		err := write(bw)
		if err == nil {
			err = bw.Flush()
		}
		if err == nil {
			err = s.CloseWrite()
		}
		wdone <- err
	}()

	br := bufio.NewReader(s)
	out := make([]T, 0, n)
	var rerr error
	more := true
	for i := 0; i < n; i++ {
		if !more {
			rerr = fmt.Errorf("%w: it refused item %d of %d before reading it and stopped", ErrStreamEnded, i, n)
			break
		}
		var a T
		a, more, rerr = read(br, i)
		if rerr != nil {
			if errors.Is(rerr, io.EOF) {
				rerr = fmt.Errorf("%w: %d of %d answered", ErrStreamEnded, i, n)
			}
			break
		}
		out = append(out, a)
	}
	if rerr == nil && more {
		// Everything was answered, so the receiver read everything and
		// the writer is done, or about to be. A writer still blocked
		// would be waiting on a receiver that answered without reading:
		// it is not waited for.
		select {
		case werr := <-wdone:
			if werr != nil {
				s.Reset()
			} else {
				s.Close()
			}
		default:
			s.Reset()
			<-wdone
		}
		return out, nil
	}
	// The writer may be blocked on a receiver that stopped reading.
	// (A write error is the same failure seen from the other side.)
	s.Reset()
	<-wdone
	if err := ctx.Err(); err != nil {
		return out, fmt.Errorf("deliver: %w", err)
	}
	return out, rerr
}
