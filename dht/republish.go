package dht

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/dsep-project/dsep/dht/record"
)

// DefaultRepublishInterval is how often a Republisher re-puts its records:
// kad-dht keeps a record 48 hours and nothing republishes for you, so
// every 12 hours leaves three chances before a copy expires.
const DefaultRepublishInterval = 12 * time.Hour

// Putter is what the republisher needs of the DHT (*Node).
type Putter interface {
	Put(ctx context.Context, key string, value []byte) (int, error)
	Get(ctx context.Context, key string) ([]byte, error)
}

// RepublishConfig configures a Republisher.
type RepublishConfig struct {
	// Interval between rounds; default DefaultRepublishInterval.
	Interval time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger receives one line per failed put; nil: silent.
	Logger *slog.Logger
}

// Republisher keeps records alive in the DHT by putting the exact bytes
// it was given again and again until they reach their end of life. It
// never re-signs anything, so records whose signer is offline (a primary
// key kept offline, a user whose mailbox server republishes for them) stay
// published. Safe for concurrent use.
type Republisher struct {
	dht Putter
	cfg RepublishConfig
	mu  sync.Mutex // guards recs and follow
	// recs maps a DHT key to the value republished verbatim.
	recs map[string]entry
	// follow holds keys whose current value is fetched from the network
	// before each round (a delegate republishing its user's records).
	follow map[string]bool
}

type entry struct {
	value []byte
	eol   time.Time
}

// NewRepublisher returns a Republisher over d.
func NewRepublisher(d Putter, cfg RepublishConfig) *Republisher {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultRepublishInterval
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Republisher{dht: d, cfg: cfg, recs: make(map[string]entry), follow: make(map[string]bool)}
}

// Add verifies value as the record of key and republishes it from now on,
// replacing what the republisher held for key only with a record the
// namespace's selection prefers (a higher sequence number).
func (r *Republisher) Add(key string, value []byte) error {
	v, err := record.Verify(key, value, r.cfg.Now())
	if err != nil {
		return fmt.Errorf("dht: not republishing %s: %w", key, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.recs[key]; ok {
		i, err := (record.Validator{Now: r.cfg.Now}).Select(key, [][]byte{old.value, value})
		if err == nil && i == 0 {
			return nil
		}
	}
	r.recs[key] = entry{value: value, eol: v.Signed.Record.EOL}
	return nil
}

// Follow republishes, each round, whatever the network currently holds
// under key (after verifying it): how a mailbox delegate keeps its user's
// key and reach records alive without holding any of the user's keys.
func (r *Republisher) Follow(key string) {
	r.mu.Lock()
	r.follow[key] = true
	r.mu.Unlock()
}

// Remove stops republishing key.
func (r *Republisher) Remove(key string) {
	r.mu.Lock()
	delete(r.recs, key)
	delete(r.follow, key)
	r.mu.Unlock()
}

// Keys returns the keys being republished, sorted.
func (r *Republisher) Keys() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for k := range r.recs {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// RepublishReport says what one round did.
type RepublishReport struct {
	Put     int      // records confirmed by at least one peer
	Failed  []string // keys no peer confirmed
	Expired []string // keys dropped because their record reached its eol
}

// RepublishNow runs one round: refresh followed keys from the network,
// drop expired records, put the rest.
func (r *Republisher) RepublishNow(ctx context.Context) RepublishReport {
	r.mu.Lock()
	var follow []string
	for k := range r.follow {
		follow = append(follow, k)
	}
	r.mu.Unlock()
	for _, k := range follow {
		if v, err := r.dht.Get(ctx, k); err == nil {
			if err := r.Add(k, v); err != nil {
				r.cfg.Logger.Warn("followed record is invalid", "key", k, "err", err)
			}
		}
	}
	now := r.cfg.Now()
	var rep RepublishReport
	r.mu.Lock()
	type kv struct {
		k string
		v []byte
	}
	var todo []kv
	for k, e := range r.recs {
		if !now.Before(e.eol) {
			delete(r.recs, k)
			rep.Expired = append(rep.Expired, k)
			continue
		}
		todo = append(todo, kv{k, e.value})
	}
	r.mu.Unlock()
	sort.Slice(todo, func(i, j int) bool { return todo[i].k < todo[j].k })
	for _, x := range todo {
		if ctx.Err() != nil {
			rep.Failed = append(rep.Failed, x.k)
			continue
		}
		n, err := r.dht.Put(ctx, x.k, x.v)
		if err != nil || n == 0 {
			if err == nil {
				err = errors.New("no peer confirmed it")
			}
			r.cfg.Logger.Warn("republish failed", "key", x.k, "err", err)
			rep.Failed = append(rep.Failed, x.k)
			continue
		}
		rep.Put++
	}
	sort.Strings(rep.Expired)
	return rep
}

// Run republishes every Interval (and once at start) until ctx ends.
func (r *Republisher) Run(ctx context.Context) {
	t := time.NewTicker(r.cfg.Interval)
	defer t.Stop()
	for {
		r.RepublishNow(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
