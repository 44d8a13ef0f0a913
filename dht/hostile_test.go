package dht_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"slices"
	"sync"
	"testing"
	"time"

	pb "github.com/libp2p/go-libp2p-kad-dht/pb"
	kb "github.com/libp2p/go-libp2p-kbucket"
	recpb "github.com/libp2p/go-libp2p-record/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	p2phost "github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/dsep-project/dsep/address"
	dsepdns "github.com/dsep-project/dsep/address/dns"
	"github.com/dsep-project/dsep/dht"
	dsephost "github.com/dsep-project/dsep/dht/host"
	"github.com/dsep-project/dsep/dht/record"
	"github.com/dsep-project/dsep/testnet"
	"github.com/dsep-project/dsep/testnet/dnstest"
)

// raceDetector reports whether this test binary was built with -race. The
// build settings embedded in every Go binary say so, without a build tag.
func raceDetector() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// hostileNetSize is the size of the networks of this file: 30 nodes, 20
// under the race detector (which multiplies a node's memory and CPU).
func hostileNetSize() int {
	if raceDetector() {
		return 20
	}
	return 30
}

// world is a DSEP network for the tests of this file: a testnet, a DNS
// server naming example.org's domain key, and that key's record in the
// DHT.
type world struct {
	t   *testing.T
	net *testnet.Network
	dns *dnstest.Server
	dom *address.Key
	// domKey and domVal are the domain key's record, published by node 0.
	domKey string
	domVal []byte
}

// newWorld starts the network; dir, when set, gives the nodes persistent
// stores (testnet.Config.Dir).
func newWorld(t *testing.T, dir string) *world {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	n, err := testnet.New(ctx, testnet.Config{
		Nodes:     hostileNetSize(),
		Validator: record.NamespacedValidator(record.Validator{}),
		Dir:       dir,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	srv, err := dnstest.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	dom, err := address.NewDomainKey("example.org", address.NewIdentityOptions{Now: time.Now().Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	srv.AddTXT("_dsep.example.org", address.DomainRecord{Key: dom.Fingerprint()}.String())
	w := &world{t: t, net: n, dns: srv, dom: dom}
	w.domKey, w.domVal = w.rec(record.NewKey(dom, 1, time.Now(), 0))
	w.publish(0, w.domKey, w.domVal)
	return w
}

// rec returns what a record builder made, failing the test on its error.
func (w *world) rec(key string, value []byte, err error) (string, []byte) {
	w.t.Helper()
	if err != nil {
		w.t.Fatal(err)
	}
	return key, value
}

// publish puts a record through node i's Node.Put.
func (w *world) publish(i int, key string, value []byte) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := w.net.Node(i).Put(ctx, key, value); err != nil {
		w.t.Fatalf("node %d: put %s: %v", i, key, err)
	}
}

// resolver returns a resolver on node i with cold, disabled caches (DNS
// and records), so every resolution asks DNS and the DHT afresh.
func (w *world) resolver(i int) *dht.Resolver {
	w.t.Helper()
	node := w.net.Node(i)
	if node == nil {
		w.t.Fatalf("node %d is stopped", i)
	}
	return w.resolverOn(node)
}

// resolverOn is resolver on any node, in the testnet or not.
func (w *world) resolverOn(node *dht.Node) *dht.Resolver {
	w.t.Helper()
	d, err := dsepdns.New(dsepdns.Config{Servers: []string{w.dns.Addr()}, CacheSize: -1})
	if err != nil {
		w.t.Fatal(err)
	}
	r, err := dht.NewResolver(dht.ResolverConfig{DNS: d, DHT: node, Timeout: 30 * time.Second, CacheSize: -1})
	if err != nil {
		w.t.Fatal(err)
	}
	return r
}

// running returns the indexes of the running nodes.
func (w *world) running() []int {
	var out []int
	for i := range w.net.Len() {
		if w.net.Node(i) != nil {
			out = append(out, i)
		}
	}
	return out
}

// holding returns the running nodes whose own store holds exactly value
// under key.
func (w *world) holding(key string, value []byte) []int {
	var out []int
	for _, i := range w.running() {
		if v, err := w.net.Node(i).GetLocal(context.Background(), key); err == nil && bytes.Equal(v, value) {
			out = append(out, i)
		}
	}
	return out
}

// joiner starts a node outside the testnet, with an empty in-memory
// store, joined through up to three running nodes: a reader that holds
// none of the records published before it came.
func (w *world) joiner() *dht.Node {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		w.t.Fatal(err)
	}
	h, err := dsephost.New(ctx, dsephost.Config{Key: key, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Limits: dsephost.Testnet})
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { h.Close() })
	var boot []peer.AddrInfo
	for _, i := range w.running() {
		if len(boot) < 3 {
			h := w.net.Node(i).Host()
			boot = append(boot, peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()})
		}
	}
	n, err := dht.New(ctx, h, dht.Config{Validator: record.NamespacedValidator(record.Validator{}), Bootstrap: boot})
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { n.Close() }) // before the host's
	for round := 1; n.RoutingTableSize() < 4; round++ {
		if round%20 == 0 {
			_ = n.Bootstrap(ctx)
		}
		select {
		case <-ctx.Done():
			w.t.Fatalf("the joiner has %d routing table peers", n.RoutingTableSize())
		case <-time.After(50 * time.Millisecond):
		}
	}
	return n
}

// resolvesFrom is resolves with a resolver on node, which need not be part
// of the testnet.
func (w *world) resolvesFrom(node *dht.Node, u *user) {
	w.t.Helper()
	res, err := w.resolverOn(node).ResolveEmail(context.Background(), u.email)
	if err != nil {
		w.t.Fatalf("resolving %s from %s: %v", u.email, node.Host().ID(), err)
	}
	if res.Key.Fingerprint() != u.key.Fingerprint() || !res.Verdict.OK() ||
		res.DomainKey.Fingerprint() != w.dom.Fingerprint() || res.Reach == nil {
		w.t.Fatalf("%s resolved to key %s, verdict %v, domain %s, reach %v",
			u.email, res.Key.Fingerprint(), res.Verdict, res.DomainKey.Fingerprint(), res.Reach)
	}
}

// user is an identity of example.org certified by the domain, and the
// records that make its address resolvable.
type user struct {
	email address.Email
	key   *address.Key // with its private material
	// keys are the DHT keys of its email, key and reach records, in that
	// order, and vals their values.
	keys []string
	vals map[string][]byte
}

// newUser makes local@example.org, certified by the domain key, and builds
// (without publishing) its email, key and reach records; the reach record
// delegates node delegate as its device.
func (w *world) newUser(local string, delegate int) *user {
	w.t.Helper()
	now := time.Now()
	e, err := address.ParseEmail(local + "@example.org")
	if err != nil {
		w.t.Fatal(err)
	}
	k, err := address.NewIdentity("", e, address.NewIdentityOptions{Now: now.Add(-time.Hour)})
	if err != nil {
		w.t.Fatal(err)
	}
	uid, _ := k.UserIDFor(e, now)
	cert, err := address.Certify(k, uid, w.dom, now.Add(-time.Minute), 0)
	if err != nil {
		w.t.Fatal(err)
	}
	u := &user{email: e, key: k, vals: make(map[string][]byte)}
	add := func(key string, value []byte) {
		u.keys = append(u.keys, key)
		u.vals[key] = value
	}
	add(w.rec(record.NewEmail(w.dom, cert, e, 1, now, 0)))
	add(w.rec(record.NewKey(k, 1, now, 0)))
	d := address.Delegation{Peer: w.net.ID(delegate), Role: address.RoleDevice, NotAfter: now.Add(24 * time.Hour)}
	add(w.rec(record.NewReach(k, record.Reach{Delegations: []address.Delegation{d}}, 1, now, 0)))
	return u
}

// publishUser puts u's records through node i.
func (w *world) publishUser(i int, u *user) {
	w.t.Helper()
	for _, k := range u.keys {
		w.publish(i, k, u.vals[k])
	}
}

// resolves checks that node i, with a fresh resolver, resolves u's address
// to u's key, with a good verdict and the reach record.
func (w *world) resolves(i int, u *user) {
	w.t.Helper()
	node := w.net.Node(i)
	if node == nil {
		w.t.Fatalf("node %d is stopped", i)
	}
	w.resolvesFrom(node, u)
}

// hostilePeer is a libp2p host that speaks the DHT wire protocol itself,
// without a DHT node and hence without a validator: it sends whatever
// PUT_VALUE messages it likes.
type hostilePeer struct{ h p2phost.Host }

func newHostilePeer(t *testing.T) *hostilePeer {
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
	return &hostilePeer{h: h}
}

// maxResponse bounds the answer put reads (network.MessageSizeMax, as
// kad-dht).
const maxResponse = 4 << 20

// put sends node one PUT_VALUE message of key with a record holding value,
// on a new /dsep/kad/1.0.0 stream, framed as kad-dht frames it (an
// unsigned varint length, then the protobuf message: go-msgio's pbio
// delimited writer, internal/net.WriteMsg). A kad-dht server that stores
// the record echoes the message back; one that refuses it resets the
// stream without answering. put reports which (stored, and the read error
// of a refusal); err is set only when the message could not be sent or
// the answer makes no sense.
func (hp *hostilePeer) put(ctx context.Context, node *dht.Node, key string, value []byte) (stored bool, refusal, err error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	to := peer.AddrInfo{ID: node.Host().ID(), Addrs: node.Host().Addrs()}
	if err := hp.h.Connect(ctx, to); err != nil {
		return false, nil, fmt.Errorf("connecting to %s: %w", to.ID, err)
	}
	s, err := hp.h.NewStream(ctx, to.ID, dht.ProtocolID)
	if err != nil {
		return false, nil, fmt.Errorf("opening a stream to %s: %w", to.ID, err)
	}
	defer s.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(dl)
	}

	msg := pb.NewMessage(pb.Message_PUT_VALUE, []byte(key), 0)
	msg.Record = &recpb.Record{Key: []byte(key), Value: value}
	body, err := proto.Marshal(msg)
	if err != nil {
		return false, nil, err
	}
	frame := binary.AppendUvarint(nil, uint64(len(body)))
	frame = append(frame, body...)
	if _, err := s.Write(frame); err != nil {
		s.Reset()
		return false, nil, fmt.Errorf("writing PUT_VALUE to %s: %w", to.ID, err)
	}
	// No more requests: the server's read loop ends after this message.
	if err := s.CloseWrite(); err != nil {
		s.Reset()
		return false, nil, fmt.Errorf("closing the write side to %s: %w", to.ID, err)
	}

	r := bufio.NewReader(s)
	n, rerr := binary.ReadUvarint(r)
	if rerr != nil {
		return false, rerr, nil // reset (or closed) without an answer: refused
	}
	if n > maxResponse {
		return false, nil, fmt.Errorf("%s answered a message of %d bytes", to.ID, n)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return false, nil, fmt.Errorf("reading the answer of %s: %w", to.ID, err)
	}
	var resp pb.Message
	if err := proto.Unmarshal(buf, &resp); err != nil {
		return false, nil, fmt.Errorf("decoding the answer of %s: %w", to.ID, err)
	}
	if resp.GetType() != pb.Message_PUT_VALUE || string(resp.GetKey()) != key ||
		string(resp.GetRecord().GetKey()) != key || !bytes.Equal(resp.GetRecord().GetValue(), value) {
		return false, nil, fmt.Errorf("%s answered PUT_VALUE with %v", to.ID, resp.GetType())
	}
	return true, nil, nil
}

// putAll sends the PUT_VALUE to every running node at once and returns,
// by node index, whether each stored it (echoed the message) or refused
// it (reset the stream); any other outcome fails the test.
func (hp *hostilePeer) putAll(t *testing.T, w *world, key string, value []byte) map[int]bool {
	t.Helper()
	var (
		mu   sync.Mutex
		out  = make(map[int]bool)
		errs []error
		wg   sync.WaitGroup
	)
	for _, i := range w.running() {
		node := w.net.Node(i)
		wg.Go(func() {
			stored, refusal, err := hp.put(context.Background(), node, key, value)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				errs = append(errs, fmt.Errorf("node %d: %w", i, err))
			case !stored && !errors.Is(refusal, network.ErrReset):
				// kad-dht answers a refused PUT_VALUE by resetting the
				// stream; anything else is not a refusal.
				errs = append(errs, fmt.Errorf("node %d neither stored nor refused the record: %w", i, refusal))
			}
			out[i] = stored
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return out
}

// newKey makes an identity for test records, created age ago.
func newKey(t *testing.T, local string, age time.Duration) *address.Key {
	t.Helper()
	e, err := address.ParseEmail(local + "@example.org")
	if err != nil {
		t.Fatal(err)
	}
	k, err := address.NewIdentity("", e, address.NewIdentityOptions{Now: time.Now().Add(-age)})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestHostilePutValue has a peer without a validator send invalid records
// straight to every node with PUT_VALUE: every node refuses each of them,
// and none is ever read back.
func TestHostilePutValue(t *testing.T) {
	w := newWorld(t, "")
	hp := newHostilePeer(t)
	ctx := context.Background()
	now := time.Now()
	last := w.net.Len() - 1

	// The raw path works: a valid record sent this way is stored, and the
	// receiving node serves it.
	good := newKey(t, "good", time.Hour)
	goodKey, goodVal := w.rec(record.NewKey(good, 1, now, 0))
	stored, refusal, err := hp.put(ctx, w.net.Node(last), goodKey, goodVal)
	if err != nil || !stored {
		t.Fatalf("a valid record sent raw to node %d: stored %v (%v), %v", last, stored, refusal, err)
	}
	if v, err := w.net.Node(last).GetLocal(ctx, goodKey); err != nil || !bytes.Equal(v, goodVal) {
		t.Fatalf("node %d does not hold the valid record sent raw: %v", last, err)
	}

	// The records. Each case has a DHT key of its own.
	var (
		forgedK   = newKey(t, "forged", time.Hour)
		nameA     = newKey(t, "name-a", time.Hour)
		nameB     = newKey(t, "name-b", time.Hour)
		bigK      = newKey(t, "big", time.Hour)
		expiredK  = newKey(t, "expired", 3*time.Hour)
		futureK   = newKey(t, "future", time.Hour)
		seqK      = newKey(t, "seq", time.Hour)
		unsignedK = newKey(t, "unsigned", time.Hour)
	)

	// A valid key record with the last byte of its signature (inside the
	// last MPI) flipped.
	forgedKey, forgedVal := w.rec(record.NewKey(forgedK, 1, now, 0))
	s, err := record.UnmarshalSigned(forgedVal)
	if err != nil {
		t.Fatal(err)
	}
	s.Signature = bytes.Clone(s.Signature)
	s.Signature[len(s.Signature)-1] ^= 0x01
	forgedVal = s.Marshal()

	// A's valid key record under B's name.
	_, aVal := w.rec(record.NewKey(nameA, 1, now, 0))
	mismatchKey := record.KeyOf(record.KeyType, nameB.Fingerprint())

	// A rev record validly signed, whose body carries an unknown field as
	// padding (readers skip unknown fields): valid when small, too large
	// over the 8 KiB limit of /dsep-rev/ (still under the 16 KiB of the
	// other namespaces).
	rev, err := address.Revoke(bigK, address.ReasonRetired, "", now)
	if err != nil {
		t.Fatal(err)
	}
	bigKey := record.KeyOf(record.RevType, bigK.Fingerprint())
	padded := func(pad int) []byte {
		body := record.RevBody{Primary: bigK.PrimaryPacket().Bytes(), Revocation: rev.Bytes()}.Marshal()
		body = protowire.AppendTag(body, 99, protowire.BytesType)
		body = protowire.AppendBytes(body, make([]byte, pad))
		v, err := record.Sign(record.Record{
			Type: record.RevType, Version: record.Version, Seq: 1,
			NotBefore: now, EOL: now.Add(record.DefaultTTL), Body: body,
		}, func(msg []byte) ([]byte, error) { return bigK.SignWithPrimary(msg, now) })
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if _, err := record.Verify(bigKey, padded(100), now); err != nil {
		t.Fatalf("the padded rev record is invalid even when small: %v", err)
	}
	bigVal := padded(record.RevType.MaxSize())
	if len(bigVal) >= record.MaxValueBytes {
		t.Fatalf("the oversized rev value has %d bytes, meant to be under %d", len(bigVal), record.MaxValueBytes)
	}

	// Built on a clock two hours back with a lifetime of one hour.
	expiredKey, expiredVal := w.rec(record.NewKey(expiredK, 1, now.Add(-2*time.Hour), time.Hour))
	// Built on a clock an hour ahead.
	futureKey, futureVal := w.rec(record.NewKey(futureK, 1, now.Add(time.Hour), 0))

	// Seq 5 published first, then a validly signed seq 1.
	seqKey, seq5 := w.rec(record.NewKey(seqK, 5, now, 0))
	_, seq1 := w.rec(record.NewKey(seqK, 1, now, 0))

	// A valid key record without its signature.
	unsignedKey, unsignedSigned := w.rec(record.NewKey(unsignedK, 1, now, 0))
	us, err := record.UnmarshalSigned(unsignedSigned)
	if err != nil {
		t.Fatal(err)
	}
	unsignedVal := (&record.Signed{Raw: us.Record.Marshal()}).Marshal()

	cases := []struct {
		name  string
		key   string
		value []byte
		why   error // what Verify says of the value alone; nil: valid alone
		keep  []byte
	}{
		{"forged signature", forgedKey, forgedVal, record.ErrBadSignature, nil},
		{"key name mismatch", mismatchKey, aVal, record.ErrNameMismatch, nil},
		{"oversized", bigKey, bigVal, record.ErrTooLarge, nil},
		{"expired", expiredKey, expiredVal, record.ErrExpired, nil},
		{"dated in the future", futureKey, futureVal, record.ErrFuture, nil},
		{"lower sequence number", seqKey, seq1, nil, seq5},
		{"unsigned", unsignedKey, unsignedVal, record.ErrUnsigned, nil},
	}
	// Each value is invalid for the reason the case names, and only
	// that: the nodes refuse them for that reason.
	for _, c := range cases {
		_, err := record.Verify(c.key, c.value, time.Now())
		if c.why == nil && err != nil || c.why != nil && !errors.Is(err, c.why) {
			t.Fatalf("%s: Verify says %v, want %v", c.name, err, c.why)
		}
	}

	// The legitimate seq 5, published through Node.Put, then relayed raw
	// to every node that did not receive it (anyone may relay a valid
	// record, and republishing identical bytes is accepted): every node
	// holds it before the attack.
	w.publish(1, seqKey, seq5)
	t.Logf("Put stored seq 5 on %d of %d nodes", len(w.holding(seqKey, seq5)), w.net.Len())
	for i, stored := range hp.putAll(t, w, seqKey, seq5) {
		if !stored {
			t.Fatalf("node %d refused the valid seq 5 record relayed raw", i)
		}
	}

	for _, c := range cases {
		for i, stored := range hp.putAll(t, w, c.key, c.value) {
			if stored {
				t.Errorf("%s: node %d stored the hostile record", c.name, i)
			}
		}
	}

	// No node holds a hostile value; the seq 5 record stays everywhere.
	for _, c := range cases {
		for _, i := range w.running() {
			v, err := w.net.Node(i).GetLocal(ctx, c.key)
			switch {
			case c.keep != nil && (err != nil || !bytes.Equal(v, c.keep)):
				t.Errorf("%s: node %d holds %d bytes (%v), not the legitimate record", c.name, i, len(v), err)
			case c.keep == nil && !errors.Is(err, dht.ErrNotFound):
				t.Errorf("%s: node %d: GetLocal = %d bytes, %v; want ErrNotFound", c.name, i, len(v), err)
			}
		}
	}

	// Nor does a lookup from any of several nodes return one.
	readers := []int{0, 2, w.net.Len() / 2, last}
	var wg sync.WaitGroup
	for _, c := range cases {
		for _, i := range readers {
			node := w.net.Node(i)
			wg.Go(func() {
				v, err := node.Get(ctx, c.key)
				switch {
				case bytes.Equal(v, c.value):
					t.Errorf("%s: node %d: Get returned the hostile record", c.name, i)
				case c.keep != nil && (err != nil || !bytes.Equal(v, c.keep)):
					t.Errorf("%s: node %d: Get = %d bytes, %v; want the legitimate record", c.name, i, len(v), err)
				case c.keep == nil && !errors.Is(err, dht.ErrNotFound):
					t.Errorf("%s: node %d: Get = %d bytes, %v; want ErrNotFound", c.name, i, len(v), err)
				}
			})
		}
	}
	wg.Wait()
}

// TestOnlyDomainFillsSlot: an email record certified and signed by any key
// but the domain key DNS names cannot fill the address's slot.
func TestOnlyDomainFillsSlot(t *testing.T) {
	w := newWorld(t, "")
	hp := newHostilePeer(t)
	ctx := context.Background()
	now := time.Now()

	// Alice's key and reach records are published; her email record is
	// built, not yet published.
	alice := w.newUser("alice", 2)
	emailKey := alice.keys[0]
	for _, k := range alice.keys[1:] {
		w.publish(2, k, alice.vals[k])
	}

	// Another key claiming example.org (not the one DNS names) certifies
	// alice@example.org on Alice's key.
	rogue, err := address.NewDomainKey("example.org", address.NewIdentityOptions{Now: now.Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := alice.key.UserIDFor(alice.email, now)
	rogueCert, err := address.Certify(alice.key, uid, rogue, now.Add(-time.Minute), 0)
	if err != nil {
		t.Fatal(err)
	}
	rogueKey, rogueVal := w.rec(record.NewEmail(rogue, rogueCert, alice.email, 1, now, 0))
	if rogueKey == emailKey {
		t.Fatal("the rogue key's slot is the domain's")
	}
	// The rogue record is valid in the rogue key's own slot: it may sit
	// there, where no resolver looks.
	w.publish(3, rogueKey, rogueVal)

	// The same body, but naming the real domain key as the domain (so the
	// name matches the slot), still signed and certified by the rogue key.
	_, certPacket, err := rogueCert.CertificationPacket(uid, rogue, now)
	if err != nil {
		t.Fatal(err)
	}
	dressed, err := record.Sign(record.Record{
		Type: record.EmailType, Version: record.Version, Seq: 1,
		NotBefore: now, EOL: now.Add(record.DefaultTTL),
		Body: record.EmailBody{
			UserPrimary:   alice.key.PrimaryPacket().Bytes(),
			UserID:        uid,
			DomainPrimary: w.dom.PrimaryPacket().Bytes(),
			Certification: certPacket,
		}.Marshal(),
	}, func(msg []byte) ([]byte, error) { return rogue.SignWithPrimary(msg, now) })
	if err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name  string
		value []byte
		why   error
	}{
		{"the rogue record in the domain's slot", rogueVal, record.ErrNameMismatch},
		{"the rogue record naming the domain key", dressed, record.ErrBadSignature},
	} {
		if _, err := record.Verify(emailKey, c.value, now); !errors.Is(err, c.why) {
			t.Fatalf("%s: Verify says %v, want %v", c.name, err, c.why)
		}
		for i, stored := range hp.putAll(t, w, emailKey, c.value) {
			if stored {
				t.Errorf("%s: node %d stored it", c.name, i)
			}
		}
	}
	if h := w.holding(emailKey, rogueVal); len(h) > 0 {
		t.Errorf("nodes %v hold the rogue record in the domain's slot", h)
	}
	if h := w.holding(emailKey, dressed); len(h) > 0 {
		t.Errorf("nodes %v hold the dressed-up rogue record", h)
	}

	// Only the rogue record exists: the address does not resolve.
	res, err := w.resolver(4).ResolveEmail(ctx, alice.email)
	var re *dht.ResolveError
	if !errors.As(err, &re) || re.Step != "email-record" || !errors.Is(err, dht.ErrNoEmailRecord) {
		t.Fatalf("with only rogue email records: %+v, %v; want ErrNoEmailRecord", res, err)
	}

	// The domain's own record fills the slot.
	w.publish(2, emailKey, alice.vals[emailKey])
	w.resolves(4, alice)
}

// TestRevocationMakesResolutionReportRevoked: once a compromised-key
// revocation is published, a resolver with a cold cache reports the key
// revoked.
func TestRevocationMakesResolutionReportRevoked(t *testing.T) {
	w := newWorld(t, "")
	ctx := context.Background()
	bob := w.newUser("bob", 1)
	w.publishUser(1, bob)
	w.resolves(5, bob)

	rev, err := address.Revoke(bob.key, address.ReasonCompromised, "stolen", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	revKey, revVal := w.rec(record.NewRev(bob.key, rev, 1, time.Now(), 0))
	w.publish(3, revKey, revVal)

	for _, i := range []int{5, w.net.Len() - 1} {
		res, err := w.resolver(i).ResolveEmail(ctx, bob.email)
		var re *dht.ResolveError
		if !errors.As(err, &re) || re.Step != "revocation" || !errors.Is(err, dht.ErrRevoked) {
			t.Fatalf("node %d: %v; want ErrRevoked", i, err)
		}
		if res == nil || res.Revocation == nil || !res.Revocation.Hard() ||
			res.Key.Fingerprint() != bob.key.Fingerprint() {
			t.Fatalf("node %d: the resolution does not carry the hard revocation: %+v", i, res)
		}
	}
}

// restart restarts the stopped nodes is, all at once.
func (w *world) restart(is []int) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	errs := make([]error, len(is))
	var wg sync.WaitGroup
	for j, i := range is {
		wg.Go(func() { errs[j] = w.net.Restart(ctx, i) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		w.t.Fatal(err)
	}
}

// stop stops the nodes is.
func (w *world) stop(is []int) {
	w.t.Helper()
	for _, i := range is {
		if err := w.net.Stop(i); err != nil {
			w.t.Fatal(err)
		}
	}
}

// TestRecordsSurviveRestart: nodes with persistent stores come back from a
// restart with the records they held, even when every holder restarted
// while the publisher is gone.
func TestRecordsSurviveRestart(t *testing.T) {
	w := newWorld(t, t.TempDir())
	const publisher = 1
	carol := w.newUser("carol", publisher)
	w.publishUser(publisher, carol)

	// Everything the resolution of carol needs, and who holds it.
	keys := append([]string{w.domKey}, carol.keys...)
	vals := map[string][]byte{w.domKey: w.domVal}
	for _, k := range carol.keys {
		vals[k] = carol.vals[k]
	}
	held := make(map[string][]int)
	var all []int
	for _, k := range keys {
		held[k] = w.holding(k, vals[k])
		if len(held[k]) < 2 {
			t.Fatalf("%s held by %v only", k, held[k])
		}
		for _, i := range held[k] {
			if !slices.Contains(all, i) {
				all = append(all, i)
			}
		}
	}
	slices.Sort(all)
	t.Logf("%d of %d nodes hold some of carol's records", len(all), w.net.Len())
	stillHold := func(is []int) {
		t.Helper()
		for _, k := range keys {
			for _, i := range held[k] {
				if !slices.Contains(is, i) {
					continue
				}
				if v, err := w.net.Node(i).GetLocal(context.Background(), k); err != nil || !bytes.Equal(v, vals[k]) {
					t.Fatalf("node %d lost %s in its restart: %v", i, k, err)
				}
			}
		}
	}

	// A holder of the email record (not the publisher) stops and comes
	// back into the running network.
	one := held[carol.keys[0]][0]
	if one == publisher {
		one = held[carol.keys[0]][1]
	}
	w.stop([]int{one})
	w.restart([]int{one})
	stillHold([]int{one})

	// The publisher goes for good; every holder of every record stops, so
	// no running node holds any of them, and then they all come back.
	w.stop([]int{publisher})
	var holders []int
	for _, i := range all {
		if i != publisher {
			holders = append(holders, i)
		}
	}
	w.stop(holders)
	for _, k := range keys {
		if h := w.holding(k, vals[k]); len(h) > 0 {
			t.Fatalf("nodes %v still hold %s", h, k)
		}
	}
	w.restart(holders)
	stillHold(holders)

	// A node other than the publisher resolves carol: one that never
	// stopped if there is one, else a restarted holder.
	reader := holders[len(holders)-1]
	for _, i := range w.running() {
		if !slices.Contains(all, i) {
			reader = i
			break
		}
	}
	w.resolves(reader, carol)
	// And a newcomer, which holds nothing, reads every record from the
	// restarted holders.
	w.resolvesFrom(w.joiner(), carol)
}

// TestResolveWith30PercentStopped: an address still resolves with 30% of
// the nodes down, the publisher and the nodes closest to the records'
// keys among them.
func TestResolveWith30PercentStopped(t *testing.T) {
	w := newWorld(t, "")
	const publisher = 1
	dave := w.newUser("dave", publisher)
	w.publishUser(publisher, dave)
	keys := append([]string{w.domKey}, dave.keys...)

	// Rank the nodes by their XOR distance (kad-dht's) to the nearest of
	// the records' keys.
	ids := make([]peer.ID, w.net.Len())
	index := make(map[peer.ID]int)
	for i := range ids {
		ids[i] = w.net.ID(i)
		index[ids[i]] = i
	}
	rank := make([]int, len(ids))
	for i := range rank {
		rank[i] = len(ids)
	}
	for _, k := range keys {
		for pos, p := range kb.SortClosestPeers(slices.Clone(ids), kb.ConvertKey(k)) {
			rank[index[p]] = min(rank[index[p]], pos)
		}
	}
	order := make([]int, len(ids))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return rank[a] - rank[b] })

	// Stop the publisher, then the closest nodes, 30% in all.
	down := []int{publisher}
	for _, i := range order {
		if len(down) == w.net.Len()*3/10 {
			break
		}
		if i != publisher {
			down = append(down, i)
		}
	}
	for _, k := range keys {
		v := dave.vals[k]
		if k == w.domKey {
			v = w.domVal
		}
		h := w.holding(k, v)
		var lost int
		for _, i := range h {
			if slices.Contains(down, i) {
				lost++
			}
		}
		t.Logf("%s: %d holders, %d of them stopped", k, len(h), lost)
	}
	w.stop(down)

	// The running node farthest from the keys resolves dave.
	reader := -1
	for _, i := range order {
		if !slices.Contains(down, i) {
			reader = i
		}
	}
	w.resolves(reader, dave)
	// And a newcomer, which holds nothing, finds every record on the
	// remaining holders.
	w.resolvesFrom(w.joiner(), dave)
}
