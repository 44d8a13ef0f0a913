package stamp

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// counterAlphabet orders the base64 characters so that '0' is digit zero:
// the zero padding of a counter is then a true leading zero, as in the
// stamps the hashcash tool writes.
const counterAlphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz+/"

const randAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

const (
	randLen   = 16      // rand characters, as the hashcash tool writes (96 bits)
	varDigits = 11      // counter digits a worker varies: 64^11 = 2^66 tries
	batch     = 64 * 64 // tries between looks at the stop flag
)

// MintParams says what stamp Mint makes. Zero Now and Workers select
// their defaults.
type MintParams struct {
	Bits     int       // leading zero bits, 0..160
	Resource string    // the recipient fingerprint
	Ext      string    // PayloadExt of the payload digest, or ""
	Now      time.Time // date of the stamp (YYMMDD, UTC); default time.Now()
	Workers  int       // goroutines searching; default runtime.NumCPU()
}

// Mint searches for a stamp with p.Bits leading zero bits and returns it.
// It stops all its workers and returns ctx.Err() when ctx is done. If
// progress is not nil it is called with the total tries so far, at most
// about ten times a second, from one goroutine at a time; it must return
// quickly.
func Mint(ctx context.Context, p MintParams, progress func(tries uint64)) (string, error) {
	if p.Bits < 0 || p.Bits > 160 {
		return "", fmt.Errorf("stamp: cannot mint %d bits: want 0..160", p.Bits)
	}
	if !printable(p.Resource) || !printable(p.Ext) {
		return "", fmt.Errorf("stamp: resource and ext must be printable ASCII without ':' or spaces")
	}
	now := p.Now
	if now.IsZero() {
		now = time.Now()
	}
	prefix := "1:" + strconv.Itoa(p.Bits) + ":" + formatDate(now, 6) + ":" + p.Resource + ":" + p.Ext + ":"
	s, _, err := search(ctx, prefix, p.Bits, p.Workers, progress)
	return s, err
}

// Bench runs the minting loop on an unreachable target for d (or until ctx
// is done) with workers goroutines (0 = runtime.NumCPU()) and returns the
// tries per second achieved.
func Bench(ctx context.Context, d time.Duration, workers int) float64 {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	start := time.Now()
	_, tries, _ := search(ctx, "1:160:"+formatDate(start, 6)+":bench::", 160, workers, nil)
	return float64(tries) / time.Since(start).Seconds()
}

// search runs workers goroutines, each with its own rand, until one finds
// a stamp or ctx is done. It returns the stamp and the tries made.
func search(ctx context.Context, prefix string, nbits, workers int, progress func(uint64)) (string, uint64, error) {
	if workers <= 0 {
		workers = runtime.NumCPU()
	}
	if len(prefix)+randLen+1+varDigits > MaxLen {
		return "", 0, fmt.Errorf("stamp: resource and ext too long for a %d-byte stamp", MaxLen)
	}
	rands, err := distinctRands(workers)
	if err != nil {
		return "", 0, err
	}
	var (
		stop   atomic.Bool
		tries  atomic.Uint64
		once   sync.Once
		result string
		wg     sync.WaitGroup
	)
	found := make(chan struct{})
	miners := make([]*miner, len(rands))
	for i, r := range rands {
		miners[i] = newMiner(prefix+r+":", nbits)
		if len(miners[i].msg) > MaxLen {
			return "", 0, fmt.Errorf("stamp: resource and ext too long for a %d-byte stamp", MaxLen)
		}
	}
	for _, m := range miners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if s, ok := m.run(&stop, &tries); ok {
				once.Do(func() {
					result = s
					stop.Store(true)
					close(found)
				})
			}
		}()
	}
	var tick <-chan time.Time
	if progress != nil {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		tick = t.C
	}
	var ctxErr error
loop:
	for {
		select {
		case <-found:
			break loop
		case <-ctx.Done():
			ctxErr = ctx.Err()
			break loop
		case <-tick:
			progress(tries.Load())
		}
	}
	stop.Store(true)
	wg.Wait()
	select {
	case <-found:
		return result, tries.Load(), nil
	default:
		return "", tries.Load(), ctxErr
	}
}

func distinctRands(n int) ([]string, error) {
	seen := make(map[string]bool, n)
	out := make([]string, 0, n)
	var buf [randLen]byte
	for len(out) < n {
		if _, err := rand.Read(buf[:]); err != nil {
			return nil, fmt.Errorf("stamp: reading random bytes: %w", err)
		}
		for i, b := range buf {
			buf[i] = randAlphabet[b&63]
		}
		if s := string(buf[:]); !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out, nil
}

// miner holds one worker's message: prefix, then a counter zero-padded so
// that the message ends at byte 55 of its last 64-byte block. The SHA-1
// length padding then fits in that block, which holds all the varying
// counter digits, so each try is one compression of that block, and its
// first 13 rounds (words 0..12) are shared by the 64^3 tries that vary only
// the three lowest digits (bytes 52..54, in word 13); see prepare.
type miner struct {
	msg    []byte    // the whole stamp; counter digits are updated in place
	last   int       // offset of the last block in msg
	mid    [5]uint32 // SHA-1 state after the blocks before last
	block  [64]byte  // last block with padding
	digits [varDigits]byte
	x      [80]uint32 // message schedule of block, set by prepare
	s      [5]uint32  // working variables from premint, set by prepare
	mask   uint32     // leading bits of the first output word that must be 0
	nbits  int
}

func newMiner(prefix string, nbits int) *miner {
	p := len(prefix)
	last := p / 64 * 64
	if p-last > 55-varDigits {
		last += 64
	}
	n := last + 55
	m := &miner{msg: make([]byte, n), last: last, nbits: nbits}
	copy(m.msg, prefix)
	for i := p; i < n; i++ {
		m.msg[i] = '0'
	}
	m.mid = [5]uint32{0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0}
	for off := 0; off < last; off += 64 {
		block(&m.mid, (*[64]byte)(m.msg[off:off+64]))
	}
	copy(m.block[:], m.msg[last:])
	m.block[55] = 0x80
	binary.BigEndian.PutUint64(m.block[56:], uint64(n)*8)
	switch {
	case nbits >= 32:
		m.mask = ^uint32(0)
	default:
		m.mask = ^uint32(0) << (32 - nbits) // 0 bits: mask 0
	}
	return m
}

// run searches until it finds a stamp (returned with true) or stop is set.
func (m *miner) run(stop *atomic.Bool, tries *atomic.Uint64) (string, bool) {
	for {
		m.prepare()
		for d2 := range 64 {
			if stop.Load() {
				return "", false
			}
			if n, ok := m.scan(d2); ok {
				tries.Add(n)
				return string(m.msg), true
			}
			tries.Add(batch)
		}
		if !m.carry() {
			return "", false
		}
	}
}

// prepare loads the last block's words and does the work that the 64^3
// tries on the three lowest counter digits (all in word 13) share: rounds
// 0..12, most of round 13, and the schedule words not depending on word 13.
func (m *miner) prepare() {
	var w [16]uint32
	for i := range w {
		w[i] = binary.BigEndian.Uint32(m.block[4*i:])
	}
	m.s = premint(&m.mid, &w)
	m.x = expand(&w)
}

// scan tries the 64*64 values of the two lowest counter digits with the
// third lowest set to d2. On success it leaves the counter in msg and
// returns the tries made and true.
func (m *miner) scan(d2 int) (uint64, bool) {
	s, x := m.s, m.x
	h0, mask := m.mid[0], m.mask
	for d1 := range 64 {
		hi := uint32(counterAlphabet[d2])<<24 | uint32(counterAlphabet[d1])<<16 | 0x80
		for d0 := range 64 {
			w13 := hi | uint32(counterAlphabet[d0])<<8
			if mintTry(&s, h0, w13, &x)&mask != 0 {
				continue
			}
			m.setLow(d2, d1, d0)
			if LeadingZeros(string(m.msg)) >= m.nbits {
				return uint64(d1*64 + d0 + 1), true
			}
		}
	}
	return batch, false
}

func (m *miner) setLow(d2, d1, d0 int) {
	n := len(m.msg)
	m.msg[n-3] = counterAlphabet[d2]
	m.msg[n-2] = counterAlphabet[d1]
	m.msg[n-1] = counterAlphabet[d0]
}

// carry advances the counter digits above the lowest three, in msg and in
// the last block; false when all are exhausted.
func (m *miner) carry() bool {
	n := len(m.msg)
	for i := 3; i < varDigits; i++ {
		m.digits[i]++
		c := m.digits[i] & 63
		m.digits[i] = c
		m.msg[n-1-i] = counterAlphabet[c]
		m.block[54-i] = counterAlphabet[c]
		if c != 0 {
			return true
		}
	}
	return false // 2^66 tries: never in practice
}
