package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/dsep-project/dsep/dht/record"
	"github.com/dsep-project/dsep/node/control"
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
everyone publishes their records in it, and bob is looked up. Then each
user's node starts (dsep run, logging to <dir>/<user>/node.log), alice
sends bob a message, and bob's node shows it verified.

The demo identities have no passphrase: they are for trying DSEP out, not
for mail. The DNS server, the network and the nodes keep running until
Ctrl-C, so you can run the printed commands yourself (dsep send, inbox,
read, outbox, status).`,
		Example: `  dsep demo
  dsep demo --dir /tmp/dsep-demo --users 3
  dsep demo --exit   # set up, verify, and stop`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if users < 2 || users > 26 {
				return fail("use --users between 2 and 26", "bad --users %d", users)
			}
			return a.runDemo(cmd.Context(), demoOpts{dir: dir, users: users, exit: exit})
		},
	}
	c.Flags().StringVar(&dir, "dir", "", "directory for the demo's data (default: a new temporary directory)")
	c.Flags().IntVar(&users, "users", 3, "number of users")
	c.Flags().BoolVar(&exit, "exit", false, "stop after the demo instead of serving DNS until Ctrl-C")
	return c
}

// demoLetter is what alice writes to bob in the demo.
const demoLetter = "Hi Bob,\n\nthis came to your node straight from mine: signed with my key,\nencrypted to yours, paid for with a stamp.\n\nAlice\n"

// demoNodes runs `dsep run` for each user, as child processes.
type demoNodes struct {
	out     io.Writer
	cmds    []*exec.Cmd
	clients []demoClient
}

// startNodes starts a node per user and waits until each has published
// its records.
func (d *demo) startNodes(users []string, boot string) (*demoNodes, error) {
	dn := &demoNodes{out: d.out}
	self := os.Args[0]
	for _, u := range users {
		data := filepath.Join(d.dir, u)
		args := []string{"--data", data, "run", "--bootstrap", boot, "--dns", d.dns, "--listen", "/ip4/127.0.0.1/tcp/0",
			"--imap-listen", "127.0.0.1:0", "--smtp-listen", "127.0.0.1:0"}
		fmt.Fprintf(d.out, "$ dsep %s &   # log in %s\n", strings.Join(args, " "), filepath.Join(data, "node.log"))
		logf, err := os.OpenFile(filepath.Join(data, "node.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return dn, err
		}
		cmd := exec.Command(self, args...)
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.Env = append(os.Environ(), "DSEP_PASSPHRASE=")
		err = cmd.Start()
		logf.Close()
		if err != nil {
			return dn, fail("", "starting the node of %s: %v", u, err)
		}
		dn.cmds = append(dn.cmds, cmd)
	}
	fmt.Fprintln(d.out)
	for _, u := range users {
		st, err := d.waitReady(filepath.Join(d.dir, u))
		if err != nil {
			return dn, err
		}
		dn.clients = append(dn.clients, demoClient{user: u, imap: st.IMAP, smtp: st.SMTP})
	}
	// A fresh mail-client password per user, to print with the settings
	// (dsep init showed the first one among its output).
	for i := range dn.clients {
		var buf bytes.Buffer
		if run([]string{"--data", filepath.Join(d.dir, dn.clients[i].user), "client", "password", "--json"}, strings.NewReader(""), &buf, io.Discard) != 0 {
			return dn, fail("", "making a client password for %s", dn.clients[i].user)
		}
		var pw clientPasswordJSON
		if err := json.Unmarshal(buf.Bytes(), &pw); err != nil {
			return dn, err
		}
		dn.clients[i].username, dn.clients[i].password = pw.Username, pw.Password
	}
	return dn, nil
}

// demoClient is what a mail client needs for one demo user.
type demoClient struct {
	user, imap, smtp, username, password string
}

// printClients prints every user's mail-client settings.
func (dn *demoNodes) printClients(w io.Writer) {
	fmt.Fprintln(w, "Mail clients (Thunderbird, mutt, …): no encryption, normal password, on 127.0.0.1:")
	for _, c := range dn.clients {
		fmt.Fprintf(w, "  %-6s IMAP %-16s SMTP %-16s user %-20s password %s\n", c.user, c.imap, c.smtp, c.username, c.password)
	}
	fmt.Fprintln(w)
}

// waitReady waits until the node of data answers and has republished,
// and returns its status.
func (d *demo) waitReady(data string) (*control.Status, error) {
	deadline := time.Now().Add(time.Minute)
	for {
		var buf bytes.Buffer
		if run([]string{"--data", data, "status", "--json"}, strings.NewReader(""), &buf, io.Discard) == 0 {
			var st control.Status
			if json.Unmarshal(buf.Bytes(), &st) == nil && st.DHT.Republished > 0 {
				return &st, nil
			}
		}
		if time.Now().After(deadline) {
			return nil, fail("see "+filepath.Join(data, "node.log"), "the node of %s did not come up", data)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitInbox waits for a message with subject in data's inbox and returns
// its ID.
func (d *demo) waitInbox(ctx context.Context, data, subject string) (string, error) {
	deadline := time.Now().Add(time.Minute)
	for ctx.Err() == nil {
		var buf bytes.Buffer
		if run([]string{"--data", data, "inbox", "--json"}, strings.NewReader(""), &buf, io.Discard) == 0 {
			var list []struct {
				ID      string `json:"id"`
				Subject string `json:"subject"`
			}
			if json.Unmarshal(buf.Bytes(), &list) == nil {
				for _, m := range list {
					if m.Subject == subject {
						return m.ID, nil
					}
				}
			}
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return "", fail("see the node.log files in "+d.dir, "the demo message did not arrive")
}

// stop interrupts every node and waits for it.
func (dn *demoNodes) stop() {
	for _, c := range dn.cmds {
		_ = c.Process.Signal(os.Interrupt)
	}
	for _, c := range dn.cmds {
		_ = c.Wait()
	}
}

type demo struct {
	a   *app
	out io.Writer // where steps are shown (io.Discard when quiet)
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
	fmt.Fprintln(d.out, shown)
	var buf, log bytes.Buffer
	stdout := io.MultiWriter(d.out, &log)
	if out != "" {
		stdout = &buf
	}
	if code := run(args, strings.NewReader(""), stdout, io.MultiWriter(d.out, &log)); code != 0 {
		return d.failed(code, args, log.String())
	}
	if out != "" {
		if err := writeFileAtomic(out, buf.Bytes()); err != nil {
			return err
		}
	}
	fmt.Fprintln(d.out)
	return nil
}

// failed is the error of a failed step, with its output's end.
func (d *demo) failed(code int, args []string, output string) error {
	output = strings.TrimSpace(output)
	if len(output) > 600 {
		output = "…" + output[len(output)-600:]
	}
	return &exitError{code: code, msg: "demo step failed: dsep " + strings.Join(args, " ") + ": " + output}
}

// stepIn is step with stdin, shown as "<<< text".
func (d *demo) stepIn(stdin string, args ...string) error {
	fmt.Fprintf(d.out, "$ dsep %s <<EOF\n%sEOF\n", strings.Join(quoteArgs(args), " "), stdin)
	var log bytes.Buffer
	if code := run(args, strings.NewReader(stdin), io.MultiWriter(d.out, &log), io.MultiWriter(d.out, &log)); code != 0 {
		return d.failed(code, args, log.String())
	}
	fmt.Fprintln(d.out)
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
	fmt.Fprintln(d.out, "$ dsep "+strings.Join(quoteArgs(args), " "))
	if code := run(args, strings.NewReader(""), d.out, d.out); code == 0 {
		return &exitError{code: 1, msg: "demo: a forged key was accepted: dsep " + strings.Join(args, " ")}
	}
	fmt.Fprintln(d.out)
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

// demoNetSize is the size of the demo's DSEP network.
const demoNetSize = 6

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

// demoOpts says what runDemo brings up.
type demoOpts struct {
	dir   string // default: a new temporary directory
	users int
	exit  bool // stop once everything ran, instead of at Ctrl-C
	quiet bool // no step-by-step output (dsep testnet up)
	// ready, if set, is called once every node runs.
	ready func(*demoState) error
}

// demoState is what runs once runDemo is ready (testnet.json).
type demoState struct {
	DNS       string     `json:"dns"`
	Bootstrap string     `json:"bootstrap"`
	Users     []demoUser `json:"users"`
}

type demoUser struct {
	Email       string `json:"email"`
	Fingerprint string `json:"fingerprint"`
	Data        string `json:"data"`
	IMAP        string `json:"imap"`
	SMTP        string `json:"smtp"`
	Username    string `json:"username"`
	Password    string `json:"password"`
}

// verifyMax bounds the bindings the demo verifies step by step.
const verifyMax = 6

// demoNames names n users: alice, bob, … for up to 26, user01… beyond.
func demoNames(n int) []string {
	names := []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "ken", "leo", "mallory", "nia", "oscar", "peggy", "quinn", "rupert", "sybil", "trent", "ursula", "victor", "walter", "xena", "yves", "zoe"}
	if n <= len(names) {
		return names[:n]
	}
	out := names[:2:2] // alice and bob write to each other
	for i := 3; i <= n; i++ {
		out = append(out, fmt.Sprintf("user%02d", i))
	}
	return out
}

// readFingerprint reads the fingerprint of a data directory.
func readFingerprint(data string) (string, error) {
	var m meta
	b, err := os.ReadFile(filepath.Join(data, metaFile))
	if err != nil {
		return "", err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return "", err
	}
	return m.Fingerprint.String(), nil
}

// runDemo brings up the embedded default: DNS, a domain, users with
// running nodes, a DSEP network, and a first message.
func (a *app) runDemo(ctx context.Context, opt demoOpts) error {
	dir, users := opt.dir, opt.users
	out := a.stdout
	if opt.quiet {
		out = io.Discard
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
	d := &demo{a: a, out: out, dir: dir, dns: dns.Addr()}
	fmt.Fprintf(out, "DSEP demo in %s — DNS server on %s\n\n", dir, dns.Addr())

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
	fmt.Fprintf(out, "(published on the demo DNS server: _dsep.example.org TXT %q)\n\n", txt)
	domKey := filepath.Join(dir, "example.org.asc")
	if err := d.step(domKey, "--data", domData, "key", "export", "--armor"); err != nil {
		return err
	}

	// The users.
	names := demoNames(users)
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
	for _, n := range names[1:min(users, verifyMax)] {
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
	fmt.Fprintln(out, "(a key claiming bob@example.org that the domain never certified:)")
	if err := d.expectFail("--data", alice, "verify", "bob@example.org", "--key", filepath.Join(dir, "forged-bob.asc"), "--domain-key", domKey, "--dns", dns.Addr(), "--no-pin"); err != nil {
		return err
	}

	// The DSEP network: publish everyone's records, look bob up.
	fmt.Fprintf(out, "(starting a DSEP network of %d nodes on loopback)\n", demoNetSize)
	net, err := testnet.New(ctx, testnet.Config{Nodes: demoNetSize, Validator: record.NamespacedValidator(record.Validator{})})
	if err != nil {
		return fail("", "starting the demo network: %v", err)
	}
	defer net.Close()
	boot, err := loopbackAddr(net.Node(0).Host())
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "(bootstrap node: %s)\n\n", boot)
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

	fmt.Fprintf(out, "\nAll bindings verified against the DNS server on %s and found in the DSEP network.\n\n", dns.Addr())

	// Every user's node runs; alice writes to bob.
	nodes, err := d.startNodes(names[:users], boot)
	defer nodes.stop()
	if err != nil {
		return err
	}
	bob := filepath.Join(dir, names[1])
	if err := d.stepIn(demoLetter, "--data", alice, "send", "--to", "bob@example.org", "--subject", "Hello from the DSEP demo"); err != nil {
		return err
	}
	id, err := d.waitInbox(ctx, bob, "Hello from the DSEP demo")
	if err != nil {
		return err
	}
	if err := d.step("", "--data", bob, "inbox"); err != nil {
		return err
	}
	if err := d.step("", "--data", bob, "read", id[:12]); err != nil {
		return err
	}
	fmt.Fprintln(out, "Mail from alice reached bob's node, signed, encrypted and verified.")
	fmt.Fprintln(out)
	nodes.printClients(out)
	if opt.ready != nil {
		st := &demoState{DNS: dns.Addr(), Bootstrap: boot}
		for i, c := range nodes.clients {
			fpr, err := readFingerprint(filepath.Join(dir, c.user))
			if err != nil {
				return err
			}
			st.Users = append(st.Users, demoUser{Email: names[i] + "@example.org", Fingerprint: fpr, Data: filepath.Join(dir, c.user),
				IMAP: c.imap, SMTP: c.smtp, Username: c.username, Password: c.password})
		}
		if err := opt.ready(st); err != nil {
			return err
		}
	}
	if opt.exit {
		return nil
	}
	fmt.Fprintf(out, "\nThe DNS server, the network and the users' nodes keep running until Ctrl-C; try:\n"+
		"  echo 'Hi!' | dsep --data %s send --to carol@example.org --subject Hi\n"+
		"  dsep --data %s inbox\n  dsep --data %s status\n  dsep --data %s outbox\n"+
		"  dsep lookup carol@example.org --bootstrap %s --dns %s\n",
		bob, filepath.Join(dir, names[2%users]), alice, bob, boot, dns.Addr())
	<-ctx.Done()
	fmt.Fprintln(a.stdout, "\nstopped; the files stay in", dir)
	return nil
}
