package main

import (
	"fmt"
	"time"

	"github.com/dsep-project/dsep/address"
	"github.com/spf13/cobra"
)

func (a *app) initCommand() *cobra.Command {
	var email, name string
	var insecure bool
	c := &cobra.Command{
		Use:   "init --email ADDRESS [--name NAME]",
		Short: "Create your DSEP identity",
		Long: `Create your DSEP identity in the data directory: an OpenPGP v4 key with
an Ed25519 primary that only certifies, an Ed25519 signing subkey and a
Cv25519 encryption subkey, for the User ID "NAME <ADDRESS>".

The secret key is sealed with your passphrase ($DSEP_PASSPHRASE, or asked
on the terminal). Then send your public key to the owner of your domain to
be certified.`,
		Example: `  dsep init --email alice@example.org --name "Alice Example"
  DSEP_PASSPHRASE=… dsep --data ./alice init --email alice@example.org
  dsep init --email test@example.org --insecure-no-passphrase   # throw-away test identity`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if email == "" {
				return fail("pass --email ADDRESS, e.g. --email alice@example.org", "no email address given")
			}
			e, err := address.ParseEmail(email)
			if err != nil {
				return fail("give an address like alice@example.org", "%v", err)
			}
			if e.IsKeyAddress() {
				return fail("use your own email address; your key address is derived from the key", "%s is a key address", e)
			}
			uid, err := address.UserID(name, e)
			if err != nil {
				return fail("leave out <, >, ( and ) from --name", "%v", err)
			}
			d, err := a.createDataDir()
			if err != nil {
				return err
			}
			var pass []byte
			if !insecure {
				if pass, err = a.passphrase("New passphrase for "+e.String()+": ", true); err != nil {
					return err
				}
			}
			k, err := address.NewIdentity(name, e, address.NewIdentityOptions{})
			if err != nil {
				return err
			}
			d.meta = meta{Kind: kindUser, Email: e.String(), Created: time.Now().UTC().Truncate(time.Second)}
			if err := d.saveIdentity(k, pass); err != nil {
				return fail("choose a writable --data directory", "saving the identity: %v", err)
			}
			if _, err := d.storageKey(pass); err != nil {
				return err
			}
			clientPW, err := d.newClientPassword()
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(identityJSON{
					Fingerprint: k.Fingerprint(), UserID: uid, Email: e.String(),
					KeyAddress: k.KeyAddress().String(), Data: d.path, Protected: len(pass) > 0,
					ClientPassword: clientPW,
				})
			}
			fmt.Fprintf(a.stdout, "Created identity %s\n", uid)
			fmt.Fprintf(a.stdout, "  fingerprint  %s\n", k.Fingerprint().Grouped())
			fmt.Fprintf(a.stdout, "  email        %s\n", e)
			fmt.Fprintf(a.stdout, "  key address  %s\n", k.KeyAddress())
			fmt.Fprintf(a.stdout, "  data         %s\n", d.path)
			if insecure {
				fmt.Fprintln(a.stdout, "  WARNING      the secret key is stored WITHOUT a passphrase (--insecure-no-passphrase)")
			}
			fmt.Fprintf(a.stdout, "  mail client  password %s (shown only now; for IMAP/SMTP on 127.0.0.1, see dsep client config)\n", clientPW)
			fmt.Fprintf(a.stdout, "\nNext: have the owner of %s certify your key:\n  dsep key export --armor > %s.asc   # send this file\n  dsep key import certified.asc      # when it comes back\n", e.Domain(), e.Local())
			return nil
		},
	}
	c.Flags().StringVar(&email, "email", "", "your email address (required)")
	c.Flags().StringVar(&name, "name", "", "your name, shown in the User ID")
	c.Flags().BoolVar(&insecure, "insecure-no-passphrase", false, "store the secret key unprotected (tests and demos only)")
	return c
}

type identityJSON struct {
	Fingerprint address.Fingerprint `json:"fingerprint"`
	UserID      string              `json:"user_id"`
	Email       string              `json:"email,omitempty"`
	Domain      string              `json:"domain,omitempty"`
	KeyAddress  string              `json:"key_address"`
	Data        string              `json:"data"`
	Protected   bool                `json:"passphrase_protected"`
	// ClientPassword is the mail-client password, given once, by init.
	ClientPassword string `json:"client_password,omitempty"`
	TXT            string `json:"txt,omitempty"`
	ZoneLine       string `json:"zone_line,omitempty"`
}
