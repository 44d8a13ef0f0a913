package deliver

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dsep-project/dsep/node/envelope"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Many envelopes of different sizes on one stream: all acknowledged, in
// order, with their own IDs, and the policy saw the authenticated sender.
func TestPipelined(t *testing.T) {
	from, to := pair(t)
	pol := &policy{}
	newTestServer(t, to, ServerConfig{Policy: pol, PeerRate: -1, PeerBytesPerSec: -1})
	var envs []Outgoing
	for i, size := range []int{1, 100, 4096, 70000, 1 << 20} {
		envs = append(envs, outgoing(60, size)...)
		envs[len(envs)-1].Kind = envelope.Kind(1 + i%2)
	}
	resps, err := Send(testCtx(t), from, to.ID(), envs)
	if err != nil {
		t.Fatal(err)
	}
	if len(resps) != len(envs) {
		t.Fatalf("%d responses to %d envelopes", len(resps), len(envs))
	}
	for i, r := range resps {
		if r.Status != StatusStored || r.ID != envelope.IDOf(envs[i].Payload) || r.Reason != "" || r.Err() != nil {
			t.Fatalf("response %d: %+v", i, r)
		}
	}
	if _, accepted := pol.counts(t); accepted != len(envs) {
		t.Fatalf("Accept called %d times for %d envelopes", accepted, len(envs))
	}
	if n := pol.peers[from.ID()]; n != len(envs) {
		t.Fatalf("policy saw %v, want %d envelopes from %s", pol.peers, len(envs), from.ID())
	}
	for _, e := range envs {
		if !bytes.Equal(pol.stored[envelope.IDOf(e.Payload)], e.Payload) {
			t.Fatal("a payload was stored wrong")
		}
	}
}

// A header announcing a payload over the limit is answered at once, and
// the payload is never read: the sender's writes stay blocked.
func TestOversizeNotRead(t *testing.T) {
	from, to := pair(t)
	pol := &policy{}
	newTestServer(t, to, ServerConfig{Policy: pol, MaxPayload: 1 << 20})
	s := rawStream(t, from, to.ID())
	if _, err := s.Write(header(t, "1:20:260101:r::a:b", 1<<40)); err != nil {
		t.Fatal(err)
	}
	const flood = 64 << 20
	wrote := make(chan error, 1)
	go func() {
		_, err := s.Write(make([]byte, flood))
		wrote <- err
	}()
	r, err := readResponse(s)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != StatusRejected || r.ID != zeroID || !strings.Contains(r.Reason, "too large") {
		t.Fatalf("response %+v", r)
	}
	if _, err := readResponse(s); err != io.EOF {
		t.Fatalf("after the refusal: %v, want end of stream", err)
	}
	select {
	case err := <-wrote:
		t.Fatalf("the receiver consumed a %d-byte payload it refused (write: %v)", flood, err)
	default:
	}
	s.Reset()
	<-wrote
	if admitted, accepted := pol.counts(t); admitted != 0 || accepted != 0 {
		t.Fatalf("Admit %d, Accept %d times for a refused header", admitted, accepted)
	}
}

// Over the per-peer rate the envelope is answered retry with a delay,
// and the stream ends.
func TestRateLimit(t *testing.T) {
	from, to := pair(t)
	pol := &policy{}
	newTestServer(t, to, ServerConfig{Policy: pol, PeerRate: 0.5, PeerBurst: 2})
	envs := outgoing(5, 10)
	resps, err := Send(testCtx(t), from, to.ID(), envs)
	if !errors.Is(err, ErrStreamEnded) {
		t.Fatalf("Send: %v, want ErrStreamEnded", err)
	}
	if len(resps) != 3 || resps[0].Status != StatusStored || resps[1].Status != StatusStored {
		t.Fatalf("responses %+v", resps)
	}
	r := resps[2]
	if r.Status != StatusRetry || r.RetryAfter < time.Second || r.ID != zeroID || r.Reason != reasonRateLimit {
		t.Fatalf("over the rate: %+v", r)
	}
	var rf *Refusal
	if err := r.Err(); !errors.As(err, &rf) || !rf.Temporary() {
		t.Fatalf("Err() = %v", err)
	}
	if admitted, _ := pol.counts(t); admitted != 2 {
		t.Fatalf("Admit called %d times, want 2 (the limit comes first)", admitted)
	}
}

// The byte rate counts payload bytes when the header is read.
func TestByteRateLimit(t *testing.T) {
	from, to := pair(t)
	newTestServer(t, to, ServerConfig{Policy: &policy{}, PeerRate: -1, MaxPayload: 1000, PeerBytesPerSec: 1000})
	resps, err := Send(testCtx(t), from, to.ID(), outgoing(3, 600))
	if !errors.Is(err, ErrStreamEnded) || len(resps) != 2 || resps[0].Status != StatusStored || resps[1].Status != StatusRetry || resps[1].RetryAfter < time.Second {
		t.Fatalf("Send: %+v, %v", resps, err)
	}
}

// A failing Accept is answered retry with a generic reason: the error's
// text stays on the receiving node. The stream goes on.
func TestAcceptErrorIsGeneric(t *testing.T) {
	from, to := pair(t)
	secret := "badger: open /var/lib/dsep/alice/store/000042.vlog: no space left on device"
	envs := outgoing(2, 100)
	pol := &policy{accept: func(ctx context.Context, remote peer.ID, h envelope.Header, id envelope.ID, payload []byte) (bool, error) {
		if id == envelope.IDOf(envs[0].Payload) {
			return false, errors.New(secret)
		}
		return false, nil
	}}
	newTestServer(t, to, ServerConfig{Policy: pol})
	resps, err := Send(testCtx(t), from, to.ID(), envs)
	if err != nil {
		t.Fatal(err)
	}
	r := resps[0]
	if r.Status != StatusRetry || r.ID != envelope.IDOf(envs[0].Payload) || r.Reason != reasonFailure {
		t.Fatalf("response %+v", r)
	}
	if strings.Contains(r.Reason, "badger") || strings.Contains(r.Reason, "/var") {
		t.Fatalf("reason leaks internals: %q", r.Reason)
	}
	if resps[1].Status != StatusStored {
		t.Fatalf("second response %+v", resps[1])
	}
}

// Refusals from the policy go to the sender as they are: before the
// payload (Admit: zero ID, stream ends) and after it (Accept: the
// envelope's ID, stream goes on).
func TestRefusals(t *testing.T) {
	from, to := pair(t)
	pol := &policy{
		admit: func(remote peer.ID, h envelope.Header) error {
			switch string(h.Proof) {
			case "cheap":
				return &Refusal{Status: StatusRejected, Reason: "stamp refused: 20 bits paid, 22 needed"}
			case "busy":
				return &Refusal{Status: StatusRetry, Reason: "spent-stamp store unavailable", RetryAfter: 90 * time.Second}
			}
			return nil
		},
		accept: func(ctx context.Context, remote peer.ID, h envelope.Header, id envelope.ID, payload []byte) (bool, error) {
			if string(payload) == "other payload" {
				return false, errors.Join(errors.New("wrapped"), &Refusal{Status: StatusRejected, Reason: "stamp refused: it pays for another payload"})
			}
			return false, nil
		},
	}
	newTestServer(t, to, ServerConfig{Policy: pol})
	env := func(proof, payload string) Outgoing {
		return Outgoing{Kind: envelope.KindStamp, Proof: []byte(proof), Payload: []byte(payload)}
	}
	tests := []struct {
		name string
		envs []Outgoing
		want []Response
		err  error
	}{
		{"after the payload", []Outgoing{env("ok", "other payload"), env("ok", "fine")}, []Response{
			{Status: StatusRejected, ID: envelope.IDOf([]byte("other payload")), Reason: "stamp refused: it pays for another payload"},
			{Status: StatusStored, ID: envelope.IDOf([]byte("fine"))},
		}, nil},
		{"admit rejects", []Outgoing{env("ok", "one"), env("cheap", "two"), env("ok", "three")}, []Response{
			{Status: StatusStored, ID: envelope.IDOf([]byte("one"))},
			{Status: StatusRejected, Reason: "stamp refused: 20 bits paid, 22 needed"},
		}, ErrStreamEnded},
		{"admit says retry", []Outgoing{env("busy", "four")}, []Response{
			{Status: StatusRetry, Reason: "spent-stamp store unavailable", RetryAfter: 90 * time.Second},
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resps, err := Send(testCtx(t), from, to.ID(), tt.envs)
			if !errors.Is(err, tt.err) || (tt.err == nil && err != nil) {
				t.Fatalf("Send: %v, want %v", err, tt.err)
			}
			if len(resps) != len(tt.want) {
				t.Fatalf("responses %+v, want %+v", resps, tt.want)
			}
			for i := range resps {
				if resps[i] != tt.want[i] {
					t.Errorf("response %d: %+v, want %+v", i, resps[i], tt.want[i])
				}
			}
		})
	}
	if _, accepted := pol.counts(t); accepted != 3 {
		t.Fatalf("Accept called %d times, want 3 (never for an envelope Admit refused)", accepted)
	}
}

// A policy that panics costs its stream, not the process.
func TestPolicyPanics(t *testing.T) {
	from, to := pair(t)
	pol := &policy{
		admit: func(remote peer.ID, h envelope.Header) error {
			if string(h.Proof) == "boom" {
				panic("admit")
			}
			return nil
		},
		accept: func(ctx context.Context, remote peer.ID, h envelope.Header, id envelope.ID, payload []byte) (bool, error) {
			if string(payload) == "boom" {
				panic("accept")
			}
			return false, nil
		},
	}
	newTestServer(t, to, ServerConfig{Policy: pol})
	envs := []Outgoing{
		{Kind: envelope.KindStamp, Proof: []byte("p"), Payload: []byte("boom")},
		{Kind: envelope.KindStamp, Proof: []byte("p"), Payload: []byte("fine")},
		{Kind: envelope.KindStamp, Proof: []byte("boom"), Payload: []byte("x")},
	}
	resps, err := Send(testCtx(t), from, to.ID(), envs)
	if err != nil {
		t.Fatal(err)
	}
	want := []Status{StatusRetry, StatusStored, StatusRetry}
	for i, r := range resps {
		if r.Status != want[i] || (r.Status == StatusRetry && r.Reason != reasonFailure) {
			t.Errorf("response %d: %+v", i, r)
		}
	}
}

// A stream that ends inside an envelope gets no acknowledgement, and
// Accept is never called.
func TestTruncated(t *testing.T) {
	for _, tt := range []struct {
		name string
		cut  func(t *testing.T) []byte
	}{
		{"in the header", func(t *testing.T) []byte { return header(t, "1:20:260101:r::a:b", 1000)[:7] }},
		{"in the payload", func(t *testing.T) []byte {
			return append(header(t, "1:20:260101:r::a:b", 1000), make([]byte, 500)...)
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			from, to := pair(t)
			pol := &policy{}
			newTestServer(t, to, ServerConfig{Policy: pol})
			s := rawStream(t, from, to.ID())
			if _, err := s.Write(tt.cut(t)); err != nil {
				t.Fatal(err)
			}
			if err := s.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			for {
				r, err := readResponse(s)
				if err != nil {
					break
				}
				if r.Status != StatusRetry || r.ID != zeroID || r.Reason != reasonCutShort {
					t.Fatalf("a cut envelope was answered %+v", r)
				}
			}
			if _, accepted := pol.counts(t); accepted != 0 {
				t.Fatalf("Accept called %d times for a cut envelope", accepted)
			}
		})
	}
}

// A malformed header is rejected, with the zero ID, and ends the stream.
func TestBadHeaders(t *testing.T) {
	from, to := pair(t)
	pol := &policy{}
	newTestServer(t, to, ServerConfig{Policy: pol})
	good := append(header(t, "p", 2), "hi"...)
	for _, tt := range []struct {
		name   string
		in     []byte
		reason string
	}{
		{"version 2", append([]byte{2}, good[1:]...), "unsupported envelope version 2: this node speaks version 1"},
		{"unknown kind", append([]byte{1, 7}, good[2:]...), reasonMalformed},
		{"empty proof", []byte{1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 'x'}, reasonMalformed},
		{"empty payload", []byte{1, 1, 0, 1, 'p', 0, 0, 0, 0, 0, 0, 0, 0}, reasonMalformed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := rawStream(t, from, to.ID())
			if _, err := s.Write(append(append([]byte{}, good...), tt.in...)); err != nil {
				t.Fatal(err)
			}
			// The good envelope first (stored by the first subtest).
			if r, err := readResponse(s); err != nil || !r.Status.Delivered() || r.ID != envelope.IDOf([]byte("hi")) {
				t.Fatalf("response to the good envelope: %+v, %v", r, err)
			}
			want := Response{Status: StatusRejected, Reason: tt.reason}
			if r, err := readResponse(s); err != nil || r != want {
				t.Fatalf("response to the bad header: %+v, %v; want %+v", r, err, want)
			}
			if _, err := readResponse(s); err != io.EOF {
				t.Fatalf("after the refusal: %v, want end of stream", err)
			}
		})
	}
	if admitted, _ := pol.counts(t); admitted != 4 {
		t.Fatalf("Admit called %d times, want 4 (only for the good envelopes)", admitted)
	}
}

// A sender that stalls inside an envelope is cut off after the read
// timeout, answered retry, and its envelope never reaches Accept.
func TestSlowSender(t *testing.T) {
	from, to := pair(t)
	pol := &policy{}
	newTestServer(t, to, ServerConfig{Policy: pol, ReadTimeout: 100 * time.Millisecond})
	for _, cut := range []int{3, 30} { // in the header, in the payload
		s := rawStream(t, from, to.ID())
		if _, err := s.Write(append(header(t, "p", 100), make([]byte, 10)...)[:cut]); err != nil {
			t.Fatal(err)
		}
		r, err := readResponse(s)
		if err != nil || r != (Response{Status: StatusRetry, Reason: reasonCutShort}) {
			t.Fatalf("stalled at byte %d: %+v, %v", cut, r, err)
		}
		if _, err := readResponse(s); err != io.EOF {
			t.Fatalf("after the timeout: %v, want end of stream", err)
		}
	}
	if _, accepted := pol.counts(t); accepted != 0 {
		t.Fatalf("Accept called %d times", accepted)
	}
}

// The acknowledgement is written only after Accept returned.
func TestAckAfterAccept(t *testing.T) {
	from, to := pair(t)
	entered := make(chan struct{})
	release := make(chan struct{})
	var released atomic.Bool
	pol := &policy{accept: func(ctx context.Context, remote peer.ID, h envelope.Header, id envelope.ID, payload []byte) (bool, error) {
		close(entered)
		if !wait(ctx, release) {
			return false, ctx.Err()
		}
		released.Store(true)
		return false, nil
	}}
	newTestServer(t, to, ServerConfig{Policy: pol})
	s := rawStream(t, from, to.ID())
	if _, err := s.Write(append(header(t, "p", 2), "hi"...)); err != nil {
		t.Fatal(err)
	}
	got := make(chan Response, 1)
	go func() {
		r, _ := readResponse(s)
		if !released.Load() {
			r.Reason = "acknowledged before Accept returned"
		}
		got <- r
	}()
	<-entered
	// Give an early acknowledgement time to arrive.
	time.Sleep(200 * time.Millisecond)
	select {
	case r := <-got:
		t.Fatalf("response %+v while Accept is still running", r)
	default:
	}
	close(release)
	r := <-got
	if r.Status != StatusStored || r.ID != envelope.IDOf([]byte("hi")) || r.Reason != "" {
		t.Fatalf("response %+v", r)
	}
}

// An envelope already stored is acknowledged again as a duplicate, in the
// same stream and in a later one.
func TestDuplicate(t *testing.T) {
	from, to := pair(t)
	newTestServer(t, to, ServerConfig{Policy: &policy{}})
	env := outgoing(1, 300)[0]
	id := envelope.IDOf(env.Payload)
	// The server may run the Accepts of one stream concurrently: which of
	// the two copies is stored first is not fixed.
	resps, err := Send(testCtx(t), from, to.ID(), []Outgoing{env, env})
	if err != nil {
		t.Fatal(err)
	}
	if len(resps) != 2 || resps[0].ID != id || resps[1].ID != id ||
		!(resps[0].Status == StatusStored && resps[1].Status == StatusDuplicate ||
			resps[0].Status == StatusDuplicate && resps[1].Status == StatusStored) {
		t.Fatalf("responses %+v", resps)
	}
	resps, err = Send(testCtx(t), from, to.ID(), []Outgoing{env})
	if err != nil || resps[0] != (Response{Status: StatusDuplicate, ID: id}) || resps[0].Err() != nil {
		t.Fatalf("retry: %+v, %v", resps, err)
	}
}

// A receiver that acknowledges another message ID than the envelope's
// makes Send fail; the answered prefix before it is kept.
func TestIDMismatch(t *testing.T) {
	for _, tt := range []struct {
		name string
		lie  Response
	}{
		{"stored, other ID", Response{Status: StatusStored, ID: envelope.IDOf([]byte("something else"))}},
		{"duplicate, zero ID", Response{Status: StatusDuplicate}},
		{"rejected, other ID", Response{Status: StatusRejected, ID: envelope.IDOf([]byte("x")), Reason: "no"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			from, to := pair(t)
			served := make(chan struct{})
			to.SetStreamHandler(Protocol, func(s network.Stream) {
				defer close(served)
				defer s.Close()
				for i := 0; ; i++ {
					h, err := envelope.ReadHeader(s, 0)
					if err != nil {
						return
					}
					id, err := envelope.Payload(s, h, io.Discard)
					if err != nil {
						return
					}
					r := Response{Status: StatusStored, ID: id}
					if i == 1 {
						r = tt.lie
					}
					s.Write(appendResponse(nil, r))
				}
			})
			envs := outgoing(3, 50)
			resps, err := Send(testCtx(t), from, to.ID(), envs)
			if !errors.Is(err, ErrIDMismatch) {
				t.Fatalf("Send: %v, want ErrIDMismatch", err)
			}
			if len(resps) != 1 || resps[0].ID != envelope.IDOf(envs[0].Payload) {
				t.Fatalf("responses %+v", resps)
			}
			<-served
		})
	}
}

// Send checks its envelopes before opening a stream.
func TestSendChecks(t *testing.T) {
	from, to := pair(t)
	for _, e := range []Outgoing{
		{Kind: 9, Proof: []byte("p"), Payload: []byte("x")},
		{Kind: envelope.KindStamp, Payload: []byte("x")},
		{Kind: envelope.KindStamp, Proof: make([]byte, envelope.MaxProof+1), Payload: []byte("x")},
		{Kind: envelope.KindStamp, Proof: []byte("p")},
	} {
		if _, err := Send(testCtx(t), from, to.ID(), []Outgoing{e}); err == nil {
			t.Errorf("Send accepted %+v", e)
		}
	}
	if r, err := Send(testCtx(t), from, to.ID(), nil); r != nil || err != nil {
		t.Errorf("Send of nothing: %v, %v", r, err)
	}
	// A peer that does not speak the protocol.
	if _, err := Send(testCtx(t), from, to.ID(), outgoing(1, 1)); err == nil {
		t.Error("Send to a peer without a deliver server succeeded")
	}
}

// A peer over its stream limit is told to retry at once.
func TestStreamLimit(t *testing.T) {
	from, to := pair(t)
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	pol := &policy{accept: func(ctx context.Context, remote peer.ID, h envelope.Header, id envelope.ID, payload []byte) (bool, error) {
		select {
		case entered <- struct{}{}:
		default:
		}
		if !wait(ctx, release) {
			return false, ctx.Err()
		}
		return false, nil
	}}
	newTestServer(t, to, ServerConfig{Policy: pol, MaxStreamsPerPeer: 1})
	first := make(chan error, 1)
	go func() {
		_, err := Send(testCtx(t), from, to.ID(), outgoing(1, 10))
		first <- err
	}()
	<-entered
	resps, err := Send(testCtx(t), from, to.ID(), outgoing(2, 10))
	if !errors.Is(err, ErrStreamEnded) || len(resps) != 1 {
		t.Fatalf("second stream: %+v, %v", resps, err)
	}
	if r := resps[0]; r.Status != StatusRetry || r.Reason != reasonStreams || r.RetryAfter != busyRetry {
		t.Fatalf("second stream: %+v", r)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
}

// Over the memory budget an envelope is answered retry before its payload
// is read.
func TestInflightBudget(t *testing.T) {
	from, to := pair(t)
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	pol := &policy{accept: func(ctx context.Context, remote peer.ID, h envelope.Header, id envelope.ID, payload []byte) (bool, error) {
		select {
		case entered <- struct{}{}:
		default:
		}
		if !wait(ctx, release) {
			return false, ctx.Err()
		}
		return false, nil
	}}
	newTestServer(t, to, ServerConfig{Policy: pol, MaxPayload: 1000, MaxInflightBytes: 1500})
	first := make(chan error, 1)
	go func() {
		_, err := Send(testCtx(t), from, to.ID(), outgoing(1, 1000))
		first <- err
	}()
	<-entered
	resps, err := Send(testCtx(t), from, to.ID(), outgoing(1, 1000))
	if err != nil || resps[0].Status != StatusRetry || resps[0].Reason != reasonBusy || resps[0].ID != zeroID {
		t.Fatalf("over the budget: %+v, %v", resps, err)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if resps, err := Send(testCtx(t), from, to.ID(), outgoing(1, 1000)); err != nil || resps[0].Status != StatusStored {
		t.Fatalf("after the budget was freed: %+v, %v", resps, err)
	}
}

// Shutdown lets an envelope in Accept finish and be acknowledged; Close
// cancels Accept's context and returns once it has.
func TestShutdownAndClose(t *testing.T) {
	t.Run("shutdown", func(t *testing.T) {
		from, to := pair(t)
		entered := make(chan struct{}, 1)
		release := make(chan struct{})
		pol := &policy{accept: func(ctx context.Context, remote peer.ID, h envelope.Header, id envelope.ID, payload []byte) (bool, error) {
			select {
			case entered <- struct{}{}:
			default:
			}
			if !wait(ctx, release) {
				return false, ctx.Err()
			}
			return false, nil
		}}
		srv := newTestServer(t, to, ServerConfig{Policy: pol})
		sent := make(chan []Response, 1)
		go func() {
			resps, _ := Send(testCtx(t), from, to.ID(), outgoing(1, 10))
			sent <- resps
		}()
		<-entered
		done := make(chan error, 1)
		go func() { done <- srv.Shutdown(testCtx(t)) }()
		close(release)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if resps := <-sent; len(resps) != 1 || resps[0].Status != StatusStored {
			t.Fatalf("in flight during shutdown: %+v", resps)
		}
		if _, err := Send(testCtx(t), from, to.ID(), outgoing(1, 10)); err == nil {
			t.Fatal("Send succeeded after Shutdown")
		}
	})
	t.Run("close", func(t *testing.T) {
		from, to := pair(t)
		entered := make(chan struct{}, 1)
		pol := &policy{accept: func(ctx context.Context, remote peer.ID, h envelope.Header, id envelope.ID, payload []byte) (bool, error) {
			select {
			case entered <- struct{}{}:
			default:
			}
			<-ctx.Done()
			return false, ctx.Err()
		}}
		srv := newTestServer(t, to, ServerConfig{Policy: pol})
		sent := make(chan error, 1)
		go func() {
			resps, err := Send(testCtx(t), from, to.ID(), outgoing(1, 10))
			if err == nil && resps[0].Status.Delivered() {
				err = errors.New("acknowledged")
			} else {
				err = nil
			}
			sent <- err
		}()
		<-entered
		if err := srv.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-sent; err != nil {
			t.Fatal("an envelope whose Accept failed was " + err.Error())
		}
	})
}

func TestNewServerChecks(t *testing.T) {
	h := newHost(t)
	for _, cfg := range []ServerConfig{
		{},
		{Policy: &policy{}, MaxPayload: 1 << 20, MaxInflightBytes: 1 << 10},
	} {
		if _, err := NewServer(h, cfg); err == nil {
			t.Errorf("NewServer accepted %+v", cfg)
		}
	}
	if _, err := NewServer(nil, ServerConfig{Policy: &policy{}}); err == nil {
		t.Error("NewServer accepted a nil host")
	}
}
