package dht

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dsep-project/dsep/address"
	dsepdns "github.com/dsep-project/dsep/address/dns"
	"github.com/dsep-project/dsep/dht/record"
)

// AlertKind classifies what self-monitoring found.
type AlertKind string

// The kinds of Alert.
const (
	// AlertForeignKey: a domain key named in DNS binds the address to a
	// key that is not ours. Someone may be intercepting mail to us.
	AlertForeignKey AlertKind = "foreign-key"
	// AlertMissing: one of our records (key, reach, or the email record of
	// a domain key named in DNS) is not in the network.
	AlertMissing AlertKind = "missing-record"
	// AlertDNS: the domain's TXT record could not be read or names no
	// DSEP key.
	AlertDNS AlertKind = "dns"
)

// Alert is one finding of self-monitoring, for the owner (logs, dsep
// status).
type Alert struct {
	Kind    AlertKind
	Email   address.Email       // zero for key-level alerts
	Domain  address.Fingerprint // the domain key concerned, if any
	Key     address.Fingerprint // the foreign key, for AlertForeignKey
	Message string
	At      time.Time
}

// Monitor watches DNS and the DHT for one identity's own addresses and
// records (DESIGN.md "Self-monitoring"). It makes silent interception
// visible to the owner; it cannot make it impossible (a DNS attacker can
// show one victim a different TXT answer).
type Monitor struct {
	Resolver *Resolver
	DNS      TXTLookup
	Own      address.Fingerprint
	Emails   []address.Email
	Now      func() time.Time
}

// Check resolves every own address under every domain key DNS names, and
// the identity's own key and reach records, and returns what is wrong.
// An empty result means all is well.
func (m *Monitor) Check(ctx context.Context) []Alert {
	now := time.Now
	if m.Now != nil {
		now = m.Now
	}
	var alerts []Alert
	add := func(a Alert) {
		a.At = now()
		alerts = append(alerts, a)
	}
	m.Resolver.FlushCache()
	if _, err := m.Resolver.LookupKey(ctx, m.Own); err != nil {
		add(Alert{Kind: AlertMissing, Message: fmt.Sprintf("our key record %s is not in the network: %v", m.Own, err)})
	}
	if _, err := m.Resolver.LookupReach(ctx, m.Own); err != nil {
		add(Alert{Kind: AlertMissing, Message: fmt.Sprintf("our reach record is not in the network: %v", err)})
	}
	for _, e := range m.Emails {
		name := strings.TrimSuffix(address.TXTName(e.Domain()), ".")
		ans, err := m.DNS.LookupTXT(ctx, name)
		if err != nil {
			msg := fmt.Sprintf("DNS lookup of %s failed: %v", name, err)
			if errors.Is(err, dsepdns.ErrNotFound) {
				msg = fmt.Sprintf("%s no longer publishes a DSEP record", e.Domain())
			}
			add(Alert{Kind: AlertDNS, Email: e, Message: msg})
			continue
		}
		recs, _ := address.ParseTXTSet(ans.Records)
		if len(recs) == 0 {
			add(Alert{Kind: AlertDNS, Email: e, Message: fmt.Sprintf("%s publishes no valid DSEP record", name)})
			continue
		}
		for _, dr := range recs {
			v, err := m.Resolver.Lookup(ctx, record.DHTKey(record.EmailType, record.EmailSlot(e, dr.Key)))
			switch {
			case errors.Is(err, ErrNotFound):
				add(Alert{Kind: AlertMissing, Email: e, Domain: dr.Key,
					Message: fmt.Sprintf("domain key %s of %s has not published the email record of %s", dr.Key, e.Domain(), e)})
			case err != nil:
				add(Alert{Kind: AlertMissing, Email: e, Domain: dr.Key,
					Message: fmt.Sprintf("the email record of %s under domain key %s could not be read: %v", e, dr.Key, err)})
			case v.Email.User != m.Own:
				add(Alert{Kind: AlertForeignKey, Email: e, Domain: dr.Key, Key: v.Email.User,
					Message: fmt.Sprintf("ALERT: domain key %s binds %s to key %s, which is not yours (%s): mail to you may be intercepted; contact the owner of %s",
						dr.Key, e, v.Email.User, m.Own, e.Domain())})
			}
		}
	}
	return alerts
}

// Run checks every interval (and once at start), handing each alert to
// report, until ctx ends.
func (m *Monitor) Run(ctx context.Context, interval time.Duration, report func(Alert)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		for _, a := range m.Check(ctx) {
			report(a)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
