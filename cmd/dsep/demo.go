package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/dsep-project/dsep/dht/record"
	"github.com/dsep-project/dsep/testnet"
	"github.com/dsep-project/dsep/testnet/dnstest"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/spf13/cobra"
)

func (a *app) demoCommand() *cobra.Command {
	var dir string
	var users int
	var exit bool
	c := &cobra.Command{
		Use:   "demo",
		Short: "Run the embedded local demo: a DNS server, a domain and users on loopback",
		Long: `Bring up the embedded default on loopback: an authoritative DNS server on
127.0.0.1, the domain example.org with its key and TXT record, and users
(alice, bob, carol, …) certified by it. Every step runs a real dsep command,
printed as it runs. Then the bindings are verified against the DNS server,
a forged key for bob is shown to fail, a DSEP network of six nodes starts,
everyone publishes their records in it, and bob is looked up.

The demo identities have no passphrase: they are for trying DSEP out, not
for mail. The DNS server and the network keep running until Ctrl-C, so you
can run the printed commands yourself.`,
		Example: `  dsep demo
  dsep demo --dir /tmp/dsep-demo --users 3
  dsep demo --exit   # set up, verify, and stop`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if users < 2 || users > 26 {
				return fail("use --users between 2 and 26", "bad --users %d", users)
			}
			if dir == "" {
				var err error
				if dir, err = os.MkdirTemp("", "dsep-demo-"); err != nil {
					return err
				}
			} else if err := os.MkdirAll(dir, 0o700); err != nil {
				return err
			}
			dns, err := dnstest.Start("127.0.0.1:0")
			if err != nil {
				return fail("", "starting the demo DNS server: %v", err)
			}
			defer dns.Close()
			d := &demo{a: a, dir: dir, dns: dns.Addr()}
			fmt.Fprintf(a.stdout, "DSEP demo in %s — DNS server on %s\n\n", dir, dns.Addr())

			// The domain.
			domData := filepath.Join(dir, "example.org")
			if err := d.step("", "--data", domData, "domain", "init", "--domain", "example.org", "--insecure-no-passphrase"); err != nil {
				return err
			}
			var m meta
			mb, err := os.ReadFile(filepath.Join(domData, metaFile))
			if err != nil {
				return err
			}
			if err := json.Unmarshal(mb, &m); err != nil {
				return err
			}
			txt := fmt.Sprintf("v=DSEP1; fpr=%s", m.Fingerprint)
			dns.AddTXT("_dsep.example.org", txt)
			fmt.Fprintf(a.stdout, "(published on the demo DNS server: _dsep.example.org TXT %q)\n\n", txt)
			domKey := filepath.Join(dir, "example.org.asc")
			if err := d.step(domKey, "--data", domData, "key", "export", "--armor"); err != nil {
				return err
			}

			// The users.
			names := []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "ken", "leo", "mallory", "nia", "oscar", "peggy", "quinn", "rupert", "sybil", "trent", "ursula", "victor", "walter", "xena", "yves", "zoe"}
			for _, n := range names[:users] {
				data := filepath.Join(dir, n)
				email := n + "@example.org"
				if err := d.step("", "--data", data, "init", "--email", email, "--name", strings.ToUpper(n[:1])+n[1:], "--insecure-no-passphrase"); err != nil {
					return err
				}
				if err := d.step(filepath.Join(dir, n+".asc"), "--data", data, "key", "export", "--armor"); err != nil {
					return err
				}
				cert := filepath.Join(dir, n+"-certified.asc")
				if err := d.step(cert, "--data", domData, "domain", "certify", filepath.Join(dir, n+".asc")); err != nil {
					return err
				}
				if err := d.step("", "--data", data, "key", "import", cert); err != nil {
					return err
				}
			}

			// Verify: alice checks every other user's binding.
			alice := filepath.Join(dir, names[0])
			for _, n := range names[1:users] {
				if err := d.step("", "--data", alice, "verify", n+"@example.org", "--key", filepath.Join(dir, n+"-certified.asc"), "--domain-key", domKey, "--dns", dns.Addr()); err != nil {
					return err
				}
			}
			if err := d.step("", "--data", alice, "contacts", "list"); err != nil {
				return err
			}

			// A forged key for bob: same User ID, not certified by the domain.
			forged := filepath.Join(dir, "mallory-as-bob")
			if err := d.quiet("--data", forged, "init", "--email", "bob@example.org", "--name", "Bob", "--insecure-no-passphrase"); err != nil {
				return err
			}
			if err := d.step(filepath.Join(dir, "forged-bob.asc"), "--data", forged, "key", "export", "--armor"); err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, "(a key claiming bob@example.org that the domain never certified:)")
			if err := d.expectFail("--data", alice, "verify", "bob@example.org", "--key", filepath.Join(dir, "forged-bob.asc"), "--domain-key", domKey, "--dns", dns.Addr(), "--no-pin"); err != nil {
				return err
			}

			// The DSEP network: publish everyone's records, look bob up.
			fmt.Fprintf(a.stdout, "(starting a DSEP network of %d nodes on loopback)\n", demoNodes)
			net, err := testnet.New(cmd.Context(), testnet.Config{Nodes: demoNodes, Validator: record.NamespacedValidator(record.Validator{})})
			if err != nil {
				return fail("", "starting the demo network: %v", err)
			}
			defer net.Close()
			boot, err := loopbackAddr(net.Node(0).Host())
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "(bootstrap node: %s)\n\n", boot)
			lo := "/ip4/127.0.0.1/tcp/0"
			if err := d.step("", "--data", domData, "publish", "--bootstrap", boot, "--listen", lo); err != nil {
				return err
			}
			for _, n := range names[:users] {
				if err := d.step("", "--data", filepath.Join(dir, n), "publish", "--bootstrap", boot, "--listen", lo, "--announce", "/ip4/127.0.0.1/tcp/4101"); err != nil {
					return err
				}
			}
			if err := d.step("", "lookup", "bob@example.org", "--bootstrap", boot, "--dns", dns.Addr(), "--listen", lo); err != nil {
				return err
			}

			fmt.Fprintf(a.stdout, "\nAll bindings verified against the DNS server on %s and found in the DSEP network.\n", dns.Addr())
			if exit {
				return nil
			}
			fmt.Fprintf(a.stdout, "Both keep running until Ctrl-C; try:\n  dsep lookup carol@example.org --bootstrap %s --dns %s\n  dsep --data %s verify bob@example.org --key %s --domain-key %s --dns %s\n  dsep --data %s contacts list\n",
				boot, dns.Addr(), alice, filepath.Join(dir, "bob-certified.asc"), domKey, dns.Addr(), alice)
			<-cmd.Context().Done()
			fmt.Fprintln(a.stdout, "\nstopped; the demo files stay in", dir)
			return nil
		},
	}
	c.Flags().StringVar(&dir, "dir", "", "directory for the demo's data (default: a new temporary directory)")
	c.Flags().IntVar(&users, "users", 3, "number of users")
	c.Flags().BoolVar(&exit, "exit", false, "stop after the demo instead of serving DNS until Ctrl-C")
	return c
}

type demo struct {
	a   *app
	dir string
	dns string
}

// step runs one dsep command, printing it and its output; out, if set,
// receives the command's standard output instead (as "> out").
func (d *demo) step(out string, args ...string) error {
	shown := "$ dsep " + strings.Join(quoteArgs(args), " ")
	if out != "" {
		shown += " > " + out
	}
	fmt.Fprintln(d.a.stdout, shown)
	var buf bytes.Buffer
	stdout := d.a.stdout
	if out != "" {
		stdout = &buf
	}
	if code := run(args, strings.NewReader(""), stdout, d.a.stdout); code != 0 {
		return &exitError{code: code, msg: "demo step failed: dsep " + strings.Join(args, " ")}
	}
	if out != "" {
		if err := writeFileAtomic(out, buf.Bytes()); err != nil {
			return err
		}
	}
	fmt.Fprintln(d.a.stdout)
	return nil
}

func (d *demo) quiet(args ...string) error {
	var buf bytes.Buffer
	if code := run(args, strings.NewReader(""), &buf, &buf); code != 0 {
		return &exitError{code: code, msg: "demo step failed: " + buf.String()}
	}
	return nil
}

// expectFail runs a command that must fail, and shows its output.
func (d *demo) expectFail(args ...string) error {
	fmt.Fprintln(d.a.stdout, "$ dsep "+strings.Join(quoteArgs(args), " "))
	if code := run(args, strings.NewReader(""), d.a.stdout, d.a.stdout); code == 0 {
		return &exitError{code: 1, msg: "demo: a forged key was accepted: dsep " + strings.Join(args, " ")}
	}
	fmt.Fprintln(d.a.stdout)
	return nil
}

func quoteArgs(args []string) []string {
	out := make([]string, len(args))
	for i, s := range args {
		if strings.ContainsAny(s, " \"'") {
			s = fmt.Sprintf("%q", s)
		}
		out[i] = s
	}
	return out
}

// demoNodes is the size of the demo's DSEP network.
const demoNodes = 6

// loopbackAddr returns h's loopback TCP address with its peer ID, to
// bootstrap from.
func loopbackAddr(h host.Host) (string, error) {
	for _, a := range h.Addrs() {
		if strings.HasPrefix(a.String(), "/ip4/127.0.0.1/tcp/") {
			return a.String() + "/p2p/" + h.ID().String(), nil
		}
	}
	return "", fmt.Errorf("node %s has no loopback TCP address", h.ID())
}
