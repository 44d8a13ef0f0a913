package main

import (
	"bytes"
	"fmt"
	"os"
	"time"

	"github.com/dsep-project/dsep/address"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

func (a *app) keyCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "key",
		Short: "Show, export, import, rotate or revoke your key",
		Example: `  dsep key show
  dsep key export --armor > me.asc
  dsep key import certified.asc
  dsep key rotate
  dsep key revoke --reason compromised`,
	}
	c.AddCommand(a.keyShowCommand(), a.keyExportCommand(), a.keyImportCommand(), a.keyRotateCommand(), a.keyRevokeCommand())
	return c
}

type keyJSON struct {
	Fingerprint    address.Fingerprint   `json:"fingerprint"`
	KeyAddress     string                `json:"key_address"`
	Kind           string                `json:"kind"`
	Created        time.Time             `json:"created"`
	UserIDs        []string              `json:"user_ids"`
	Certifications []certJSON            `json:"certifications"`
	Revocation     *revocationJSON       `json:"revocation,omitempty"`
	Previous       []address.Fingerprint `json:"previous_keys,omitempty"`
}

type certJSON struct {
	UserID  string              `json:"user_id"`
	Signer  address.Fingerprint `json:"signer"`
	Created time.Time           `json:"created"`
	Expires *time.Time          `json:"expires,omitempty"`
}

type revocationJSON struct {
	Kind      string               `json:"kind"`
	Successor *address.Fingerprint `json:"successor,omitempty"`
	Signed    time.Time            `json:"signed"`
	Text      string               `json:"text,omitempty"`
}

func revJSON(r *address.Revocation) *revocationJSON {
	if r == nil {
		return nil
	}
	return &revocationJSON{Kind: r.Kind(), Successor: r.Successor, Signed: r.Signed.UTC(), Text: r.Text}
}

// certificationsOf lists the valid third-party certifications on k made
// by any of signers.
func certificationsOf(k *address.Key, signers []*address.Key, now time.Time) []certJSON {
	var out []certJSON
	for _, uid := range k.UserIDs(now) {
		for _, s := range signers {
			c, err := address.FindCertification(k, uid, s, now)
			if err != nil {
				continue
			}
			cj := certJSON{UserID: uid, Signer: c.Signer, Created: c.Created.UTC()}
			if !c.Expires.IsZero() {
				e := c.Expires.UTC()
				cj.Expires = &e
			}
			out = append(out, cj)
		}
	}
	return out
}

func (a *app) keyShowCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "show",
		Short: "Show your key: fingerprint, addresses, certifications, revocation",
		Example: `  dsep key show
  dsep --data ./alice key show --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, err := a.openDataDir()
			if err != nil {
				return err
			}
			k, err := d.publicKey()
			if err != nil {
				return err
			}
			now := time.Now()
			hist, err := d.history()
			if err != nil {
				return err
			}
			signers := append([]*address.Key(nil), hist...)
			signers = append(signers, d.certifierCandidates()...)
			j := keyJSON{
				Fingerprint: k.Fingerprint(), KeyAddress: k.KeyAddress().String(), Kind: d.meta.Kind,
				Created: k.Created().UTC(), UserIDs: k.UserIDs(now),
				Certifications: certificationsOf(k, signers, now),
				Revocation:     revJSON(k.Revocation()),
			}
			if j.UserIDs == nil {
				j.UserIDs = []string{}
			}
			if j.Certifications == nil {
				j.Certifications = []certJSON{}
			}
			for _, h := range hist {
				j.Previous = append(j.Previous, h.Fingerprint())
			}
			if a.jsonOut {
				return a.printJSON(j)
			}
			w := a.stdout
			fmt.Fprintf(w, "fingerprint  %s\n", k.Fingerprint().Grouped())
			fmt.Fprintf(w, "key address  %s\n", k.KeyAddress())
			for _, u := range j.UserIDs {
				fmt.Fprintf(w, "user id      %s\n", u)
			}
			fmt.Fprintf(w, "created      %s\n", j.Created.Format(time.RFC3339))
			if len(j.Certifications) == 0 {
				fmt.Fprintf(w, "certified    not yet (no certification found from a key this directory knows)\n")
			}
			for _, c := range j.Certifications {
				exp := "never expires"
				if c.Expires != nil {
					exp = "valid until " + c.Expires.Format("2006-01-02")
				}
				fmt.Fprintf(w, "certified    %q by %s, %s\n", c.UserID, c.Signer, exp)
			}
			if j.Revocation != nil {
				fmt.Fprintf(w, "REVOKED      %s", j.Revocation.Kind)
				if j.Revocation.Successor != nil {
					fmt.Fprintf(w, ", successor %s", *j.Revocation.Successor)
				}
				fmt.Fprintln(w)
			}
			for _, p := range j.Previous {
				fmt.Fprintf(w, "replaced     %s\n", p)
			}
			return nil
		},
	}
}

// certifierCandidates returns the keys whose certifications key show can
// check: domain keys this directory has seen (from imported files).
func (d *dataDir) certifierCandidates() []*address.Key {
	b, err := readSmallFile(d.file("certifiers.asc"), 1<<20)
	if err != nil {
		return nil
	}
	keys, err := address.ReadKeys(bytes.NewReader(b), 1<<20)
	if err != nil {
		return nil
	}
	return keys
}

func (a *app) keyExportCommand() *cobra.Command {
	var secret, armor bool
	c := &cobra.Command{
		Use:   "export [--secret] [--armor]",
		Short: "Write your public (or secret) key to standard output",
		Long: `Write your public key, with every certification it carries and the keys
it replaced (with their revocations), to standard output in OpenPGP form.

With --secret, write the secret key instead, protected by your passphrase
with iterated-salted SHA-256 S2K and AES-256, which GnuPG 2.2 imports
(gpg --import). Binary output is refused on a terminal: use --armor.`,
		Example: `  dsep key export --armor > alice.asc
  dsep key export --secret --armor | gpg --import`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, err := a.openDataDir()
			if err != nil {
				return err
			}
			if !armor {
				if f, ok := a.stdout.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
					return fail("add --armor, or redirect the output to a file", "refusing to write binary key data to a terminal")
				}
			}
			var out []byte
			if secret {
				k, pass, err := a.unlock(d)
				if err != nil {
					return err
				}
				if len(pass) == 0 {
					fmt.Fprintln(a.stderr, "dsep: warning: this identity has no passphrase; the exported secret key is unprotected")
				}
				if out, err = k.ExportSecret(pass); err != nil {
					return err
				}
				if !armor {
					out, err = dearmor(out)
					if err != nil {
						return err
					}
				}
			} else {
				k, err := d.publicKey()
				if err != nil {
					return err
				}
				var buf bytes.Buffer
				buf.Write(k.Bytes())
				hist, err := d.history()
				if err != nil {
					return err
				}
				for _, h := range hist {
					buf.Write(h.Bytes())
				}
				out = buf.Bytes()
				if armor {
					out = address.ArmorPublic(out)
				}
			}
			_, err = a.stdout.Write(out)
			return err
		},
	}
	c.Flags().BoolVar(&secret, "secret", false, "export the secret key (passphrase-protected)")
	c.Flags().BoolVarP(&armor, "armor", "a", false, "ASCII-armored output")
	return c
}

func (a *app) keyImportCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "import FILE",
		Short: "Take in certifications of your key (from your domain) and domain keys",
		Long: `Read FILE (armored or binary OpenPGP, "-" for standard input). The
certifications it carries for your key are added to your key; other keys in
it (such as your domain's key) are remembered so that ` + "`dsep key show`" + ` can
check the certifications they made.`,
		Example: `  dsep key import alice-certified.asc
  dsep key import example.org.asc`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := a.openDataDir()
			if err != nil {
				return err
			}
			keys, err := a.readKeyFile(args[0])
			if err != nil {
				return err
			}
			k, err := d.publicKey()
			if err != nil {
				return err
			}
			added, others := 0, 0
			var remember bytes.Buffer
			for _, in := range keys {
				if in.Fingerprint() == k.Fingerprint() {
					n, err := address.MergeCertifications(k, in)
					if err != nil {
						return err
					}
					added += n
					continue
				}
				others++
				remember.Write(in.PublicOnly().Bytes())
			}
			if added > 0 {
				if err := d.savePublic(k); err != nil {
					return err
				}
			}
			if remember.Len() > 0 {
				old, _ := readSmallFile(d.file("certifiers.asc"), 1<<20)
				all, err := mergeKeyring(old, remember.Bytes())
				if err != nil {
					return err
				}
				if err := writeFileAtomic(d.file("certifiers.asc"), all); err != nil {
					return err
				}
			}
			if a.jsonOut {
				return a.printJSON(map[string]int{"certifications_added": added, "other_keys": others})
			}
			fmt.Fprintf(a.stdout, "%d new certification(s) of %s added; %d other key(s) remembered\n", added, k.Fingerprint(), others)
			if added == 0 && others == 0 {
				return &exitError{code: 1, msg: "nothing to import for this key", hint: "the file should be your key as certified by `dsep domain certify`"}
			}
			return nil
		},
	}
}

// mergeKeyring merges two binary keyrings, one copy per fingerprint, and
// returns the binary result.
func mergeKeyring(old, add []byte) ([]byte, error) {
	var keys []*address.Key
	if len(old) > 0 {
		k, err := address.ReadKeys(bytes.NewReader(old), 1<<20)
		if err == nil {
			keys = k
		}
	}
	more, err := address.ReadKeys(bytes.NewReader(add), 1<<20)
	if err != nil {
		return nil, err
	}
	seen := map[address.Fingerprint]bool{}
	var out bytes.Buffer
	for _, k := range append(more, keys...) {
		if seen[k.Fingerprint()] {
			continue
		}
		seen[k.Fingerprint()] = true
		out.Write(k.Bytes())
	}
	if out.Len() > 1<<20 {
		return nil, fail("", "too many remembered keys")
	}
	return out.Bytes(), nil
}

func (a *app) keyRotateCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "rotate",
		Short: "Replace your key with a new one that your old key vouches for",
		Long: `Generate a new key with the same User IDs. Your old key certifies the new
one and is revoked as "superseded", naming the new key as its successor.
Your contacts follow the new key automatically once your domain has
certified it too: send the new key to your domain owner.

The old key is kept (in history/) so you can still read old mail.`,
		Example: `  dsep key rotate
  dsep key export --armor > new.asc   # to be certified by your domain`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, err := a.openDataDir()
			if err != nil {
				return err
			}
			old, pass, err := a.unlock(d)
			if err != nil {
				return err
			}
			now := time.Now()
			next, rev, err := address.Rotate(old, now, address.NewIdentityOptions{})
			if err != nil {
				return fail("a revoked key cannot be rotated; create a new identity with `dsep init` in a new data directory", "%v", err)
			}
			if err := d.archive(old, pass); err != nil {
				return err
			}
			if err := d.saveIdentity(next, pass); err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(map[string]any{"old": old.Fingerprint(), "new": next.Fingerprint(), "revocation": revJSON(rev)})
			}
			fmt.Fprintf(a.stdout, "Rotated: %s replaces %s (the old key is revoked as superseded).\n", next.Fingerprint(), old.Fingerprint())
			if d.meta.Kind == kindUser {
				fmt.Fprintf(a.stdout, "Next: have your domain certify the new key:\n  dsep key export --armor > new.asc\n")
			} else {
				fmt.Fprintf(a.stdout, "Next: publish the new TXT record (keep the old one during the rollover):\n  dsep domain txt --rollover\n")
			}
			return nil
		},
	}
}

func (a *app) keyRevokeCommand() *cobra.Command {
	var reason, text, fpr string
	c := &cobra.Command{
		Use:   "revoke --reason compromised|retired [--fingerprint FPR]",
		Short: "Revoke your key",
		Long: `Revoke your key. "compromised" is a hard revocation: nothing signed by the
key is trusted any more, whatever its date. "retired" is soft: signatures
made before your contacts first see the revocation stay valid. (A
"superseded" revocation is written only by ` + "`dsep key rotate`" + `.)`,
		Example: `  dsep key revoke --reason retired
  dsep key revoke --reason compromised --text "laptop stolen"
  dsep key revoke --reason compromised --fingerprint 0123…4567   # a key you rotated away from`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := address.ParseRevocationReason(reason)
			if err != nil || r == address.ReasonSuperseded {
				return fail("use --reason compromised or --reason retired; superseded is written by `dsep key rotate`", "bad --reason %q", reason)
			}
			d, err := a.openDataDir()
			if err != nil {
				return err
			}
			k, pass, err := a.unlock(d)
			if err != nil {
				return err
			}
			save := func() error { return d.saveIdentity(k, pass) }
			if fpr != "" {
				f, err := address.ParseFingerprint(fpr)
				if err != nil {
					return fail("give the 40-hex-digit fingerprint of one of your previous keys (`dsep key show`)", "--fingerprint: %v", err)
				}
				if f != k.Fingerprint() {
					if k, err = d.unlockHistory(f, pass); err != nil {
						return err
					}
					save = func() error { return d.archive(k, pass) }
				}
			}
			rev, err := address.Revoke(k, r, text, time.Now())
			if err != nil {
				return err
			}
			if err := save(); err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(revJSON(rev))
			}
			fmt.Fprintf(a.stdout, "Key %s revoked (%s).\nPublish it: dsep key export --armor\n", k.Fingerprint(), rev.Kind())
			return nil
		},
	}
	c.Flags().StringVar(&reason, "reason", "", "compromised or retired (required)")
	c.Flags().StringVar(&text, "text", "", "a human-readable explanation")
	c.Flags().StringVar(&fpr, "fingerprint", "", "revoke this previous key (from history/) instead of the current one")
	return c
}

// readKeyFile reads a keyring from a file or "-" (standard input).
func (a *app) readKeyFile(path string) ([]*address.Key, error) {
	var data []byte
	var err error
	if path == "-" {
		data, err = readAllLimit(a.stdin, 1<<20)
	} else {
		data, err = readSmallFile(path, 1<<20)
	}
	if err != nil {
		return nil, fail("check the file name", "reading %s: %v", path, err)
	}
	keys, err := address.ReadKeys(bytes.NewReader(data), 1<<20)
	if err != nil {
		return nil, fail("the file should hold an OpenPGP key, armored or binary", "%s: %v", path, err)
	}
	return keys, nil
}
