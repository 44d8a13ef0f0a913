package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/dsep-project/dsep/address"
	"github.com/dsep-project/dsep/address/book"
	dsepdns "github.com/dsep-project/dsep/address/dns"
	"github.com/spf13/cobra"
)

// dnsFlags are the resolver settings shared by commands that ask DNS.
type dnsFlags struct {
	servers []string
	trustAD bool
	timeout time.Duration
}

func (f *dnsFlags) register(c *cobra.Command) {
	c.Flags().StringSliceVar(&f.servers, "dns", nil, "DNS resolver HOST:PORT to ask (repeatable; default: /etc/resolv.conf)")
	c.Flags().BoolVar(&f.trustAD, "trust-ad", false, "believe the resolver's DNSSEC validation (AD bit); honoured only for a resolver on loopback")
	c.Flags().DurationVar(&f.timeout, "dns-timeout", 2*time.Second, "timeout of one DNS query")
}

func (f *dnsFlags) resolver() (*dsepdns.Resolver, error) {
	r, err := dsepdns.New(dsepdns.Config{Servers: f.servers, TrustAD: f.trustAD, Timeout: f.timeout})
	if err != nil {
		return nil, fail("pass --dns HOST:PORT", "DNS: %v", err)
	}
	return r, nil
}

// lookupDomain asks DNS for _dsep.<domain> and returns what VerifyBinding
// needs.
func lookupDomain(ctx context.Context, r *dsepdns.Resolver, domain string) address.DNSAnswer {
	ans, err := r.LookupTXT(ctx, strings.TrimSuffix(address.TXTName(domain), "."))
	switch {
	case errors.Is(err, dsepdns.ErrNotFound):
		return address.DNSAnswer{NotFound: true}
	case err != nil:
		return address.DNSAnswer{Err: err}
	}
	return address.DNSAnswer{Records: ans.Records, Authenticated: ans.Authenticated}
}

type verifyJSON struct {
	address.Verdict
	OK      bool         `json:"ok"`
	Method  string       `json:"method,omitempty"`
	Hint    string       `json:"hint,omitempty"`
	Contact *contactJSON `json:"contact,omitempty"`
	Events  []string     `json:"events,omitempty"`
}

func (a *app) verifyCommand() *cobra.Command {
	var keyFile, domainKeyFile string
	var noPin bool
	var df dnsFlags
	c := &cobra.Command{
		Use:   "verify EMAIL --key KEYFILE [--domain-key KEYFILE] [--dns HOST:PORT]",
		Short: "Check that EMAIL is bound to a key by its domain",
		Long: `Check the binding of EMAIL to the key in KEYFILE: the domain's TXT record
_dsep.<domain> names a domain key, and that key has certified (not expired,
not revoked) the key's User ID for EMAIL. The domain key comes from
--domain-key or from KEYFILE itself.

When the data directory holds your identity, a binding that holds is pinned
in your address book (trust on first use); a later different key is
followed only if both the old key and the domain vouch for it, and a
suspected hijack is reported. Revocations found in the files are recorded.

Exit status: 0 when the binding holds (and does not conflict with your
pinned key), 1 otherwise.`,
		Example: `  dsep verify alice@example.org --key alice.asc --domain-key example.org.asc
  dsep verify alice@example.org --key alice.asc --dns 127.0.0.1:5353 --json
  dsep verify bob@example.org --key bob-and-domain.asc --no-pin`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			email, err := address.ParseEmail(args[0])
			if err != nil {
				return fail("give an address like alice@example.org", "%v", err)
			}
			if email.IsKeyAddress() {
				return fail("a key address names its key directly; there is no domain binding to check", "%s is a key address", email)
			}
			if keyFile == "" {
				return fail("pass --key KEYFILE (the DHT lookup comes with `dsep lookup`)", "no key to verify")
			}
			keys, err := a.readKeyFile(keyFile)
			if err != nil {
				return err
			}
			var candidates []*address.Key
			if domainKeyFile != "" {
				dk, err := a.readKeyFile(domainKeyFile)
				if err != nil {
					return err
				}
				candidates = append(candidates, dk...)
			}
			now := time.Now()
			user := pickUserKey(keys, email, now)
			for _, k := range keys {
				if k != user {
					candidates = append(candidates, k)
				}
			}
			res, err := df.resolver()
			if err != nil {
				return err
			}
			dnsAns := lookupDomain(cmd.Context(), res, email.Domain())
			dom := pickDomainKey(candidates, dnsAns)
			v := address.VerifyBinding(address.BindingInput{Email: email, DNS: dnsAns, Key: user, DomainKey: dom, Now: now})
			out := verifyJSON{Verdict: v, OK: v.OK(), Hint: v.Hint()}
			if v.OK() {
				out.Method = v.Method()
			}

			// Pin it, and take in the revocations the files carry.
			conflict := false
			if !noPin {
				b, d, err := a.openBookIfAny()
				if err != nil {
					return err
				}
				if b != nil {
					defer b.Close()
					for _, k := range append(keys, candidates...) {
						if d.meta.Fingerprint == k.Fingerprint() {
							continue
						}
						for _, r := range k.Revocations() {
							evs, err := b.ObserveRevocation(r, now)
							if err != nil {
								return err
							}
							for _, ev := range evs {
								out.Events = append(out.Events, ev.Message)
							}
						}
					}
					// A binding that holds is pinned or judged against the
					// pin. A claimed successor the domain does not (or no
					// longer) vouches for can still raise a conflict with an
					// existing pin; the book decides, and refuses the rest.
					_, pinErr := b.Get(email)
					soft := v.Reason == address.NoCertification || v.Reason == address.Expired || v.Reason == address.Revoked
					if user != nil && (v.OK() || (pinErr == nil && soft)) {
						ev, err := b.Observe(book.Observation{Email: email, Key: user, DomainKey: dom, Verdict: v, Now: now})
						switch {
						case err != nil && v.OK():
							return err
						case err == nil && ev.Message != "":
							out.Events = append(out.Events, ev.Message)
						}
					}
					if c, err := b.Get(email); err == nil {
						out.Contact = contactToJSON(c)
						conflict = !c.Trusted() || (user != nil && c.Key != user.Fingerprint())
					}
				}
			}
			if a.jsonOut {
				if err := a.printJSON(out); err != nil {
					return err
				}
			} else {
				fmt.Fprintln(a.stdout, v.String())
				for _, e := range out.Events {
					fmt.Fprintln(a.stdout, e)
				}
			}
			switch {
			case !v.OK():
				return &exitError{code: 1, msg: fmt.Sprintf("the binding of %s does not hold (%s)", email, v.Reason), hint: v.Hint()}
			case conflict:
				return &exitError{code: 1, msg: fmt.Sprintf("%s is bound to %s by its domain, but that is not the key you trust for it", email, v.Key),
					hint: "see `dsep contacts show " + email.String() + "`"}
			}
			return nil
		},
	}
	c.Flags().StringVar(&keyFile, "key", "", "file with the key to check (armored or binary; may also hold the domain key and old keys)")
	c.Flags().StringVar(&domainKeyFile, "domain-key", "", "file with the domain key")
	c.Flags().BoolVar(&noPin, "no-pin", false, "do not record the result in the address book")
	df.register(c)
	return c
}

// pickUserKey returns the key with a valid User ID for email, preferring
// an unrevoked one and then the newest.
func pickUserKey(keys []*address.Key, email address.Email, now time.Time) *address.Key {
	var best *address.Key
	for _, k := range keys {
		if _, ok := k.UserIDFor(email, now); !ok {
			continue
		}
		switch {
		case best == nil:
			best = k
		case (best.Revocation() != nil) != (k.Revocation() != nil):
			if k.Revocation() == nil {
				best = k
			}
		case k.Created().After(best.Created()):
			best = k
		}
	}
	return best
}

// pickDomainKey returns the candidate named by the DNS answer, else the
// first candidate that is not a user key, else nil.
func pickDomainKey(cands []*address.Key, ans address.DNSAnswer) *address.Key {
	recs, _ := address.ParseTXTSet(ans.Records)
	for _, k := range cands {
		for _, r := range recs {
			if r.Key == k.Fingerprint() {
				return k
			}
		}
	}
	for _, k := range cands {
		for _, uid := range k.UserIDs(time.Now()) {
			if _, ok := address.DomainOfUserID(uid); ok {
				return k
			}
		}
	}
	return nil
}

// openBookIfAny opens the address book of the data directory, or returns
// nil when the directory holds no identity.
func (a *app) openBookIfAny() (*book.Book, *dataDir, error) {
	if _, err := os.Stat(fmt.Sprintf("%s/%s", a.dataDir(), metaFile)); errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	d, err := a.openDataDir()
	if err != nil {
		return nil, nil, err
	}
	b, err := a.openBook(d)
	return b, d, err
}

func (a *app) openBook(d *dataDir) (*book.Book, error) {
	var pass []byte
	if d.meta.Protected {
		var err error
		if pass, err = a.passphrase("Passphrase for "+d.meta.label()+": ", false); err != nil {
			return nil, err
		}
	}
	key, err := d.storageKey(pass)
	if err != nil {
		return nil, err
	}
	b, err := book.Open(d.file(bookDir), book.Options{EncryptionKey: key})
	if errors.Is(err, book.ErrInUse) {
		return nil, fail("a running node (dsep run) owns the address book: stop it for this command, or use `dsep contacts`, which goes through the node", "opening the address book: %v", err)
	}
	if err != nil {
		return nil, fail("stop the other dsep process using this data directory, or try again", "opening the address book: %v", err)
	}
	return b, nil
}
