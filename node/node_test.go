package node_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/packet"
	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"
	"github.com/dsep-project/dsep/address"
	"github.com/dsep-project/dsep/address/book"
	"github.com/dsep-project/dsep/dht/host"
	"github.com/dsep-project/dsep/dht/record"
	"github.com/dsep-project/dsep/node"
	"github.com/dsep-project/dsep/node/compose"
	"github.com/dsep-project/dsep/node/control"
	"github.com/dsep-project/dsep/node/deliver"
	"github.com/dsep-project/dsep/node/envelope"
	"github.com/dsep-project/dsep/node/message"
	"github.com/dsep-project/dsep/node/queue"
	"github.com/dsep-project/dsep/node/stamp"
	"github.com/dsep-project/dsep/testnet"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/libp2p/go-libp2p/core/crypto"
	p2phost "github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

// testBits is the stamp price of the test users: cheap to mint.
const testBits = 12

func newNet(t *testing.T, adjust func(*node.Config)) *testnet.MailNet {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var lg *slog.Logger
	if os.Getenv("DSEP_TEST_LOG") != "" {
		lg = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	m, err := testnet.NewMailNet(ctx, testnet.MailConfig{
		Dir: t.TempDir(), Logger: lg,
		Node: func(c *node.Config) {
			c.StampBits = testBits
			if adjust != nil {
				adjust(c)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func addUser(t *testing.T, m *testnet.MailNet, local string, opt testnet.UserOptions) *testnet.User {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	u, err := m.AddUser(ctx, local, opt)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func mail(t *testing.T, from, to *testnet.User, subject string) []byte {
	t.Helper()
	b, err := compose.Build(compose.Draft{
		From:    from.Email.String(),
		To:      []string{to.Email.String()},
		Subject: subject,
		Body:    []byte("Hello " + to.Email.Local() + ",\r\nthis is " + subject + ".\r\n"),
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func send(t *testing.T, from, to *testnet.User, subject string) envelope.ID {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := from.Node().Send(ctx, mail(t, from, to, subject), []string{to.Email.String()})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || res[0].Err != nil {
		t.Fatalf("send: %+v", res)
	}
	return res[0].ID
}

// eventually polls cond until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func inbox(t *testing.T, n *node.Node) []control.Summary {
	t.Helper()
	l, err := n.Backend().List(context.Background(), "INBOX", 0)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func outboxItem(t *testing.T, n *node.Node, id envelope.ID) *queue.Item {
	t.Helper()
	it, err := n.Queue().Get(id)
	if err != nil {
		t.Fatal(err)
	}
	return it
}

func TestAliceToBob(t *testing.T) {
	m := newNet(t, nil)
	alice := addUser(t, m, "alice", testnet.UserOptions{})
	bob := addUser(t, m, "bob", testnet.UserOptions{})

	id := send(t, alice, bob, "first contact")
	eventually(t, 30*time.Second, "bob's inbox", func() bool { return len(inbox(t, bob.Node())) == 1 })
	got := inbox(t, bob.Node())[0]
	if got.ID != id.String() || got.Subject != "first contact" || got.Verification.Status != control.VerifyVerified {
		t.Fatalf("bob got %+v", got)
	}
	if !strings.Contains(got.From, "alice@example.org") || got.Verification.Signer != alice.Key.Fingerprint().String() {
		t.Fatalf("bob got %+v", got)
	}
	msg, err := bob.Node().Backend().Message(context.Background(), id.String()[:12], true)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(msg.Body, []byte("this is first contact")) || !strings.HasPrefix(msg.Raw, "-----BEGIN PGP MESSAGE-----") {
		t.Fatalf("message: body %q raw %.40q", msg.Body, msg.Raw)
	}
	// The signed receipt comes back to Alice.
	eventually(t, 30*time.Second, "alice's receipt", func() bool {
		it := outboxItem(t, alice.Node(), id)
		return it.State == queue.StateDelivered && !it.Receipt.IsZero()
	})
	// Alice's Sent folder has her copy.
	sent, err := alice.Node().Backend().List(context.Background(), "Sent", 0)
	if err != nil || len(sent) != 1 {
		t.Fatalf("sent folder: %v %+v", err, sent)
	}
	st, err := bob.Node().Backend().Status(context.Background())
	if err != nil || st.Delivery.Received != 1 || st.Mailbox.Messages != 1 || st.DHT.RoutingTable == 0 {
		t.Fatalf("status: %v %+v", err, st)
	}
}

func TestOfflineRecipientGetsItLater(t *testing.T) {
	m := newNet(t, nil)
	alice := addUser(t, m, "alice", testnet.UserOptions{})
	bob := addUser(t, m, "bob", testnet.UserOptions{})
	if err := bob.Stop(); err != nil {
		t.Fatal(err)
	}
	id := send(t, alice, bob, "while you were out")
	eventually(t, 30*time.Second, "a failed attempt", func() bool {
		it := outboxItem(t, alice.Node(), id)
		return len(it.Delegates) == 1 && it.Delegates[0].Attempts >= 2
	})
	if it := outboxItem(t, alice.Node(), id); it.State != queue.StatePending || it.Delegates[0].LastError == "" {
		t.Fatalf("item while bob is offline: %+v", it)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := bob.Start(ctx, 0); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "bob's inbox", func() bool { return len(inbox(t, bob.Node())) == 1 })
	eventually(t, 30*time.Second, "delivered", func() bool { return outboxItem(t, alice.Node(), id).State == queue.StateDelivered })
}

func TestTwoDevicesEachGetItOnce(t *testing.T) {
	m := newNet(t, nil)
	alice := addUser(t, m, "alice", testnet.UserOptions{})
	bob := addUser(t, m, "bob", testnet.UserOptions{Devices: 2})
	id := send(t, alice, bob, "to both of you")
	for i, d := range bob.Devices {
		eventually(t, 30*time.Second, fmt.Sprintf("device %d", i), func() bool { return len(inbox(t, d)) == 1 })
	}
	eventually(t, 30*time.Second, "delivered to both", func() bool {
		it := outboxItem(t, alice.Node(), id)
		return it.State == queue.StateDelivered && len(it.Delegates) == 2
	})
	// Nothing arrives twice, even after the retry timers have passed.
	time.Sleep(500 * time.Millisecond)
	for i, d := range bob.Devices {
		if l := inbox(t, d); len(l) != 1 || l[0].ID != id.String() {
			t.Fatalf("device %d inbox: %+v", i, l)
		}
	}
}

// A host that is not Bob's delegate, at the address Bob's reach record
// gives, cannot take Bob's mail: TLS authenticates the peer ID Alice
// dials, and the impostor's is not delegated.
func TestImpersonatedDelegateRefused(t *testing.T) {
	m := newNet(t, nil)
	alice := addUser(t, m, "alice", testnet.UserOptions{})
	bob := addUser(t, m, "bob", testnet.UserOptions{})
	addr := bob.Node().Host().Addrs()[0]
	if err := bob.Stop(); err != nil {
		t.Fatal(err)
	}
	// The impostor takes Bob's port and serves the delivery protocol,
	// accepting everything.
	ik, _, _ := crypto.GenerateEd25519Key(nil)
	var got atomic.Int32
	var impostor interface{ Close() error }
	ctx := context.Background()
	for try := 0; ; try++ {
		h, err := host.New(ctx, host.Config{Key: ik, Listen: []string{addr.String()}, Limits: host.Testnet})
		if err == nil {
			srv, err := deliver.NewServer(h, deliver.ServerConfig{Policy: acceptAll{&got}})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { srv.Close() })
			impostor = h
			break
		}
		if try > 50 {
			t.Fatalf("impostor could not take the port: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	defer impostor.Close()
	id := send(t, alice, bob, "for bob only")
	eventually(t, 30*time.Second, "refused attempts", func() bool {
		it := outboxItem(t, alice.Node(), id)
		return len(it.Delegates) == 1 && it.Delegates[0].Attempts >= 2
	})
	it := outboxItem(t, alice.Node(), id)
	if it.State != queue.StatePending || !strings.Contains(strings.ToLower(it.Delegates[0].LastError), "peer") {
		t.Fatalf("item: %+v", it)
	}
	if got.Load() != 0 {
		t.Fatalf("the impostor received %d envelopes", got.Load())
	}
}

type acceptAll struct{ n *atomic.Int32 }

func (a acceptAll) Admit(peer.ID, envelope.Header) error { return nil }
func (a acceptAll) Accept(_ context.Context, _ peer.ID, _ envelope.Header, _ envelope.ID, _ []byte) (bool, error) {
	a.n.Add(1)
	return false, nil
}

func TestStampsCheckedBeforeDecryption(t *testing.T) {
	m := newNet(t, nil)
	alice := addUser(t, m, "alice", testnet.UserOptions{})
	bob := addUser(t, m, "bob", testnet.UserOptions{})
	bn := bob.Node()
	payload, err := message.Seal(mail(t, alice, bob, "paid badly"), message.SealOptions{From: alice.Key, To: bob.Key, Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	id := envelope.IDOf(payload)
	bfpr := bob.Key.Fingerprint().String()
	mint := func(bits int, resource string, ext string, now time.Time) string {
		s, err := stamp.Mint(context.Background(), stamp.MintParams{Bits: bits, Resource: resource, Ext: ext, Now: now, Workers: 1}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	ce, _ := address.ParseEmail("carol@example.org")
	other, err := address.NewIdentity("", ce, address.NewIdentityOptions{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	h := newRawHost(t)
	cases := []struct {
		name  string
		stamp string
		want  string
	}{
		{"weak", mint(testBits-4, bfpr, stamp.PayloadExt(id), now), "bits"},
		{"stale", mint(testBits, bfpr, stamp.PayloadExt(id), now.Add(-5*24*time.Hour)), "too old"},
		{"wrong resource", mint(testBits, other.Fingerprint().String(), stamp.PayloadExt(id), now), "resource"},
		{"other payload", mint(testBits, bfpr, stamp.PayloadExt(envelope.IDOf([]byte("x"))), now), "another payload"},
		{"garbage", "1:20:garbage", "stamp"},
	}
	for _, tc := range cases {
		r := h.send(t, bn, envelope.KindStamp, tc.stamp, payload)
		if r.Status != deliver.StatusRejected || !strings.Contains(r.Reason, tc.want) {
			t.Errorf("%s: %+v", tc.name, r)
		}
	}
	if d := bn.Stats().Decrypted.Load(); d != 0 {
		t.Fatalf("%d decryptions ran for refused envelopes", d)
	}
	// A good stamp is accepted; reusing it for the same envelope is a
	// replay: acknowledged again, stored and decrypted once.
	good := mint(testBits, bfpr, stamp.PayloadExt(id), now)
	if r := h.send(t, bn, envelope.KindStamp, good, payload); r.Status != deliver.StatusStored || r.ID != id {
		t.Fatalf("good stamp: %+v", r)
	}
	if r := h.send(t, bn, envelope.KindStamp, good, payload); r.Status != deliver.StatusDuplicate || r.ID != id {
		t.Fatalf("replay: %+v", r)
	}
	eventually(t, 30*time.Second, "bob's inbox", func() bool { return len(inbox(t, bn)) == 1 })
	time.Sleep(200 * time.Millisecond)
	if d := bn.Stats().Decrypted.Load(); d != 1 {
		t.Fatalf("%d decryptions, want 1", d)
	}
	if l := inbox(t, bn); len(l) != 1 {
		t.Fatalf("inbox: %+v", l)
	}
}

// senderHost is a bare libp2p host that writes envelopes by hand.
type senderHost struct{ h p2phost.Host }

func newRawHost(t *testing.T) *senderHost {
	t.Helper()
	k, _, _ := crypto.GenerateEd25519Key(nil)
	h, err := host.New(context.Background(), host.Config{Key: k, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Limits: host.Testnet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return &senderHost{h: h}
}

func (s *senderHost) send(t *testing.T, to *node.Node, kind envelope.Kind, proof string, payload []byte) deliver.Response {
	t.Helper()
	ai := to.AddrInfo()
	s.h.Peerstore().AddAddrs(ai.ID, ai.Addrs, time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rs, err := deliver.Send(ctx, s.h, ai.ID, []deliver.Outgoing{{Kind: kind, Proof: []byte(proof), Payload: payload}})
	if err != nil && len(rs) == 0 {
		t.Fatalf("send: %v", err)
	}
	return rs[0]
}

// Bob takes Alice's signed message and encrypts it to Carol: the signed
// content names Bob, so Carol's node rejects it after decryption.
func TestForwardedPayloadRejected(t *testing.T) {
	m := newNet(t, nil)
	alice := addUser(t, m, "alice", testnet.UserOptions{})
	bob := addUser(t, m, "bob", testnet.UserOptions{})
	carol := addUser(t, m, "carol", testnet.UserOptions{})
	signed := "DSEP-Recipient: " + bob.Key.Fingerprint().String() + "\r\n" +
		"DSEP-Sender: " + alice.Key.Fingerprint().String() + "\r\n" +
		string(mail(t, alice, bob, "for bob"))
	var buf bytes.Buffer
	w, err := openpgp.Encrypt(&buf, nil, []*openpgp.Entity{carol.Key.Entity()}, []*openpgp.Entity{alice.Key.Entity()}, &openpgp.FileHints{}, &packet.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte(signed)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	payload := buf.Bytes()
	id := envelope.IDOf(payload)
	st, err := stamp.Mint(context.Background(), stamp.MintParams{Bits: testBits, Resource: carol.Key.Fingerprint().String(), Ext: stamp.PayloadExt(id), Workers: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cn := carol.Node()
	if r := newRawHost(t).send(t, cn, envelope.KindStamp, st, payload); r.Status != deliver.StatusStored {
		t.Fatalf("envelope: %+v", r)
	}
	eventually(t, 30*time.Second, "the rejection", func() bool { return cn.Stats().Rejected.Load() == 1 })
	if l := inbox(t, cn); len(l) != 0 {
		t.Fatalf("carol's inbox: %+v", l)
	}
	if cn.Stats().Decrypted.Load() != 1 {
		t.Fatalf("decrypted %d", cn.Stats().Decrypted.Load())
	}
}

// No envelope is acknowledged before the sync that covers it has
// returned: with every sync held back, the sender must hear nothing.
func TestAckWaitsForSync(t *testing.T) {
	var hold atomic.Bool
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	var synced atomic.Int64
	m := newNet(t, nil)
	alice := addUser(t, m, "alice", testnet.UserOptions{})
	bob := addUser(t, m, "bob", testnet.UserOptions{Node: func(c *node.Config) {
		c.BeforeSync = func() {
			if hold.Load() {
				select {
				case entered <- struct{}{}:
				default:
				}
				<-release
			}
		}
		c.AfterSync = func(int) { synced.Add(1) }
	}})
	payload, err := message.Seal(mail(t, alice, bob, "durable"), message.SealOptions{From: alice.Key, To: bob.Key})
	if err != nil {
		t.Fatal(err)
	}
	id := envelope.IDOf(payload)
	st, err := stamp.Mint(context.Background(), stamp.MintParams{Bits: testBits, Resource: bob.Key.Fingerprint().String(), Ext: stamp.PayloadExt(id), Workers: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := newRawHost(t)
	hold.Store(true)
	acked := make(chan deliver.Response, 1)
	go func() { acked <- h.send(t, bob.Node(), envelope.KindStamp, st, payload) }()
	<-entered
	before := synced.Load()
	select {
	case r := <-acked:
		t.Fatalf("acknowledged while the sync was held: %+v", r)
	case <-time.After(300 * time.Millisecond):
	}
	hold.Store(false)
	close(release)
	r := <-acked
	if r.Status != deliver.StatusStored || r.ID != id {
		t.Fatalf("ack: %+v", r)
	}
	if synced.Load() <= before {
		t.Fatal("acknowledged without a completed sync")
	}
}

// Self-monitoring: when the domain's DHT slot for Alice's address names
// another key, Alice's node says so in its status.
func TestSelfMonitoringAlert(t *testing.T) {
	m := newNet(t, func(c *node.Config) { c.MonitorInterval = 200 * time.Millisecond })
	alice := addUser(t, m, "alice", testnet.UserOptions{})
	st, err := alice.Node().Backend().Status(context.Background())
	if err != nil || len(st.Alerts) != 0 {
		t.Fatalf("alerts before: %v %+v", err, st.Alerts)
	}
	now := time.Now()
	mallory, err := address.NewIdentity("", alice.Email, address.NewIdentityOptions{Now: now.Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := mallory.UserIDFor(alice.Email, now)
	cert, err := address.Certify(mallory, uid, m.Domain, now.Add(-time.Minute), 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	k, v, err := record.NewKey(mallory, 2, now, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Put(ctx, k, v); err != nil {
		t.Fatal(err)
	}
	k, v, err = record.NewEmail(m.Domain, cert, alice.Email, uint64(now.UnixMilli()), now, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Put(ctx, k, v); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "an alert", func() bool {
		st, err := alice.Node().Backend().Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range st.Alerts {
			if strings.Contains(a.Message, mallory.Fingerprint().String()) || a.Kind == "foreign-key" {
				return true
			}
		}
		return false
	})
}

// Bob rotates his key; his domain has not re-certified yet, so the DHT
// still binds his old key, revoked as superseded by the new one. Alice's
// node follows the revocation and encrypts to the successor.
func TestSendToRotatedContact(t *testing.T) {
	m := newNet(t, nil)
	alice := addUser(t, m, "alice", testnet.UserOptions{})
	bob := addUser(t, m, "bob", testnet.UserOptions{})
	old := bob.Key
	now := time.Now()
	next, rev, err := address.Rotate(old, now, address.NewIdentityOptions{Now: now.Add(-time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := bob.Stop(); err != nil {
		t.Fatal(err)
	}
	bob.SetKey(next)
	if err := bob.Start(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if err := bob.Publish(ctx); err != nil {
		t.Fatal(err)
	}
	k, v, err := record.NewRev(old, rev, uint64(now.UnixMilli()), now, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Put(ctx, k, v); err != nil {
		t.Fatal(err)
	}
	id := send(t, alice, bob, "to your new key")
	if it := outboxItem(t, alice.Node(), id); it.Recipient != next.Fingerprint().String() {
		t.Fatalf("encrypted to %s, want the successor %s", it.Recipient, next.Fingerprint())
	}
	eventually(t, 30*time.Second, "bob's inbox", func() bool { return len(inbox(t, bob.Node())) == 1 })
}

// Addresses that cannot be delivered to are refused at once, not queued
// for five days.
func TestSendRefusesImpossibleRecipients(t *testing.T) {
	m := newNet(t, nil)
	alice := addUser(t, m, "alice", testnet.UserOptions{})
	ctx := context.Background()
	raw, err := compose.Build(compose.Draft{From: alice.Email.String(), To: []string{"nobody@example.org"}, Subject: "x", Body: []byte("x\r\n")})
	if err != nil {
		t.Fatal(err)
	}
	res, err := alice.Node().Send(ctx, raw, []string{"nobody@example.org", "someone@no-dsep.example", "not an address"})
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range res {
		if q.Err == nil {
			t.Errorf("%s was queued", q.To)
		}
	}
	if c, _, _ := alice.Node().Queue().Counts(); c[queue.StatePending] != 0 {
		t.Fatalf("queue: %v", c)
	}
	// Not from one's own address.
	forged, _ := compose.Build(compose.Draft{From: "bob@example.org", To: []string{"alice@example.org"}, Subject: "x", Body: []byte("x\r\n")})
	if _, err := alice.Node().Send(ctx, forged, []string{"alice@example.org"}); !errors.Is(err, node.ErrNotOwnAddress) {
		t.Fatalf("forged From: %v", err)
	}
}

// A message nobody takes before its lifetime ends comes back as a bounce
// in the sender's inbox.
func TestBounceAfterLifetime(t *testing.T) {
	m := newNet(t, func(c *node.Config) { c.Lifetime = 1500 * time.Millisecond })
	alice := addUser(t, m, "alice", testnet.UserOptions{})
	bob := addUser(t, m, "bob", testnet.UserOptions{})
	if err := bob.Stop(); err != nil {
		t.Fatal(err)
	}
	id := send(t, alice, bob, "never read")
	eventually(t, 30*time.Second, "the bounce", func() bool {
		for _, s := range inbox(t, alice.Node()) {
			if s.Subject == "Undelivered: never read" {
				return true
			}
		}
		return false
	})
	// The bounce is filed, then the item marked bounced.
	eventually(t, 10*time.Second, "the item bounced", func() bool { return outboxItem(t, alice.Node(), id).State == queue.StateBounced })
	l := inbox(t, alice.Node())
	msg, err := alice.Node().Backend().Message(context.Background(), l[0].ID, false)
	if err != nil || !bytes.Contains(msg.Body, []byte("could not be delivered to bob@example.org")) {
		t.Fatalf("bounce: %v %s", err, msg.Body)
	}
}

// A large message (an attachment of 15 MiB, 20 MiB in base64) goes
// through the whole path; one over the 25 MiB limit is refused at once.
func TestLargeMessage(t *testing.T) {
	if testing.Short() {
		t.Skip("large message: not in -short")
	}
	m := newNet(t, nil)
	alice := addUser(t, m, "alice", testnet.UserOptions{})
	bob := addUser(t, m, "bob", testnet.UserOptions{})
	att := make([]byte, 15<<20)
	for i := range att {
		att[i] = byte(i * 7)
	}
	raw, err := compose.Build(compose.Draft{
		From: alice.Email.String(), To: []string{bob.Email.String()}, Subject: "big",
		Body: []byte("see attached\r\n"), Attachments: []compose.Attachment{{Name: "data.bin", Data: att}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	res, err := alice.Node().Send(ctx, raw, []string{bob.Email.String()})
	if err != nil || res[0].Err != nil {
		t.Fatalf("send: %v %+v", err, res)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for len(inbox(t, bob.Node())) != 1 {
		if time.Now().After(deadline) {
			it := outboxItem(t, alice.Node(), res[0].ID)
			t.Fatalf("not delivered: %+v", it.Delegates)
		}
		time.Sleep(50 * time.Millisecond)
	}
	msg, err := bob.Node().Backend().Message(ctx, res[0].ID.String(), false)
	if err != nil {
		t.Fatal(err)
	}
	tooBig, err := compose.Build(compose.Draft{
		From: alice.Email.String(), To: []string{bob.Email.String()}, Subject: "too big",
		Body: []byte("see attached\r\n"), Attachments: []compose.Attachment{{Name: "data.bin", Data: make([]byte, 20<<20)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	res2, err := alice.Node().Send(ctx, tooBig, []string{bob.Email.String()})
	if err != nil || res2[0].Err == nil || !strings.Contains(res2[0].Err.Error(), "too large") {
		t.Fatalf("oversize message: %v %+v", err, res2)
	}
	// The DSEP header fields come on top of what was sent.
	if len(msg.Body) < len(raw) || !bytes.HasSuffix(msg.Body, raw[bytes.Index(raw, []byte("\r\n\r\n")):]) {
		t.Fatalf("body of %d bytes, sent %d", len(msg.Body), len(raw))
	}
}

// Mallory signs with her own (bound) key a mail whose From is Alice's
// address: Bob's node files it in Junk, marked as a possible forgery.
func TestForgedFromGoesToJunk(t *testing.T) {
	m := newNet(t, nil)
	alice := addUser(t, m, "alice", testnet.UserOptions{})
	bob := addUser(t, m, "bob", testnet.UserOptions{})
	mallory := addUser(t, m, "mallory", testnet.UserOptions{})
	payload, err := message.Seal(mail(t, alice, bob, "trust me"), message.SealOptions{From: mallory.Key, To: bob.Key})
	if err != nil {
		t.Fatal(err)
	}
	id := envelope.IDOf(payload)
	st, err := stamp.Mint(context.Background(), stamp.MintParams{Bits: testBits, Resource: bob.Key.Fingerprint().String(), Ext: stamp.PayloadExt(id), Workers: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r := newRawHost(t).send(t, bob.Node(), envelope.KindStamp, st, payload); r.Status != deliver.StatusStored {
		t.Fatalf("envelope: %+v", r)
	}
	ctx := context.Background()
	var junk []control.Summary
	eventually(t, 30*time.Second, "the junk folder", func() bool {
		junk, err = bob.Node().Backend().List(ctx, "Junk", 0)
		return err == nil && len(junk) == 1
	})
	if l := inbox(t, bob.Node()); len(l) != 0 {
		t.Fatalf("inbox: %+v", l)
	}
	if junk[0].Verification.Status != control.VerifyMismatch || !strings.HasPrefix(junk[0].Subject, "[DSEP: FORGED?]") {
		t.Fatalf("junk: %+v", junk[0])
	}
	msg, err := bob.Node().Backend().Message(ctx, junk[0].ID, false)
	if err != nil || !bytes.Contains(msg.Body, []byte("Authentication-Results: dsep.local; dsep=fail")) {
		t.Fatalf("message: %v\n%s", err, msg.Body)
	}
}

// A mail client submits at Alice's node over SMTP: To, Cc and Bcc
// recipients each get their copy, nobody sees the Bcc header, and the
// Sent folder has the message.
func TestSubmitOverSMTP(t *testing.T) {
	pw := "client-secret"
	m := newNet(t, func(c *node.Config) {
		c.SMTPListen = "127.0.0.1:0"
		c.Authenticate = func(_ context.Context, user, pass string) error {
			if pass != pw {
				return errors.New("bad password")
			}
			return nil
		}
	})
	alice := addUser(t, m, "alice", testnet.UserOptions{})
	bob := addUser(t, m, "bob", testnet.UserOptions{})
	carol := addUser(t, m, "carol", testnet.UserOptions{})
	dave := addUser(t, m, "dave", testnet.UserOptions{})

	c, err := smtp.Dial(alice.Node().SMTPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", alice.Email.String(), "wrong")); err == nil {
		t.Fatal("a wrong password was accepted")
	}
	if err := c.Auth(sasl.NewPlainClient("", alice.Email.String(), pw)); err != nil {
		t.Fatal(err)
	}
	msg := "From: Alice <alice@example.org>\r\nTo: bob@example.org\r\nCc: carol@example.org\r\nBcc: dave@example.org\r\n" +
		"Subject: over SMTP\r\nMessage-ID: <smtp-1@example.org>\r\n\r\nHello all.\r\n"
	if err := c.SendMail(alice.Email.String(), []string{"bob@example.org", "carol@example.org", "dave@example.org"}, strings.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	// An address no DSEP domain serves is refused at RCPT time.
	if err := c.Mail(alice.Email.String(), nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("someone@no-dsep.example", nil); err == nil || !strings.Contains(err.Error(), "550") {
		t.Fatalf("RCPT to a non-DSEP address: %v", err)
	}
	_ = c.Reset()
	for _, u := range []*testnet.User{bob, carol, dave} {
		eventually(t, 30*time.Second, u.Email.String()+"'s inbox", func() bool { return len(inbox(t, u.Node())) == 1 })
		s := inbox(t, u.Node())[0]
		got, err := u.Node().Backend().Message(context.Background(), s.ID, false)
		if err != nil {
			t.Fatal(err)
		}
		if s.Verification.Status != control.VerifyVerified || bytes.Contains(got.Body, []byte("Bcc:")) || !bytes.Contains(got.Body, []byte("Hello all.")) {
			t.Fatalf("%s got %+v\n%s", u.Email, s, got.Body)
		}
	}
	sent, err := alice.Node().Backend().List(context.Background(), "Sent", 0)
	if err != nil || len(sent) != 1 {
		t.Fatalf("Sent: %v %+v", err, sent)
	}
}

// A sender whose domain has not published its email record is an unknown
// key, until the user pins that key for the address in the address book
// (as `dsep verify --key` does): then it counts as verified out of band.
func TestBookApprovedKeyVerifies(t *testing.T) {
	b, err := book.Open(t.TempDir(), book.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	m := newNet(t, nil)
	alice := addUser(t, m, "alice", testnet.UserOptions{NoEmailRecord: true})
	bob := addUser(t, m, "bob", testnet.UserOptions{Node: func(c *node.Config) { c.Book = b }})

	send(t, alice, bob, "before")
	eventually(t, 30*time.Second, "bob's inbox", func() bool { return len(inbox(t, bob.Node())) == 1 })
	if got := inbox(t, bob.Node())[0]; got.Verification.Status != control.VerifyUnknownKey {
		t.Fatalf("before approval: %+v", got.Verification)
	}

	v := address.VerifyBinding(address.BindingInput{
		Email:     alice.Email,
		DNS:       address.DNSAnswer{Records: []string{address.DomainRecord{Key: m.Domain.Fingerprint()}.String()}},
		Key:       alice.Key,
		DomainKey: m.Domain,
	})
	if !v.OK() {
		t.Fatalf("binding: %+v", v)
	}
	if _, err := b.Observe(book.Observation{Email: alice.Email, Key: alice.Key, DomainKey: m.Domain, Verdict: v}); err != nil {
		t.Fatal(err)
	}

	id := send(t, alice, bob, "after")
	eventually(t, 30*time.Second, "bob's inbox", func() bool { return len(inbox(t, bob.Node())) == 2 })
	var got control.Summary
	for _, s := range inbox(t, bob.Node()) {
		if s.ID == id.String() {
			got = s
		}
	}
	if got.Verification.Status != control.VerifyVerified || !strings.Contains(got.Verification.Detail, "verified out of band") {
		t.Fatalf("after approval: %+v", got.Verification)
	}
	msg, err := bob.Node().Backend().Message(context.Background(), got.ID, false)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(msg.Body, []byte("dsep=pass")) || !bytes.Contains(msg.Body, []byte("verified out of band")) {
		t.Fatalf("message:\n%s", msg.Body)
	}

	// The control API serves the book: a blocked contact is no longer
	// trusted, an approved one is again.
	ctx := context.Background()
	cb := bob.Node().Backend().(control.ContactBook)
	cs, err := cb.Contacts(ctx)
	if err != nil || len(cs) != 1 || cs[0].Email != alice.Email.String() || cs[0].Key != alice.Key.Fingerprint().String() || !cs[0].Trusted {
		t.Fatalf("contacts: %v %+v", err, cs)
	}
	if c, err := cb.BlockContact(ctx, alice.Email.String(), "testing"); err != nil || c.State != string(book.Blocked) || c.Reason != "testing" {
		t.Fatalf("block: %v %+v", err, c)
	}
	id = send(t, alice, bob, "blocked")
	eventually(t, 30*time.Second, "bob's inbox", func() bool { return len(inbox(t, bob.Node())) == 3 })
	for _, s := range inbox(t, bob.Node()) {
		if s.ID == id.String() && s.Verification.Status != control.VerifyUnknownKey {
			t.Fatalf("blocked sender: %+v", s.Verification)
		}
	}
	if c, err := cb.ApproveContact(ctx, alice.Email.String()); err != nil || c.State != string(book.FirstSeen) {
		t.Fatalf("approve: %v %+v", err, c)
	}
	var e *control.Error
	if _, err := cb.Contact(ctx, "carol@example.org"); !errors.As(err, &e) || e.Code != 404 {
		t.Fatalf("unknown contact: %v", err)
	}
	// A node without a book says so.
	if _, err := alice.Node().Backend().(control.ContactBook).Contacts(ctx); !errors.As(err, &e) || e.Code != 503 {
		t.Fatalf("no book: %v", err)
	}
}

// A sender verified over DNS whose address the address book holds in
// conflict stays verified, with the book's hijack warning in the detail.
func TestBookConflictWarns(t *testing.T) {
	b, err := book.Open(t.TempDir(), book.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	m := newNet(t, nil)
	alice := addUser(t, m, "alice", testnet.UserOptions{})
	bob := addUser(t, m, "bob", testnet.UserOptions{Node: func(c *node.Config) { c.Book = b }})

	// Bob's book first pinned another key for alice's address; the key
	// DNS now binds is not signed by it: a conflict.
	now := time.Now()
	other, err := address.NewIdentity("", alice.Email, address.NewIdentityOptions{Now: now.Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := other.UserIDFor(alice.Email, now)
	if other, err = address.Certify(other, uid, m.Domain, now.Add(-time.Minute), 0); err != nil {
		t.Fatal(err)
	}
	dns := address.DNSAnswer{Records: []string{address.DomainRecord{Key: m.Domain.Fingerprint()}.String()}}
	for _, k := range []*address.Key{other, alice.Key} {
		v := address.VerifyBinding(address.BindingInput{Email: alice.Email, DNS: dns, Key: k, DomainKey: m.Domain})
		if _, err := b.Observe(book.Observation{Email: alice.Email, Key: k, DomainKey: m.Domain, Verdict: v}); err != nil {
			t.Fatal(err)
		}
	}
	c, err := b.Get(alice.Email)
	if err != nil || c.State != book.Conflict || book.HijackWarning(c) == "" {
		t.Fatalf("contact: %v %+v", err, c)
	}

	send(t, alice, bob, "hello")
	eventually(t, 30*time.Second, "bob's inbox", func() bool { return len(inbox(t, bob.Node())) == 1 })
	got := inbox(t, bob.Node())[0].Verification
	if got.Status != control.VerifyVerified || !strings.Contains(got.Detail, "the address book pins another key") {
		t.Fatalf("verification: %+v", got)
	}
}
