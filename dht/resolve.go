package dht

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/dsep-project/dsep/address"
	dsepdns "github.com/dsep-project/dsep/address/dns"
	"github.com/dsep-project/dsep/dht/record"
)

// Errors of ResolveEmail, one per step of the chain. Each error ResolveEmail
// returns wraps exactly one of them (inside a *ResolveError).
var (
	// ErrDNS: the _dsep TXT lookup failed (time-out, SERVFAIL, network).
	// Temporary: try again.
	ErrDNS = errors.New("dht: DNS lookup failed")
	// ErrNoDomainRecord: the domain publishes no (valid) _dsep TXT record.
	ErrNoDomainRecord = errors.New("dht: the domain publishes no DSEP record")
	// ErrNoEmailRecord: no domain key named in DNS has filled the address's
	// email slot.
	ErrNoEmailRecord = errors.New("dht: no email record for the address")
	// ErrNoKeyRecord: the key the email record names has no key record.
	ErrNoKeyRecord = errors.New("dht: no key record for the bound key")
	// ErrNoDomainKey: the domain key named in DNS has no key record.
	ErrNoDomainKey = errors.New("dht: no key record for the domain key")
	// ErrBinding: the records were found but the binding does not hold
	// (see the Verdict).
	ErrBinding = errors.New("dht: the binding does not hold")
	// ErrRevoked: the bound key is revoked (see Resolution.Revocation: a
	// superseded one names the successor).
	ErrRevoked = errors.New("dht: the bound key is revoked")
	// ErrNoReach: the key is bound but publishes no reach record.
	ErrNoReach = errors.New("dht: no reach record for the key")
)

// ResolveError says which step of a resolution failed.
type ResolveError struct {
	Email address.Email
	Step  string // "dns", "email-record", "key-record", "domain-key", "binding", "revocation", "reach"
	Err   error
}

func (e *ResolveError) Error() string {
	return fmt.Sprintf("resolving %s: %s: %v", e.Email, e.Step, e.Err)
}

func (e *ResolveError) Unwrap() error { return e.Err }

// Temporary reports whether trying again may help (DNS or network
// failures, not a missing or invalid record).
func (e *ResolveError) Temporary() bool {
	return errors.Is(e.Err, ErrDNS) || errors.Is(e.Err, context.DeadlineExceeded)
}

// Resolution is what ResolveEmail proved about an address. On ErrRevoked
// and ErrNoReach it is returned together with the error.
type Resolution struct {
	Email address.Email
	// Key is the bound key: from its key record, with the domain's
	// certification from the email record attached.
	Key *address.Key
	// DomainKey is the domain key that certified it (from its key record).
	DomainKey *address.Key
	// Verdict is the binding verdict (address.VerifyBinding).
	Verdict address.Verdict
	// Revocation is the key's strongest revocation, or nil.
	Revocation *address.Revocation
	// Reach says where the key's delegates can be reached, or nil.
	Reach *record.ReachRecord
}

// TXTLookup is what the resolver needs of DNS (address/dns.Resolver).
type TXTLookup interface {
	LookupTXT(ctx context.Context, name string) (*dsepdns.TXTAnswer, error)
}

// Getter is what the resolver needs of the DHT (*Node).
type Getter interface {
	Get(ctx context.Context, key string) ([]byte, error)
}

// ResolverConfig configures a Resolver. The zero value of every field but
// DNS and DHT works.
type ResolverConfig struct {
	DNS TXTLookup // required
	DHT Getter    // required
	// Timeout bounds one ResolveEmail; default 20s.
	Timeout time.Duration
	// CacheSize bounds the cache of verified records; default 4096
	// records, negative disables it. Entries live until the record's eol,
	// at most CacheTTL.
	CacheSize int
	// CacheTTL caps how long a verified record is reused (so revocations
	// and new sequence numbers are seen); default 10 minutes.
	CacheTTL time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Resolver resolves DSEP names over DNS and the DHT, verifying every
// record and every signature. Safe for concurrent use.
type Resolver struct {
	cfg   ResolverConfig
	mu    sync.Mutex // guards cache
	cache map[string]cached
}

type cached struct {
	v     *record.Verified
	until time.Time
}

// NewResolver returns a Resolver.
func NewResolver(cfg ResolverConfig) (*Resolver, error) {
	if cfg.DNS == nil || cfg.DHT == nil {
		return nil, errors.New("dht: resolver needs DNS and a DHT")
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 20 * time.Second
	}
	if cfg.CacheSize == 0 {
		cfg.CacheSize = 4096
	}
	if cfg.CacheTTL == 0 {
		cfg.CacheTTL = 10 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Resolver{cfg: cfg, cache: make(map[string]cached)}, nil
}

// FlushCache forgets every verified record.
func (r *Resolver) FlushCache() {
	r.mu.Lock()
	r.cache = make(map[string]cached)
	r.mu.Unlock()
}

// Lookup fetches the record under key from the DHT (or the cache) and
// verifies it. A missing record is ErrNotFound.
func (r *Resolver) Lookup(ctx context.Context, key string) (*record.Verified, error) {
	now := r.cfg.Now()
	r.mu.Lock()
	c, ok := r.cache[key]
	r.mu.Unlock()
	if ok && now.Before(c.until) {
		return c.v, nil
	}
	val, err := r.cfg.DHT.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	v, err := record.Verify(key, val, now)
	if err != nil {
		return nil, err
	}
	if r.cfg.CacheSize > 0 {
		until := now.Add(r.cfg.CacheTTL)
		if eol := v.Signed.Record.EOL; eol.Before(until) {
			until = eol
		}
		r.mu.Lock()
		if len(r.cache) >= r.cfg.CacheSize {
			for k, e := range r.cache { // drop the expired, else one at random
				if !now.Before(e.until) || len(r.cache) >= r.cfg.CacheSize {
					delete(r.cache, k)
				}
				if len(r.cache) < r.cfg.CacheSize {
					break
				}
			}
		}
		r.cache[key] = cached{v: v, until: until}
		r.mu.Unlock()
	}
	return v, nil
}

// LookupKey returns the key record of f.
func (r *Resolver) LookupKey(ctx context.Context, f address.Fingerprint) (*address.Key, error) {
	v, err := r.Lookup(ctx, record.KeyOf(record.KeyType, f))
	if err != nil {
		return nil, err
	}
	return v.Key.Key, nil
}

// LookupRevocation returns the revocation of f, or ErrNotFound.
func (r *Resolver) LookupRevocation(ctx context.Context, f address.Fingerprint) (*address.Revocation, error) {
	v, err := r.Lookup(ctx, record.KeyOf(record.RevType, f))
	if err != nil {
		return nil, err
	}
	return v.Rev.Revocation, nil
}

// LookupReach returns the reach record of f, or ErrNotFound.
func (r *Resolver) LookupReach(ctx context.Context, f address.Fingerprint) (*record.ReachRecord, error) {
	v, err := r.Lookup(ctx, record.KeyOf(record.ReachType, f))
	if err != nil {
		return nil, err
	}
	return v.Reach, nil
}

// ResolveEmail runs the whole chain for email: DNS TXT → the email slot of
// each domain key it names (in parallel, with the domain keys' own key
// records) → the bound key's key, revocation and reach records (in
// parallel) → address.VerifyBinding. Every record is verified; verified
// records are cached until their eol (at most CacheTTL), verdicts never.
func (r *Resolver) ResolveEmail(ctx context.Context, email address.Email) (*Resolution, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	fail := func(step string, err error) (*Resolution, error) {
		return nil, &ResolveError{Email: email, Step: step, Err: err}
	}
	if email.IsKeyAddress() {
		return fail("dns", fmt.Errorf("%w: %s is a key address, not bound by a domain", ErrNoDomainRecord, email))
	}

	// 1. DNS.
	name := strings.TrimSuffix(address.TXTName(email.Domain()), ".")
	ans, err := r.cfg.DNS.LookupTXT(ctx, name)
	var dnsAns address.DNSAnswer
	switch {
	case errors.Is(err, dsepdns.ErrNotFound):
		return fail("dns", fmt.Errorf("%w: %s has no TXT record", ErrNoDomainRecord, name))
	case err != nil:
		return fail("dns", fmt.Errorf("%w: %v", ErrDNS, err))
	}
	dnsAns = address.DNSAnswer{Records: ans.Records, Authenticated: ans.Authenticated}
	recs, perr := address.ParseTXTSet(ans.Records)
	if len(recs) == 0 {
		if perr != nil {
			return fail("dns", fmt.Errorf("%w: %v", ErrNoDomainRecord, perr))
		}
		return fail("dns", fmt.Errorf("%w: %s has no v=DSEP1 record", ErrNoDomainRecord, name))
	}

	// 2. Each named domain key's slot and key record, in parallel.
	type domainResult struct {
		rec    *record.Verified
		key    *address.Key
		recErr error
		keyErr error
	}
	results := make([]domainResult, len(recs))
	var wg sync.WaitGroup
	for i, dr := range recs {
		wg.Add(2)
		go func() {
			defer wg.Done()
			results[i].rec, results[i].recErr = r.Lookup(ctx, record.DHTKey(record.EmailType, record.EmailSlot(email, dr.Key)))
		}()
		go func() {
			defer wg.Done()
			results[i].key, results[i].keyErr = r.LookupKey(ctx, dr.Key)
		}()
	}
	wg.Wait()
	// The newest certification among the domain keys that filled the slot.
	best := -1
	for i, res := range results {
		if res.recErr != nil {
			continue
		}
		if best < 0 || res.rec.Email.Certification.Created.After(results[best].rec.Email.Certification.Created) {
			best = i
		}
	}
	if best < 0 {
		for _, res := range results {
			if res.recErr != nil && !errors.Is(res.recErr, ErrNotFound) {
				return fail("email-record", fmt.Errorf("%w: %v", ErrNoEmailRecord, res.recErr))
			}
		}
		return fail("email-record", fmt.Errorf("%w: no domain key of %s has bound %s", ErrNoEmailRecord, email.Domain(), email))
	}
	er := results[best].rec.Email
	if results[best].keyErr != nil {
		return fail("domain-key", fmt.Errorf("%w: %s: %v", ErrNoDomainKey, er.Domain, results[best].keyErr))
	}
	domKey := results[best].key

	// 3. The bound key's key, revocation and reach records, in parallel.
	var (
		key              *address.Key
		rev              *address.Revocation
		reach            *record.ReachRecord
		kErr, rErr, hErr error
	)
	wg.Add(3)
	go func() { defer wg.Done(); key, kErr = r.LookupKey(ctx, er.User) }()
	go func() { defer wg.Done(); rev, rErr = r.LookupRevocation(ctx, er.User) }()
	go func() { defer wg.Done(); reach, hErr = r.LookupReach(ctx, er.User) }()
	wg.Wait()
	if kErr != nil {
		return fail("key-record", fmt.Errorf("%w: %s: %v", ErrNoKeyRecord, er.User, kErr))
	}
	if rErr != nil && !errors.Is(rErr, ErrNotFound) {
		return fail("revocation", rErr)
	}
	if hErr != nil && !errors.Is(hErr, ErrNotFound) {
		return fail("reach", hErr)
	}

	// 4. The binding, with the certification from the email record.
	body, err := record.UnmarshalEmailBody(results[best].rec.Signed.Record.Body)
	if err != nil {
		return fail("email-record", err)
	}
	now := r.cfg.Now()
	certified, err := key.WithCertification(er.UserID, er.DomainPrimary, body.Certification, now)
	if err != nil {
		return fail("binding", fmt.Errorf("%w: %v", ErrBinding, err))
	}
	res := &Resolution{Email: email, Key: certified, DomainKey: domKey, Revocation: rev, Reach: reach}
	// Key records never carry revocations: the binding is judged on the
	// key material, and a revocation from /dsep-rev is reported apart.
	res.Verdict = address.VerifyBinding(address.BindingInput{Email: email, DNS: dnsAns, Key: certified, DomainKey: domKey, Now: now})
	if rev != nil {
		return res, &ResolveError{Email: email, Step: "revocation", Err: fmt.Errorf("%w (%s)", ErrRevoked, rev.Kind())}
	}
	if !res.Verdict.OK() {
		return res, &ResolveError{Email: email, Step: "binding", Err: fmt.Errorf("%w: %s", ErrBinding, res.Verdict.Detail)}
	}
	if reach == nil {
		return res, &ResolveError{Email: email, Step: "reach", Err: ErrNoReach}
	}
	return res, nil
}
