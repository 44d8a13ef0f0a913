package main

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"strings"
	"time"

	"github.com/dsep-project/dsep/node/account"
	"github.com/spf13/cobra"
)

// clientPassFile holds the argon2id hash of the mail-client password.
const clientPassFile = "client.pass"

// newClientPassword makes a new mail-client password for d, stores its
// hash and returns it (to be shown once).
func (d *dataDir) newClientPassword() (string, error) {
	pw, err := account.Generate()
	if err != nil {
		return "", err
	}
	h, err := account.Hash(pw)
	if err != nil {
		return "", err
	}
	if err := writeFileAtomic(d.file(clientPassFile), []byte(h+"\n")); err != nil {
		return "", fail("choose a writable --data directory", "saving the client password: %v", err)
	}
	return pw, nil
}

// clientPasswordHash reads the stored hash ("" if there is none).
func (d *dataDir) clientPasswordHash() (string, error) {
	b, err := readSmallFile(d.file(clientPassFile), 4096)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

func (a *app) clientCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "client",
		Short: "Set up a mail client (Thunderbird, mutt, Apple Mail) for your node",
		Long: `Your running node (dsep run) serves IMAP and SMTP submission on 127.0.0.1
for any mail client. The client logs in with your email address and a
local password, which dsep init made and showed once; it unlocks the
mailbox over those local ports and nothing else (your keys stay protected
by your passphrase).`,
		Example: `  dsep client config
  dsep client config --format thunderbird-autoconfig > config-v1.1.xml
  dsep client password   # a new password; the old one stops working`,
	}
	c.AddCommand(a.clientPasswordCommand(), a.clientConfigCommand())
	return c
}

type clientPasswordJSON struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

func (a *app) clientPasswordCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "password",
		Short: "Make a new mail-client password (shown once)",
		Long: `Make a new random password for the node's IMAP and SMTP servers and show
it once. Only its hash is kept (client.pass in the data directory). The old
password stops working at once, also for a running node: update your mail
client.`,
		Example: `  dsep client password
  dsep --data ./alice client password --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, err := a.openDataDir()
			if err != nil {
				return err
			}
			if d.meta.Kind != kindUser {
				return fail("mail clients connect to a user's node", "%s is a domain's data directory", d.path)
			}
			pw, err := d.newClientPassword()
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(clientPasswordJSON{Username: d.meta.Email, Password: pw})
			}
			fmt.Fprintf(a.stdout, "New mail-client password for %s:\n\n  %s\n\nIt is shown only now; the old one no longer works. `dsep client config` shows the rest of the settings.\n", d.meta.Email, pw)
			return nil
		},
	}
}

// clientSettings is what a mail client needs.
type clientSettings struct {
	Email    string `json:"email"`
	Username string `json:"username"`
	IMAPHost string `json:"imap_host"`
	IMAPPort string `json:"imap_port"`
	SMTPHost string `json:"smtp_host"`
	SMTPPort string `json:"smtp_port"`
	Security string `json:"security"`
	Auth     string `json:"auth"`
}

func (a *app) clientConfigCommand() *cobra.Command {
	var format string
	c := &cobra.Command{
		Use:   "config [--format text|thunderbird-autoconfig]",
		Short: "Print the settings a mail client needs",
		Long: `Print the IMAP and SMTP settings of your node for a mail client: host,
ports (imap_listen and smtp_listen of config.toml), username and how to
log in. The password is not shown: dsep init showed it once, and
dsep client password makes a new one.

--format thunderbird-autoconfig prints a Thunderbird autoconfig file
(config-v1.1.xml) for the same settings.`,
		Example: `  dsep client config
  dsep client config --json
  dsep client config --format thunderbird-autoconfig > config-v1.1.xml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, err := a.openDataDir()
			if err != nil {
				return err
			}
			if d.meta.Kind != kindUser {
				return fail("mail clients connect to a user's node", "%s is a domain's data directory", d.path)
			}
			cfg, err := loadConfig(d.path)
			if err != nil {
				return err
			}
			s := clientSettings{Email: d.meta.Email, Username: d.meta.Email, Security: "none (loopback only)", Auth: "password (PLAIN or LOGIN)"}
			imapAddr, smtpAddr := cfg.IMAPListen, cfg.SMTPListen
			// A running node knows its ports (it may have been started
			// with other flags, or port 0).
			if cl, _, err := a.nodeClient(); err == nil {
				ctx, cancel := context.WithTimeout(cmd.Context(), 3*time.Second)
				if st, err := cl.Status(ctx); err == nil {
					imapAddr, smtpAddr = st.IMAP, st.SMTP
				}
				cancel()
				cl.Close()
			}
			if imapAddr == "" || smtpAddr == "" {
				return fail("set imap_listen and smtp_listen in config.toml (defaults 127.0.0.1:1143 and 127.0.0.1:1587), or start the node with --imap-listen and --smtp-listen", "the node's mail-client servers are turned off")
			}
			s.IMAPHost, s.IMAPPort, _ = net.SplitHostPort(imapAddr)
			s.SMTPHost, s.SMTPPort, _ = net.SplitHostPort(smtpAddr)
			switch {
			case format == "thunderbird-autoconfig":
				return a.printAutoconfig(s)
			case format != "text":
				return fail("use --format text or --format thunderbird-autoconfig", "unknown --format %q", format)
			case a.jsonOut:
				return a.printJSON(s)
			}
			fmt.Fprintf(a.stdout, "Mail client settings for %s (the node must be running: dsep run)\n\n", s.Email)
			fmt.Fprintf(a.stdout, "  incoming  IMAP  %s port %s, no encryption (the node listens on loopback only)\n", s.IMAPHost, s.IMAPPort)
			fmt.Fprintf(a.stdout, "  outgoing  SMTP  %s port %s, no encryption, authentication: normal password\n", s.SMTPHost, s.SMTPPort)
			fmt.Fprintf(a.stdout, "  username  %s\n  password  the one dsep init showed (dsep client password makes a new one)\n", s.Username)
			return nil
		},
	}
	c.Flags().StringVar(&format, "format", "text", "text or thunderbird-autoconfig")
	return c
}

// printAutoconfig writes a Thunderbird autoconfig (clientConfig 1.1).
func (a *app) printAutoconfig(s clientSettings) error {
	type server struct {
		Type           string `xml:"type,attr"`
		Hostname       string `xml:"hostname"`
		Port           string `xml:"port"`
		SocketType     string `xml:"socketType"`
		Username       string `xml:"username"`
		Authentication string `xml:"authentication"`
	}
	type provider struct {
		ID          string `xml:"id,attr"`
		Domain      string `xml:"domain"`
		DisplayName string `xml:"displayName"`
		Incoming    server `xml:"incomingServer"`
		Outgoing    server `xml:"outgoingServer"`
	}
	type clientConfig struct {
		XMLName  xml.Name `xml:"clientConfig"`
		Version  string   `xml:"version,attr"`
		Provider provider `xml:"emailProvider"`
	}
	_, domain, _ := strings.Cut(s.Email, "@")
	cc := clientConfig{Version: "1.1", Provider: provider{
		ID: "dsep-local", Domain: domain, DisplayName: "DSEP node for " + s.Email,
		Incoming: server{Type: "imap", Hostname: s.IMAPHost, Port: s.IMAPPort, SocketType: "plain", Username: s.Username, Authentication: "password-cleartext"},
		Outgoing: server{Type: "smtp", Hostname: s.SMTPHost, Port: s.SMTPPort, SocketType: "plain", Username: s.Username, Authentication: "password-cleartext"},
	}}
	b, err := xml.MarshalIndent(cc, "", "  ")
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "%s%s\n", xml.Header, b)
	return nil
}
