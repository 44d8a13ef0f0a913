package testnet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dsep-project/dsep/address"
	"github.com/dsep-project/dsep/node"
	"github.com/dsep-project/dsep/node/compose"
	"github.com/dsep-project/dsep/node/message"
	"github.com/dsep-project/dsep/node/receipt"
	"github.com/dsep-project/dsep/node/store"
)

// Defaults of DeliverBench.
const (
	DefaultDeliverSize    = 4096
	DefaultDeliverSeconds = 60
	// deliverInflight bounds the messages submitted but not yet filed
	// when no rate is set: the sender runs as fast as the path drains.
	deliverInflight = 2048
	// deliverDrain is how long the run waits for the last messages and
	// receipts once sending stopped.
	deliverDrain = 60 * time.Second
)

// DeliverBench describes the delivery benchmark of RunDeliverBench.
type DeliverBench struct {
	// Nodes is the number of mail nodes: 2 (a sender and a recipient).
	Nodes int
	// Messages, when > 0, sends exactly this many; else Duration decides.
	Messages int
	// Duration is how long to send. Default DefaultDeliverSeconds.
	Duration time.Duration
	// Size is the size of each mail in bytes. Default 4096.
	Size int
	// Rate, when > 0, sends this many messages per second (open loop);
	// else as fast as the path takes them, with a bound on those in
	// flight (closed loop).
	Rate float64
	// Dir holds the nodes' stores. Default: a temporary directory.
	Dir string
	// Logger receives the phases of the run. Default: silent.
	Logger *slog.Logger
}

// DeliverResult is what RunDeliverBench measured. The JSON names are
// those of `dsep testnet bench deliver --json`.
type DeliverResult struct {
	Nodes    int     `json:"nodes"`
	Size     int     `json:"size"`
	Rate     float64 `json:"rate,omitempty"`
	Sent     int     `json:"sent"`
	Received int     `json:"received"`
	Seconds  float64 `json:"seconds"`
	// MsgsPerSec is messages filed at the recipient per second of the
	// sending period (first submission to last filing).
	MsgsPerSec float64 `json:"msgs_per_sec"`
	// P50Ms and P99Ms are the latencies from Send to the recipient's
	// filing (after decryption, verification, the binding check and
	// indexing).
	P50Ms float64 `json:"p50_ms"`
	P99Ms float64 `json:"p99_ms"`
	// Lost are messages sent and never filed; Duplicates are messages
	// filed more than once.
	Lost       int `json:"lost"`
	Duplicates int `json:"duplicates"`
	// Receipts is how many signed receipts came back to the sender.
	Receipts int `json:"receipts"`
	// CryptoBoundMsgsPerSec = 1 / (sign+encrypt + decrypt+verify +
	// receipt sign + receipt verify) of one message of Size, timed in
	// this process: the rate one core could reach doing only the crypto.
	CryptoBoundMsgsPerSec float64 `json:"crypto_bound_msgs_per_sec"`
	// OfCryptoBound is MsgsPerSec / CryptoBoundMsgsPerSec.
	OfCryptoBound float64 `json:"of_crypto_bound"`
}

// RunDeliverBench measures the whole delivery path between two nodes on
// loopback: DNS, a domain, a small DHT backbone, alice and bob. Bob gives
// alice a waiver (so the run measures delivery, not stamp minting: see
// `dsep stamp bench` for that). Every message goes alice's queue →
// /dsep/deliver stream → bob's durable store → ack → decryption,
// signature, recipient and binding checks, indexing → a signed receipt
// back to alice. Messages are counted when bob files them. The per-peer
// rate limits are lifted: each node has one peer.
func RunDeliverBench(ctx context.Context, cfg DeliverBench, progress func(sent, filed int)) (_ *DeliverResult, err error) {
	if cfg.Nodes == 0 {
		cfg.Nodes = 2
	}
	if cfg.Nodes != 2 {
		return nil, fmt.Errorf("testnet: the delivery benchmark runs 2 nodes, not %d", cfg.Nodes)
	}
	if cfg.Size <= 0 {
		cfg.Size = DefaultDeliverSize
	}
	if cfg.Messages <= 0 && cfg.Duration <= 0 {
		cfg.Duration = DefaultDeliverSeconds * time.Second
	}
	if progress == nil {
		progress = func(int, int) {}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Dir == "" {
		d, err := os.MkdirTemp("", "dsep-bench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		cfg.Dir = d
	}

	var (
		mu       sync.Mutex
		sentAt   = map[int]time.Time{}
		lat      []time.Duration
		filedN   = map[int]int{}
		lastFile time.Time
		filed    atomic.Int64
		slots    = make(chan struct{}, deliverInflight)
	)
	onFiled := func(m store.Meta) {
		i, ok := benchSeq(m.Subject)
		if !ok {
			return
		}
		now := time.Now()
		mu.Lock()
		filedN[i]++
		if filedN[i] == 1 {
			if t, ok := sentAt[i]; ok {
				lat = append(lat, now.Sub(t))
			}
			lastFile = now
			filed.Add(1)
			select {
			case <-slots:
			default:
			}
		}
		mu.Unlock()
	}

	m, err := NewMailNet(ctx, MailConfig{Dir: cfg.Dir, Backbone: 2, Node: func(c *node.Config) {
		// One peer is the whole load here: lift the per-peer limits
		// (default 50 envelopes/s) that would otherwise be measured.
		c.PeerRate, c.PeerBurst = 1e5, 1e5
	}})
	if err != nil {
		return nil, err
	}
	defer func() { err = closeJoin(err, m.Close()) }()
	alice, err := m.AddUser(ctx, "alice", UserOptions{})
	if err != nil {
		return nil, err
	}
	bob, err := m.AddUser(ctx, "bob", UserOptions{Node: func(c *node.Config) { c.OnFiled = onFiled }})
	if err != nil {
		return nil, err
	}
	tok, err := bob.Node().IssueWaiver(ctx, time.Time{})
	if err != nil {
		return nil, err
	}
	if err := alice.Node().AddWaiver(ctx, tok); err != nil {
		return nil, err
	}
	res := &DeliverResult{Nodes: cfg.Nodes, Size: cfg.Size, Rate: cfg.Rate}
	if res.CryptoBoundMsgsPerSec, err = cryptoBound(alice, bob, cfg.Size); err != nil {
		return nil, err
	}
	log.Info("deliver bench: network ready", "crypto_bound_msgs_per_sec", res.CryptoBoundMsgsPerSec)

	body := benchBody(cfg.Size)
	to := []string{bob.Email.String()}
	start := time.Now()
	var tick *time.Ticker
	if cfg.Rate > 0 {
		tick = time.NewTicker(time.Duration(float64(time.Second) / cfg.Rate))
		defer tick.Stop()
	}
	var wg sync.WaitGroup
	var sendErr atomic.Value
	const senders = 8
	next := make(chan int)
	for w := 0; w < senders; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				raw, err := compose.Build(compose.Draft{From: alice.Email.String(), To: to, Subject: fmt.Sprintf("bench %d", i), Body: body})
				if err == nil {
					mu.Lock()
					sentAt[i] = time.Now()
					mu.Unlock()
					var q []node.Queued
					q, err = alice.Node().Send(ctx, raw, to)
					if err == nil && q[0].Err != nil {
						err = q[0].Err
					}
				}
				if err != nil {
					sendErr.CompareAndSwap(nil, err)
				}
			}
		}()
	}
	sent := 0
	lastProgress := time.Now()
send:
	for {
		if cfg.Messages > 0 && sent >= cfg.Messages {
			break
		}
		if cfg.Messages <= 0 && time.Since(start) >= cfg.Duration {
			break
		}
		if tick != nil {
			select {
			case <-ctx.Done():
				break send
			case <-tick.C:
			}
		} else {
			select {
			case <-ctx.Done():
				break send
			case slots <- struct{}{}:
			}
		}
		select {
		case next <- sent:
		case <-ctx.Done():
			break send
		}
		sent++
		if time.Since(lastProgress) > 5*time.Second {
			progress(sent, int(filed.Load()))
			lastProgress = time.Now()
		}
	}
	close(next)
	wg.Wait()
	if e, ok := sendErr.Load().(error); ok && e != nil {
		return nil, fmt.Errorf("testnet: send: %w", e)
	}
	res.Sent = sent
	// Drain: wait for the stragglers and the receipts.
	deadline := time.Now().Add(deliverDrain)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if int(filed.Load()) >= sent && int(alice.Node().Stats().Receipts.Load()) >= sent {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // duplicates, if any, would be filed by now
	progress(sent, int(filed.Load()))

	mu.Lock()
	defer mu.Unlock()
	res.Received = len(filedN)
	for _, c := range filedN {
		if c > 1 {
			res.Duplicates += c - 1
		}
	}
	res.Lost = sent - res.Received
	res.Receipts = int(alice.Node().Stats().Receipts.Load())
	end := lastFile
	if end.IsZero() {
		end = time.Now()
	}
	res.Seconds = end.Sub(start).Seconds()
	if res.Seconds > 0 {
		res.MsgsPerSec = float64(res.Received) / res.Seconds
	}
	res.P50Ms = percentileMs(lat, 50)
	res.P99Ms = percentileMs(lat, 99)
	if res.CryptoBoundMsgsPerSec > 0 {
		res.OfCryptoBound = res.MsgsPerSec / res.CryptoBoundMsgsPerSec
	}
	return res, nil
}

func benchSeq(subject string) (int, bool) {
	s, ok := strings.CutPrefix(subject, "bench ")
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(s)
	return i, err == nil
}

// benchBody is size bytes of printable text in lines.
func benchBody(size int) []byte {
	b := make([]byte, 0, size)
	line := "The quick brown fox jumps over the lazy dog, again and again.\r\n"
	for len(b) < size {
		b = append(b, line...)
	}
	return b[:size]
}

// cryptoBound times the crypto of one message, alone, in this process.
func cryptoBound(alice, bob *User, size int) (float64, error) {
	raw, err := compose.Build(compose.Draft{From: alice.Email.String(), To: []string{bob.Email.String()}, Subject: "bound", Body: benchBody(size)})
	if err != nil {
		return 0, err
	}
	// Public keys parsed once, as a node keeps them (go-crypto caches
	// their self-signature checks).
	alicePub, bobPub := alice.Key.PublicOnly(), bob.Key.PublicOnly()
	lookup := func(context.Context, address.Fingerprint) (*address.Key, error) { return alicePub, nil }
	const rounds = 200
	ctx := context.Background()
	start := time.Now()
	for i := 0; i < rounds; i++ {
		now := time.Now()
		p, err := message.Seal(raw, message.SealOptions{From: alice.Key, To: bob.Key, Now: now})
		if err != nil {
			return 0, err
		}
		op, err := message.Open(ctx, p, message.OpenOptions{Own: bob.Key, Now: now, Lookup: lookup})
		if err != nil {
			return 0, err
		}
		r := receipt.Receipt{MessageID: [32]byte{1}, Recipient: bob.Key.Fingerprint(), Sender: op.Sender, Received: now, Status: receipt.StatusDelivered}
		b, err := r.Sign(bob.Key, now)
		if err != nil {
			return 0, err
		}
		s, err := receipt.Parse(b)
		if err != nil {
			return 0, err
		}
		if err := s.Verify(bobPub, now); err != nil {
			return 0, err
		}
	}
	per := time.Since(start) / rounds
	if per <= 0 {
		return 0, errors.New("testnet: no time measured")
	}
	return float64(time.Second) / float64(per), nil
}
