package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/dsep-project/dsep/address"
	"github.com/dsep-project/dsep/dht"
	"github.com/dsep-project/dsep/dht/record"
	"github.com/spf13/cobra"
)

type delegateJSON struct {
	Peer     string    `json:"peer"`
	Role     string    `json:"role"`
	NotAfter time.Time `json:"not_after"`
	Valid    bool      `json:"valid"`
	Addrs    []string  `json:"addrs,omitempty"`
}

type reachJSON struct {
	Delegates []delegateJSON `json:"delegates"`
	StampBits int            `json:"stamp_bits"`
	Hidden    bool           `json:"hidden"`
}

type lookupJSON struct {
	Email      string               `json:"email,omitempty"`
	Key        address.Fingerprint  `json:"key"`
	KeyAddress string               `json:"key_address"`
	UserIDs    []string             `json:"user_ids,omitempty"`
	Verdict    *address.Verdict     `json:"verdict,omitempty"`
	Revocation *revocationJSON      `json:"revocation,omitempty"`
	Reach      *reachJSON           `json:"reach,omitempty"`
	Error      string               `json:"error,omitempty"`
	Step       string               `json:"failed_step,omitempty"`
	DomainKey  *address.Fingerprint `json:"domain_key,omitempty"`
}

func reachToJSON(r *record.ReachRecord, now time.Time) *reachJSON {
	if r == nil {
		return nil
	}
	j := &reachJSON{StampBits: r.Price(), Hidden: r.Hidden, Delegates: []delegateJSON{}}
	for _, d := range r.Delegations {
		dj := delegateJSON{Peer: d.Peer.String(), Role: d.Role.String(), NotAfter: d.NotAfter.UTC(), Valid: d.Valid(now) == nil}
		for _, a := range r.Addrs[d.Peer] {
			dj.Addrs = append(dj.Addrs, a.String())
		}
		j.Delegates = append(j.Delegates, dj)
	}
	sort.Slice(j.Delegates, func(a, b int) bool { return j.Delegates[a].Peer < j.Delegates[b].Peer })
	return j
}

func (a *app) lookupCommand() *cobra.Command {
	var nf netFlags
	var df dnsFlags
	c := &cobra.Command{
		Use:   "lookup EMAIL|FINGERPRINT",
		Short: "Find a key in the DSEP network: binding, revocation, where to reach it",
		Long: `Join the DSEP network for the duration of the command and resolve EMAIL:
the domain's _dsep TXT record names its key; the email record that only that
key can fill names the user's key; then the key, its revocation and its
reach record are fetched. Every record and signature is verified.

A FINGERPRINT (or key address) is looked up directly: its key, revocation
and reach records.

Exit status: 0 when the key is found, bound (for an email) and not revoked;
1 otherwise.`,
		Example: `  dsep lookup bob@example.org --bootstrap /ip4/127.0.0.1/tcp/4101/p2p/12D3KooW…
  dsep lookup bob@example.org --dns 127.0.0.1:5353 --json
  dsep lookup 0123456789abcdef0123456789abcdef01234567`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), nf.timeout)
			defer cancel()
			target := args[0]
			var email address.Email
			var fpr address.Fingerprint
			if f, err := address.ParseFingerprint(target); err == nil {
				fpr = f
			} else if addr, err := address.ParseAddress(target); err == nil && addr.Key != nil {
				fpr = addr.Key.Fingerprint()
			} else if err == nil {
				email = addr.Email
			} else {
				return fail("give an email address, a key address or a 40-hex-digit fingerprint", "%v", err)
			}
			j, err := nf.join(ctx, nil, true)
			if err != nil {
				return err
			}
			defer j.stop()
			dnsr, err := df.resolver()
			if err != nil {
				return err
			}
			res, err := dht.NewResolver(dht.ResolverConfig{DNS: dnsr, DHT: j.node, Timeout: nf.timeout})
			if err != nil {
				return err
			}
			now := time.Now()
			if email.IsZero() {
				return a.lookupKey(ctx, res, fpr, now)
			}
			return a.lookupEmail(ctx, res, email, now)
		},
	}
	nf.register(c)
	df.register(c)
	return c
}

func (a *app) lookupEmail(ctx context.Context, res *dht.Resolver, email address.Email, now time.Time) error {
	r, err := res.ResolveEmail(ctx, email)
	out := lookupJSON{Email: email.String()}
	var re *dht.ResolveError
	if errors.As(err, &re) {
		out.Error, out.Step = re.Err.Error(), re.Step
	} else if err != nil {
		out.Error = err.Error()
	}
	if r != nil {
		out.Key = r.Key.Fingerprint()
		out.KeyAddress = r.Key.KeyAddress().String()
		out.UserIDs = r.Key.UserIDs(now)
		v := r.Verdict
		out.Verdict = &v
		out.Revocation = revJSON(r.Revocation)
		out.Reach = reachToJSON(r.Reach, now)
		d := r.DomainKey.Fingerprint()
		out.DomainKey = &d
	}
	if a.jsonOut {
		if perr := a.printJSON(out); perr != nil {
			return perr
		}
	} else {
		a.printLookup(out)
	}
	switch {
	case err == nil, errors.Is(err, dht.ErrNoReach):
		return nil
	case errors.Is(err, dht.ErrRevoked):
		return &exitError{code: 1, msg: fmt.Sprintf("the key bound to %s is revoked", email), hint: "do not use it; a superseded key names its successor above"}
	case errors.Is(err, dht.ErrNoDomainRecord):
		return &exitError{code: 1, msg: err.Error(), hint: "the domain has not set up DSEP; check the address, or ask its owner to publish `dsep domain txt`"}
	case errors.Is(err, dht.ErrDNS):
		return &exitError{code: 1, msg: err.Error(), hint: "DNS could not be asked; check --dns and try again"}
	case errors.Is(err, dht.ErrNoEmailRecord), errors.Is(err, dht.ErrNoKeyRecord), errors.Is(err, dht.ErrNoDomainKey):
		return &exitError{code: 1, msg: err.Error(), hint: "the records are not in the DSEP network (yet); the domain and the user publish them with `dsep publish`"}
	}
	return &exitError{code: 1, msg: err.Error()}
}

func (a *app) lookupKey(ctx context.Context, res *dht.Resolver, f address.Fingerprint, now time.Time) error {
	k, err := res.LookupKey(ctx, f)
	if err != nil {
		if errors.Is(err, dht.ErrNotFound) {
			return fail("the key's owner publishes it with `dsep publish`", "no key record for %s in the DSEP network", f)
		}
		return err
	}
	out := lookupJSON{Key: f, KeyAddress: f.KeyAddress().String(), UserIDs: k.UserIDs(now)}
	rev, err := res.LookupRevocation(ctx, f)
	if err != nil && !errors.Is(err, dht.ErrNotFound) {
		return err
	}
	out.Revocation = revJSON(rev)
	reach, err := res.LookupReach(ctx, f)
	if err != nil && !errors.Is(err, dht.ErrNotFound) {
		return err
	}
	out.Reach = reachToJSON(reach, now)
	if a.jsonOut {
		if err := a.printJSON(out); err != nil {
			return err
		}
	} else {
		a.printLookup(out)
	}
	if rev != nil {
		return &exitError{code: 1, msg: fmt.Sprintf("key %s is revoked", f), hint: "do not use it; a superseded key names its successor above"}
	}
	return nil
}

func (a *app) printLookup(o lookupJSON) {
	w := a.stdout
	if o.Email != "" {
		fmt.Fprintf(w, "%s\n", o.Email)
	}
	if o.Key.IsZero() {
		fmt.Fprintf(w, "  not found    %s (%s)\n", o.Error, o.Step)
		return
	}
	fmt.Fprintf(w, "  key          %s\n", o.Key.Grouped())
	fmt.Fprintf(w, "  key address  %s\n", o.KeyAddress)
	for _, u := range o.UserIDs {
		fmt.Fprintf(w, "  user id      %s\n", u)
	}
	if o.Verdict != nil {
		if o.Verdict.OK() {
			fmt.Fprintf(w, "  bound        by domain key %s (%s)", o.Verdict.Domain, o.Verdict.Method())
			if !o.Verdict.Expires.IsZero() {
				fmt.Fprintf(w, ", until %s", o.Verdict.Expires.UTC().Format("2006-01-02"))
			}
			fmt.Fprintln(w)
		} else {
			fmt.Fprintf(w, "  NOT BOUND    %s: %s\n", o.Verdict.Reason, o.Verdict.Detail)
		}
	}
	if r := o.Revocation; r != nil {
		fmt.Fprintf(w, "  REVOKED      %s", r.Kind)
		if r.Successor != nil {
			fmt.Fprintf(w, "; successor %s", *r.Successor)
		}
		fmt.Fprintln(w)
	}
	if o.Reach == nil {
		fmt.Fprintln(w, "  reach        none published: the key's nodes cannot be reached yet")
		return
	}
	for _, d := range o.Reach.Delegates {
		state := ""
		if !d.Valid {
			state = " (expired)"
		}
		fmt.Fprintf(w, "  delegate     %s %s until %s%s\n", d.Role, d.Peer, d.NotAfter.Format(time.RFC3339), state)
		if len(d.Addrs) > 0 {
			fmt.Fprintf(w, "               %s\n", strings.Join(d.Addrs, " "))
		}
	}
	fmt.Fprintf(w, "  stamp price  %d bits\n", o.Reach.StampBits)
}
