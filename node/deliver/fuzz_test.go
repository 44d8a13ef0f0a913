package deliver

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/dsep-project/dsep/node/envelope"
	"github.com/libp2p/go-libp2p/core/peer"
)

// fuzzPeer is the remote peer of the fuzzed streams.
const fuzzPeer = peer.ID("fuzz")

// fuzzPolicy refuses by the proof's first byte and stores the rest.
type fuzzPolicy struct{ policy }

func newFuzzPolicy() *fuzzPolicy {
	p := &fuzzPolicy{}
	p.admit = func(remote peer.ID, h envelope.Header) error {
		switch h.Proof[0] {
		case 'r':
			return &Refusal{Status: StatusRejected, Reason: "refused\n\xff"}
		case 't':
			return &Refusal{Status: StatusRetry, RetryAfter: 1 << 62}
		case 'e':
			return errors.New("internal")
		case 'p':
			panic("admit")
		}
		return nil
	}
	return p
}

// FuzzServe feeds arbitrary bytes to the deliver stream handler. It must
// not panic or hang, must hold at most MaxPayload per envelope, and must
// answer with well-formed responses only, at most one per envelope, never
// acknowledging an envelope it did not read whole.
func FuzzServe(f *testing.F) {
	env := func(proof string, payload []byte) []byte {
		var b bytes.Buffer
		envelope.WriteHeader(&b, envelope.KindStamp, []byte(proof), uint64(len(payload)))
		b.Write(payload)
		return b.Bytes()
	}
	f.Add(env("ok", []byte("hi")))
	f.Add(append(env("ok", []byte("one")), env("ok", []byte("one"))...))
	f.Add(append(env("ok", []byte("a")), env("r", []byte("b"))...))
	f.Add(env("t", []byte("x")))
	f.Add(env("e", []byte("x")))
	f.Add(env("p", []byte("x")))
	f.Add(env("ok", make([]byte, 70000)))
	f.Add(env("ok", []byte("cut"))[:10])
	f.Add([]byte{1, 2, 0, 1, 'x', 0xff, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{9})
	f.Fuzz(func(t *testing.T, in []byte) {
		pol := newFuzzPolicy()
		srv, err := newServer(ServerConfig{Policy: pol, MaxPayload: 64 << 10, MaxInflightBytes: 256 << 10, PeerRate: -1})
		if err != nil {
			t.Fatal(err)
		}
		c := &fakeConn{in: bytes.NewReader(in)}
		srv.serve(context.Background(), c, fuzzPeer)
		if c.ended == "" {
			t.Fatal("the stream was neither closed nor reset")
		}
		if srv.inflight.used != 0 {
			t.Fatalf("%d payload bytes still counted in flight", srv.inflight.used)
		}
		// Replay the input to know which envelopes were whole.
		var whole []envelope.ID
		r := bytes.NewReader(in)
		for {
			h, err := envelope.ReadHeader(r, 64<<10)
			if err != nil {
				break
			}
			id, err := envelope.Payload(r, h, io.Discard)
			if err != nil {
				break
			}
			whole = append(whole, id)
		}
		out := bytes.NewReader(c.out.Bytes())
		for i := 0; ; i++ {
			resp, err := readResponse(out)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("response %d malformed: %v", i, err)
			}
			if resp.ID != zeroID && (i >= len(whole) || resp.ID != whole[i]) {
				t.Fatalf("response %d names %s, not a whole envelope at that place", i, resp.ID)
			}
			if resp.Status.Delivered() && resp.ID == zeroID {
				t.Fatalf("response %d acknowledges without an ID", i)
			}
		}
		_, accepted := pol.counts(t)
		if accepted > len(whole) {
			t.Fatalf("Accept called %d times for %d whole envelopes", accepted, len(whole))
		}
	})
}

// FuzzServeReceipts feeds arbitrary bytes to the receipt stream handler:
// no panic, one status byte per whole receipt at most, each valid.
func FuzzServeReceipts(f *testing.F) {
	frame := func(rs ...string) []byte {
		var b []byte
		for _, r := range rs {
			b, _ = appendReceipt(b, []byte(r))
		}
		return b
	}
	f.Add(frame("r1", "forged", "later", "broken", "panic"))
	f.Add(append(frame("ok"), 0xff, 0xff))
	f.Add([]byte{0, 0})
	f.Add([]byte{0, 5, 'a'})
	f.Fuzz(func(t *testing.T, in []byte) {
		sk := &sink{}
		srv, err := newReceiptServer(sk.take, ReceiptConfig{PeerRate: -1})
		if err != nil {
			t.Fatal(err)
		}
		c := &fakeConn{in: bytes.NewReader(in)}
		srv.serve(context.Background(), c, fuzzPeer)
		if c.ended == "" {
			t.Fatal("the stream was neither closed nor reset")
		}
		if c.out.Len() > len(in)/3+1 {
			t.Fatalf("%d statuses for %d input bytes", c.out.Len(), len(in))
		}
		for _, b := range c.out.Bytes() {
			if ReceiptStatus(b) > ReceiptRetry {
				t.Fatalf("status %d", b)
			}
		}
		if len(sk.got) > c.out.Len() {
			t.Fatalf("the sink took %d receipts, %d answered", len(sk.got), c.out.Len())
		}
	})
}
