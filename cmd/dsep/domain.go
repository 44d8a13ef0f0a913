package main

import (
	"fmt"
	"os"
	"time"

	"github.com/dsep-project/dsep/address"
	"github.com/spf13/cobra"
)

func (a *app) domainCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "domain",
		Short: "Run a domain: its key, its TXT record, certifying its users",
		Long: `A domain's data directory is an ordinary data directory holding the
domain key (so ` + "`dsep key export`" + ` exports the domain key and ` + "`dsep key rotate`" + `
rolls it over).`,
		Example: `  dsep --data ./example.org domain init --domain example.org
  dsep --data ./example.org domain txt
  dsep --data ./example.org domain certify --expires 1y alice.asc > alice-certified.asc`,
	}
	c.AddCommand(a.domainInitCommand(), a.domainTXTCommand(), a.domainCertifyCommand())
	return c
}

const defaultTXTTTL = 3600

func (a *app) domainInitCommand() *cobra.Command {
	var domain string
	var insecure bool
	c := &cobra.Command{
		Use:   "init --domain DOMAIN",
		Short: "Create a domain key and print the TXT record to publish",
		Example: `  dsep --data ./example.org domain init --domain example.org
  dsep --data ./example.org domain init --domain example.org --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if domain == "" {
				return fail("pass --domain, e.g. --domain example.org", "no domain given")
			}
			dn, err := address.CanonicalDomain(domain)
			if err != nil {
				return fail("give a domain name like example.org", "%v", err)
			}
			d, err := a.createDataDir()
			if err != nil {
				return err
			}
			var pass []byte
			if !insecure {
				if pass, err = a.passphrase("New passphrase for domain "+dn+": ", true); err != nil {
					return err
				}
			}
			k, err := address.NewDomainKey(dn, address.NewIdentityOptions{})
			if err != nil {
				return err
			}
			d.meta = meta{Kind: kindDomain, Domain: dn, Created: time.Now().UTC().Truncate(time.Second)}
			if err := d.saveIdentity(k, pass); err != nil {
				return fail("choose a writable --data directory", "saving the domain key: %v", err)
			}
			rec := address.DomainRecord{Key: k.Fingerprint()}
			if a.jsonOut {
				return a.printJSON(identityJSON{
					Fingerprint: k.Fingerprint(), UserID: address.DomainUserID(dn), Domain: dn,
					KeyAddress: k.KeyAddress().String(), Data: d.path, Protected: len(pass) > 0,
					TXT: rec.String(), ZoneLine: rec.ZoneLine(dn, defaultTXTTTL),
				})
			}
			fmt.Fprintf(a.stdout, "Created the key of %s\n  fingerprint  %s\n  data         %s\n", dn, k.Fingerprint().Grouped(), d.path)
			if insecure {
				fmt.Fprintln(a.stdout, "  WARNING      the secret key is stored WITHOUT a passphrase (--insecure-no-passphrase)")
			}
			fmt.Fprintf(a.stdout, "\nPublish this record in the zone of %s:\n\n%s\n\n", dn, rec.ZoneLine(dn, defaultTXTTTL))
			fmt.Fprintf(a.stdout, "Then certify your users' keys with `dsep domain certify KEYFILE`.\n")
			return nil
		},
	}
	c.Flags().StringVar(&domain, "domain", "", "the domain (required)")
	c.Flags().BoolVar(&insecure, "insecure-no-passphrase", false, "store the domain key unprotected (tests and demos only)")
	return c
}

func (a *app) openDomainDir() (*dataDir, error) {
	d, err := a.openDataDir()
	if err != nil {
		return nil, err
	}
	if d.meta.Kind != kindDomain {
		return nil, fail("point --data at the domain's data directory (made by `dsep domain init`)", "%s holds a user identity, not a domain key", d.path)
	}
	return d, nil
}

func (a *app) domainTXTCommand() *cobra.Command {
	var ttl uint32
	var rollover bool
	var gateway string
	c := &cobra.Command{
		Use:   "txt",
		Short: "Print the TXT record(s) the domain must publish",
		Long: `Print the zone-file line(s) for _dsep.<domain>. With --rollover, also
print the record of the key the domain rotated away from, to publish both
until every user's certification has been renewed by the new key.`,
		Example: `  dsep --data ./example.org domain txt
  dsep --data ./example.org domain txt --rollover --ttl 300
  dsep --data ./example.org domain txt --gateway 0123…cdef --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, err := a.openDomainDir()
			if err != nil {
				return err
			}
			recs := []address.DomainRecord{{Key: d.meta.Fingerprint}}
			if gateway != "" {
				g, err := address.ParseFingerprint(gateway)
				if err != nil {
					return fail("give the gateway key's 40-hex-digit fingerprint", "--gateway: %v", err)
				}
				recs[0].Gateway = &g
			}
			if rollover {
				hist, err := d.history()
				if err != nil {
					return err
				}
				if len(hist) > 0 {
					recs = append(recs, address.DomainRecord{Key: hist[0].Fingerprint(), Gateway: recs[0].Gateway})
				}
			}
			if a.jsonOut {
				type rj struct {
					Name     string `json:"name"`
					TXT      string `json:"txt"`
					ZoneLine string `json:"zone_line"`
				}
				var out []rj
				for _, r := range recs {
					out = append(out, rj{address.TXTName(d.meta.Domain), r.String(), r.ZoneLine(d.meta.Domain, ttl)})
				}
				return a.printJSON(out)
			}
			for _, r := range recs {
				fmt.Fprintln(a.stdout, r.ZoneLine(d.meta.Domain, ttl))
			}
			return nil
		},
	}
	c.Flags().Uint32Var(&ttl, "ttl", defaultTXTTTL, "TTL of the record in seconds")
	c.Flags().BoolVar(&rollover, "rollover", false, "also print the previous domain key's record")
	c.Flags().StringVar(&gateway, "gateway", "", "fingerprint of the domain's gateway key (gw= tag)")
	return c
}

func (a *app) domainCertifyCommand() *cobra.Command {
	var expires string
	var email string
	c := &cobra.Command{
		Use:   "certify [--expires 1y] KEYFILE",
		Short: "Certify a user's key for their address at this domain",
		Long: `Certify, with the domain key, the User ID of the key in KEYFILE ("-" for
standard input) whose address is at this domain, and write the certified
key (armored) to standard output. Only addresses at this domain are ever
certified. The certification expires (default one year): certify again
before then.`,
		Example: `  dsep --data ./example.org domain certify alice.asc > alice-certified.asc
  dsep --data ./example.org domain certify --expires 6mo --email alice@example.org alice.asc`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			life, err := parseLifetime(expires)
			if err != nil {
				return fail("use e.g. --expires 1y, 6mo, 30d or never", "%v", err)
			}
			d, err := a.openDomainDir()
			if err != nil {
				return err
			}
			keys, err := a.readKeyFile(args[0])
			if err != nil {
				return err
			}
			now := time.Now()
			var want address.Email
			if email != "" {
				if want, err = address.ParseEmail(email); err != nil {
					return fail("give an address like alice@example.org", "--email: %v", err)
				}
			}
			// The user key is the first key with a User ID at this domain.
			var user *address.Key
			var uids []string
			for _, k := range keys {
				if k.Check(now) != nil {
					continue // revoked or expired: never certified
				}
				for _, uid := range k.UserIDs(now) {
					e, err := address.EmailOfUserID(uid)
					if err != nil || e.Domain() != d.meta.Domain || (!want.IsZero() && e != want) {
						continue
					}
					uids = append(uids, uid)
				}
				if len(uids) > 0 {
					user = k
					break
				}
			}
			if user == nil && len(keys) > 0 && keys[0].Check(now) != nil {
				return fail("ask the user for a current key", "refusing to certify: %v", keys[0].Check(now))
			}
			if user == nil {
				return fail("the key must carry a User ID \"Name <someone@"+d.meta.Domain+">\"", "%s has no key with an address at %s to certify", args[0], d.meta.Domain)
			}
			dom, _, err := a.unlock(d)
			if err != nil {
				return err
			}
			cert := user.PublicOnly()
			for _, uid := range uids {
				if cert, err = address.Certify(cert, uid, dom, now, life); err != nil {
					return err
				}
			}
			if err := os.MkdirAll(d.file(certifiedDir), 0o700); err != nil {
				return err
			}
			if err := writeFileAtomic(d.file(certifiedDir, cert.Fingerprint().String()+".asc"), cert.Armored()); err != nil {
				return err
			}
			for _, uid := range uids {
				fmt.Fprintf(a.stderr, "dsep: certified %q (key %s)\n", uid, cert.Fingerprint())
			}
			_, err = a.stdout.Write(cert.Armored())
			return err
		},
	}
	c.Flags().StringVar(&expires, "expires", "1y", "lifetime of the certification (1y, 6mo, 30d, never)")
	c.Flags().StringVar(&email, "email", "", "certify only this address (default: every address at this domain)")
	return c
}
