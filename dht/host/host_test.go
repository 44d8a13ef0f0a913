package host

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	p2phost "github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	ma "github.com/multiformats/go-multiaddr"
)

// TestMain fails the package if goroutines outlive the closed hosts.
func TestMain(m *testing.M) {
	base := runtime.NumGoroutine()
	code := m.Run()
	if code == 0 {
		deadline := time.Now().Add(20 * time.Second)
		for runtime.NumGoroutine() > base+5 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if g := runtime.NumGoroutine(); g > base+5 {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			fmt.Fprintf(os.Stderr, "goroutine leak: %d goroutines after all tests, %d before\n%s\n", g, base, buf)
			code = 1
		}
	}
	os.Exit(code)
}

func newKey(t *testing.T) crypto.PrivKey {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newHost(t *testing.T, cfg Config) p2phost.Host {
	t.Helper()
	if cfg.Key == nil {
		cfg.Key = newKey(t)
	}
	h, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// addrsWith returns the host's addresses that contain protocol code.
func addrsWith(h p2phost.Host, code int) []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, a := range h.Addrs() {
		if _, err := a.ValueForProtocol(code); err == nil {
			out = append(out, a)
		}
	}
	return out
}

func TestConnectTLS(t *testing.T) {
	listen := []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}
	for _, tc := range []struct {
		name      string
		code      int
		transport string
		security  string // "" for QUIC: TLS 1.3 is built into the transport
	}{
		{"tcp", ma.P_TCP, "tcp", "/tls/1.0.0"},
		{"quic", ma.P_QUIC_V1, "quic-v1", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newHost(t, Config{Listen: listen}) // Production limits
			b := newHost(t, Config{Listen: listen, Limits: Testnet})
			addrs := addrsWith(b, tc.code)
			if len(addrs) == 0 {
				t.Fatalf("b listens on %v: no %s address", b.Addrs(), tc.name)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: addrs}); err != nil {
				t.Fatal(err)
			}
			conns := a.Network().ConnsToPeer(b.ID())
			if len(conns) != 1 {
				t.Fatalf("%d connections to b, want 1", len(conns))
			}
			c := conns[0]
			st := c.ConnState()
			if st.Transport != tc.transport {
				t.Errorf("transport %q, want %q", st.Transport, tc.transport)
			}
			if string(st.Security) != tc.security {
				t.Errorf("security %q, want %q", st.Security, tc.security)
			}
			if c.RemotePeer() != b.ID() {
				t.Errorf("remote peer %s, want %s", c.RemotePeer(), b.ID())
			}
			if !c.RemotePublicKey().Equals(b.Peerstore().PubKey(b.ID())) {
				t.Error("remote public key is not b's key")
			}
			// The session works: b sees a and the identify exchange ran.
			deadline := time.Now().Add(10 * time.Second)
			for {
				ua, _ := b.Peerstore().Get(a.ID(), "AgentVersion")
				if s, _ := ua.(string); strings.HasPrefix(s, "dsep/") {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("b never learnt a's user agent (got %v)", ua)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

func TestOnlyTLS(t *testing.T) {
	h := newHost(t, Config{Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Limits: Testnet})
	if len(addrsWith(h, ma.P_QUIC_V1)) != 0 {
		t.Errorf("TCP-only listen config listens on QUIC: %v", h.Addrs())
	}
	for _, p := range h.Mux().Protocols() {
		if strings.Contains(string(p), "relay") {
			t.Errorf("relay protocol %s is served", p)
		}
	}
	// A peer that speaks only Noise cannot connect, in either direction.
	noisy, err := libp2p.New(
		libp2p.Security(noise.ID, noise.New),
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
		libp2p.DisableRelay(), libp2p.DisableMetrics())
	if err != nil {
		t.Fatal(err)
	}
	defer noisy.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := noisy.Connect(ctx, peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()}); err == nil {
		t.Error("a Noise-only peer connected to the host")
	}
	if err := h.Connect(ctx, peer.AddrInfo{ID: noisy.ID(), Addrs: noisy.Addrs()}); err == nil {
		t.Error("the host connected to a Noise-only peer")
	}
}

func TestPeerIDMismatch(t *testing.T) {
	for _, proto := range []string{"tcp", "quic-v1"} {
		t.Run(proto, func(t *testing.T) {
			listen := []string{"/ip4/127.0.0.1/tcp/0"}
			code := ma.P_TCP
			if proto == "quic-v1" {
				listen = []string{"/ip4/127.0.0.1/udp/0/quic-v1"}
				code = ma.P_QUIC_V1
			}
			a := newHost(t, Config{Listen: listen, Limits: Testnet})
			b := newHost(t, Config{Listen: listen, Limits: Testnet})
			impostor, err := peer.IDFromPrivateKey(newKey(t))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			// b answers at the address, but cannot prove impostor's key.
			err = a.Connect(ctx, peer.AddrInfo{ID: impostor, Addrs: addrsWith(b, code)})
			if err == nil {
				t.Fatal("connected to a peer that does not hold the dialled peer ID's key")
			}
			if !strings.Contains(err.Error(), "peer id mismatch") {
				t.Errorf("error %q does not say \"peer id mismatch\"", err)
			}
			if n := len(a.Network().ConnsToPeer(b.ID())); n != 0 {
				t.Errorf("%d connections to b left open", n)
			}
		})
	}
}

func TestNewErrors(t *testing.T) {
	ctx := context.Background()
	rsa, _, err := crypto.GenerateRSAKeyPair(2048, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no key", Config{}, "no node key"},
		{"rsa key", Config{Key: rsa}, "want Ed25519"},
		{"bad listen", Config{Key: newKey(t), Listen: []string{"/ip4/nonsense"}}, "listen address"},
		{"bad announce", Config{Key: newKey(t), Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Announce: []string{"x"}}, "announce address"},
		{"watermarks", Config{Key: newKey(t), ConnLow: 50, ConnHigh: 10}, "below ConnLow"},
		{"limits", Config{Key: newKey(t), Limits: 7}, "unknown limits"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := New(ctx, tc.cfg)
			if err == nil {
				h.Close()
				t.Fatal("New succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
	if _, err := New(ctx, Config{}); !errors.Is(err, ErrNoKey) {
		t.Errorf("nil key: %v, want ErrNoKey", err)
	}
}

// A second host on a port already in use fails rather than sharing the
// port (go-libp2p's TCP transport uses SO_REUSEPORT unless told not to).
func TestListenBusy(t *testing.T) {
	a := newHost(t, Config{Listen: []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}, Limits: Testnet})
	for _, code := range []int{ma.P_TCP, ma.P_QUIC_V1} {
		busy := addrsWith(a, code)[0].String()
		h, err := New(context.Background(), Config{Key: newKey(t), Listen: []string{busy}})
		if err == nil {
			h.Close()
			t.Errorf("second listener on %s started", busy)
		}
	}
}

func TestAnnounce(t *testing.T) {
	ann := "/ip4/192.0.2.7/tcp/4101"
	h := newHost(t, Config{Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Announce: []string{ann}, Limits: Testnet})
	got := h.Addrs()
	if len(got) != 1 || got[0].String() != ann {
		t.Errorf("announced %v, want [%s]", got, ann)
	}
}

func TestUserAgent(t *testing.T) {
	a := newHost(t, Config{Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Limits: Testnet, Version: "1.2.3"})
	b := newHost(t, Config{Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Limits: Testnet})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Connect(ctx, peer.AddrInfo{ID: a.ID(), Addrs: a.Addrs()}); err != nil {
		t.Fatal(err)
	}
	for {
		ua, _ := b.Peerstore().Get(a.ID(), "AgentVersion")
		if ua == "dsep/1.2.3" {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("user agent %v, want dsep/1.2.3", ua)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestLoadOrCreateKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	path := filepath.Join(dir, "node.key")
	k1, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if k1.Type() != crypto.Ed25519 {
		t.Fatalf("key type %v", k1.Type())
	}
	for p, want := range map[string]os.FileMode{dir: 0o700, path: 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s mode %04o, want %04o", p, fi.Mode().Perm(), want)
		}
	}
	k2, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if !k1.Equals(k2) {
		t.Fatal("second load returned a different key")
	}
	// The file is libp2p's marshalled form.
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := crypto.MarshalPrivateKey(k1)
	if !bytes.Equal(b, want) {
		t.Error("file is not crypto.MarshalPrivateKey of the key")
	}
	// No temporary files are left behind.
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("directory holds %d entries, want only the key", len(ents))
	}
}

func TestLoadOrCreateKeyRefuses(t *testing.T) {
	dir := t.TempDir()
	good, err := LoadOrCreateKey(filepath.Join(dir, "good.key"))
	if err != nil {
		t.Fatal(err)
	}
	goodBytes, _ := crypto.MarshalPrivateKey(good)
	rsa, _, _ := crypto.GenerateRSAKeyPair(2048, rand.Reader)
	rsaBytes, _ := crypto.MarshalPrivateKey(rsa)

	for _, tc := range []struct {
		name    string
		content []byte
		mode    os.FileMode
		want    string
		is      error
	}{
		{"world readable", goodBytes, 0o644, "chmod 600", ErrKeyPermissions},
		{"group readable", goodBytes, 0o640, "chmod 600", ErrKeyPermissions},
		{"corrupt", []byte("not a key"), 0o600, "corrupt", nil},
		{"empty", nil, 0o600, "corrupt", nil},
		{"rsa", rsaBytes, 0o600, "want Ed25519", nil},
		{"huge", make([]byte, maxKeyFile+1), 0o600, "over", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
			if err := os.WriteFile(p, tc.content, tc.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, tc.mode); err != nil { // umask
				t.Fatal(err)
			}
			k, err := LoadOrCreateKey(p)
			if err == nil {
				t.Fatalf("loaded %v", k.Type())
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v is not %v", err, tc.is)
			}
			// The refused file is left alone, never replaced.
			b, _ := os.ReadFile(p)
			if !bytes.Equal(b, tc.content) {
				t.Error("refused key file was modified")
			}
		})
	}
	t.Run("directory", func(t *testing.T) {
		if _, err := LoadOrCreateKey(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("loading a directory: %v", err)
		}
	})
}

func TestLoadOrCreateKeyConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.key")
	const n = 8
	keys := make([]crypto.PrivKey, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { keys[i], errs[i] = LoadOrCreateKey(path) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if !keys[i].Equals(keys[0]) {
			t.Fatal("concurrent first uses returned different keys")
		}
	}
	k, err := LoadOrCreateKey(path)
	if err != nil || !k.Equals(keys[0]) {
		t.Fatalf("stored key differs from the returned one (%v)", err)
	}
}
