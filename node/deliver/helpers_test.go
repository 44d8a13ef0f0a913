package deliver

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	dsephost "github.com/dsep-project/dsep/dht/host"
	"github.com/dsep-project/dsep/node/envelope"
	"github.com/dsep-project/dsep/testnet/testtool"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
)

// TestMain fails the package if goroutines (stream handlers, writers,
// Accept calls) outlive the tests.
func TestMain(m *testing.M) { testtool.Main(m, 0, 10*time.Second) }

// newHost starts a TLS-only host on 127.0.0.1 with testnet limits.
func newHost(t testing.TB) host.Host {
	t.Helper()
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	h, err := dsephost.New(context.Background(), dsephost.Config{
		Key: key, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Limits: dsephost.Testnet,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// pair returns a sending and a receiving host; the sender knows the
// receiver's addresses.
func pair(t testing.TB) (from, to host.Host) {
	t.Helper()
	from, to = newHost(t), newHost(t)
	from.Peerstore().AddAddrs(to.ID(), to.Addrs(), peerstore.PermanentAddrTTL)
	return from, to
}

// newTestServer starts a deliver server on h; it is closed at cleanup
// (before h, cleanups running last-in first-out).
func newTestServer(t testing.TB, h host.Host, cfg ServerConfig) *Server {
	t.Helper()
	s, err := NewServer(h, cfg)
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

// policy is a Policy for tests: it stores payloads in memory, reports a
// duplicate for an ID seen before, and lets a test replace either step.
type policy struct {
	admit  func(remote peer.ID, h envelope.Header) error
	accept func(ctx context.Context, remote peer.ID, h envelope.Header, id envelope.ID, payload []byte) (bool, error)

	mu       sync.Mutex // guards the fields below
	admitted int
	accepted int
	stored   map[envelope.ID][]byte
	peers    map[peer.ID]int
	bad      []string // contract violations seen
}

func (p *policy) Admit(remote peer.ID, h envelope.Header) error {
	p.mu.Lock()
	p.admitted++
	p.mu.Unlock()
	if p.admit != nil {
		return p.admit(remote, h)
	}
	return nil
}

func (p *policy) Accept(ctx context.Context, remote peer.ID, h envelope.Header, id envelope.ID, payload []byte) (bool, error) {
	p.mu.Lock()
	p.accepted++
	if uint64(len(payload)) != h.PayloadLen || envelope.IDOf(payload) != id {
		p.bad = append(p.bad, fmt.Sprintf("Accept got %d bytes, header says %d, ID %s", len(payload), h.PayloadLen, id))
	}
	if p.peers == nil {
		p.peers = make(map[peer.ID]int)
	}
	p.peers[remote]++
	p.mu.Unlock()
	if p.accept != nil {
		return p.accept(ctx, remote, h, id, payload)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stored == nil {
		p.stored = make(map[envelope.ID][]byte)
	}
	if _, ok := p.stored[id]; ok {
		return true, nil
	}
	p.stored[id] = payload
	return false, nil
}

// counts returns how often Admit and Accept were called, failing t on any
// contract violation seen.
func (p *policy) counts(t testing.TB) (admitted, accepted int) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, b := range p.bad {
		t.Error(b)
	}
	return p.admitted, p.accepted
}

// outgoing returns n envelopes with distinct payloads of size bytes (a
// size under 8 bytes holds at most 256^size of them).
func outgoing(n, size int) []Outgoing {
	envs := make([]Outgoing, n)
	for i := range envs {
		p := make([]byte, size)
		rand.Read(p)
		if size <= 8 {
			// Too short to be unique by chance: unique in this batch.
			var n [8]byte
			binary.BigEndian.PutUint64(n[:], uint64(i))
			copy(p, n[8-size:])
		}
		envs[i] = Outgoing{Kind: envelope.KindStamp, Proof: []byte(fmt.Sprintf("1:20:260101:r::%d:0", i)), Payload: p}
	}
	return envs
}

// rawStream opens a deliver stream to p by hand, for tests that break the
// protocol; it is reset at cleanup.
func rawStream(t testing.TB, from host.Host, to peer.ID) interface {
	io.ReadWriter
	CloseWrite() error
	Reset() error
} {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := from.NewStream(ctx, to, Protocol)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Reset() })
	return s
}

// header returns the bytes of an envelope header.
func header(t testing.TB, proof string, n uint64) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := envelope.WriteHeader(&b, envelope.KindStamp, []byte(proof), n); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// testCtx is a context for one exchange in a test.
func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// fakeConn is a conn over a byte slice for fuzzing the servers: reads
// come from in, writes go to out; deadlines are ignored.
type fakeConn struct {
	mu     sync.Mutex // guards everything below
	in     *bytes.Reader
	out    bytes.Buffer
	closed bool // read side
	ended  string
}

var errFakeClosed = errors.New("fake conn: read side closed")

func (f *fakeConn) Read(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return 0, errFakeClosed
	}
	return f.in.Read(p)
}

func (f *fakeConn) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ended != "" {
		return 0, errFakeClosed
	}
	return f.out.Write(p)
}

func (f *fakeConn) SetReadDeadline(time.Time) error  { return nil }
func (f *fakeConn) SetWriteDeadline(time.Time) error { return nil }

func (f *fakeConn) CloseRead() error {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	return nil
}

func (f *fakeConn) Close() error { return f.end("close") }
func (f *fakeConn) Reset() error { return f.end("reset") }

func (f *fakeConn) end(how string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ended == "" {
		f.ended = how
	}
	f.closed = true
	return nil
}

// wait waits for ch to close or ctx to end, and reports whether ch closed.
// Blocking policies use it so that a failed test's Close cannot hang.
func wait(ctx context.Context, ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	case <-ctx.Done():
		return false
	}
}
