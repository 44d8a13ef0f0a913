package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/dsep-project/dsep/address/book"
	dsepdns "github.com/dsep-project/dsep/address/dns"
	"github.com/dsep-project/dsep/dht/host"
	"github.com/dsep-project/dsep/node"
	"github.com/dsep-project/dsep/node/account"
	"github.com/dsep-project/dsep/node/control"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/spf13/cobra"
)

// runFlags are the flags of `dsep run`; each, when given, wins over the
// same key of config.toml.
type runFlags struct {
	listen    []string
	announce  []string
	bootstrap []string
	dns       string
	logLevel  string
	logFormat string
	stampBits int
	imap      string
	smtp      string
}

func (a *app) runCommand() *cobra.Command {
	var f runFlags
	c := &cobra.Command{
		Use:   "run",
		Short: "Run the node: receive and send mail, keep your records published",
		Long: `Run this data directory's node until Ctrl-C (SIGINT) or SIGTERM.

The node joins the DSEP network (its DHT), publishes your key and reach
records and keeps them published, receives mail for you over
/dsep/deliver/1.0.0 (checking each stamp before storing anything, and
acknowledging only what is on disk), decrypts and verifies it, checks
that the sender's domain binds the signing key, files it in your
mailbox and sends the sender a signed receipt. It delivers what you send
from its queue, retrying with backoff for up to five days, then bounces.
It also watches that DNS and the DHT still name your key for your
addresses and reports otherwise (dsep status, and the log).

Settings come from config.toml in the data directory (see
docs/operator.md, "Configuration"); flags win over it. The CLI talks to
the running node through control.sock in the data directory (mode 0600).
Logs go to stderr; they never hold a secret or a message body.`,
		Example: `  # Run with config.toml's settings
  DSEP_PASSPHRASE=… dsep --data ./alice run

  # Join a network, listen on a fixed port, use a local DNS resolver
  dsep --data ./alice run --bootstrap /ip4/192.0.2.1/tcp/4101/p2p/12D3KooW… \
      --listen /ip4/0.0.0.0/tcp/4101 --dns 127.0.0.1:53

  # Machine-readable logs and the address of the node once it is up
  dsep --data ./alice run --log-format json --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return a.run(ctx, cmd, f)
		},
	}
	c.Flags().StringSliceVar(&f.listen, "listen", nil, "multiaddrs to listen on (repeatable; config: listen)")
	c.Flags().StringSliceVar(&f.announce, "announce", nil, "multiaddrs to announce in the reach record instead (repeatable; config: announce)")
	c.Flags().StringSliceVar(&f.bootstrap, "bootstrap", nil, "DSEP node to join through, /…/p2p/<peer ID> (repeatable; config: bootstrap; default $DSEP_BOOTSTRAP)")
	c.Flags().StringVar(&f.dns, "dns", "", "DNS resolver HOST:PORT for the _dsep TXT records (config: dns; default /etc/resolv.conf)")
	c.Flags().StringVar(&f.logLevel, "log-level", "", "debug, info, warn or error (config: log_level)")
	c.Flags().StringVar(&f.logFormat, "log-format", "", "text or json (config: log_format)")
	c.Flags().IntVar(&f.stampBits, "stamp-bits", 0, "base stamp price senders pay you, in bits (config: stamp_bits)")
	c.Flags().StringVar(&f.imap, "imap-listen", "", `IMAP server for mail clients, loopback IP:port, "" to turn off (config: imap_listen)`)
	c.Flags().StringVar(&f.smtp, "smtp-listen", "", `SMTP submission for mail clients, loopback IP:port, "" to turn off (config: smtp_listen)`)
	return c
}

// runStatus is what `dsep run --json` prints once the node is up.
type runStatus struct {
	Fingerprint string   `json:"fingerprint"`
	PeerID      string   `json:"peer_id"`
	Addrs       []string `json:"addrs"`
	Control     string   `json:"control"`
	IMAP        string   `json:"imap,omitempty"`
	SMTP        string   `json:"smtp,omitempty"`
}

func (a *app) run(ctx context.Context, cmd *cobra.Command, f runFlags) error {
	d, err := a.openDataDir()
	if err != nil {
		return err
	}
	cfg, err := loadConfig(d.path)
	if err != nil {
		return err
	}
	fl := cmd.Flags()
	if fl.Changed("listen") {
		cfg.Listen = f.listen
	}
	if fl.Changed("announce") {
		cfg.Announce = f.announce
	}
	if fl.Changed("bootstrap") {
		cfg.Bootstrap = f.bootstrap
	} else if len(cfg.Bootstrap) == 0 {
		if env := os.Getenv("DSEP_BOOTSTRAP"); env != "" {
			cfg.Bootstrap = strings.Split(env, ",")
		}
	}
	if fl.Changed("dns") {
		cfg.DNS = f.dns
	}
	if fl.Changed("log-level") {
		cfg.LogLevel = f.logLevel
	}
	if fl.Changed("log-format") {
		cfg.LogFormat = f.logFormat
	}
	if fl.Changed("stamp-bits") {
		cfg.StampBits = f.stampBits
	}
	if fl.Changed("imap-listen") {
		cfg.IMAPListen = f.imap
	}
	if fl.Changed("smtp-listen") {
		cfg.SMTPListen = f.smtp
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	logger, err := newLogger(a.stderr, cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return err
	}
	var boot []peer.AddrInfo
	for _, s := range cfg.Bootstrap {
		ai, err := peer.AddrInfoFromString(strings.TrimSpace(s))
		if err != nil {
			return fail("a bootstrap address ends in /p2p/<peer ID>", "bad bootstrap peer %q: %v", s, err)
		}
		boot = append(boot, *ai)
	}

	// Refuse early when another node runs on this directory: its stores
	// are locked, and the control socket says so more clearly.
	sock := d.file(control.SocketName)
	ln, err := control.Listen(sock)
	if errors.Is(err, control.ErrAlreadyRunning) {
		return fail("stop it first, or use `dsep status` to talk to it", "a node is already running on %s", d.path)
	}
	if err != nil {
		return fail("check the permissions of the data directory", "control socket: %v", err)
	}
	defer ln.Close()

	k, pass, err := a.unlock(d)
	if err != nil {
		return err
	}
	storeKey, err := d.storageKey(pass)
	if err != nil {
		return err
	}
	// The node owns the address book while it runs; `dsep contacts` goes
	// through the control API meanwhile.
	bk, err := book.Open(d.file(bookDir), book.Options{EncryptionKey: storeKey, Logger: logger.With("part", "book")})
	if err != nil {
		return fail("stop the other dsep process using this data directory, or try again", "opening the address book: %v", err)
	}
	defer bk.Close()
	nodeKey, err := host.LoadOrCreateKey(d.file(nodeKeyFile))
	if err != nil {
		return fail("the node key file must be private to you (mode 0600)", "node key: %v", err)
	}
	var servers []string
	if cfg.DNS != "" {
		servers = []string{cfg.DNS}
	}
	dns, err := dsepdns.New(dsepdns.Config{Servers: servers, TrustAD: cfg.TrustAD})
	if err != nil {
		return fail("set dns = \"HOST:PORT\" in config.toml or pass --dns", "DNS: %v", err)
	}
	ncfg := node.Config{
		Identity:          k,
		NodeKey:           nodeKey,
		Dir:               d.path,
		StoreKey:          storeKey,
		Listen:            cfg.Listen,
		Announce:          cfg.Announce,
		Bootstrap:         boot,
		DNS:               dns,
		StampBits:         cfg.StampBits,
		MaxPayload:        uint64(cfg.MaxMessageSize),
		Lifetime:          cfg.QueueLifetime,
		RetryMin:          cfg.RetryMin,
		RetryMax:          cfg.RetryMax,
		PeerRate:          cfg.PeerRate,
		PeerBurst:         cfg.PeerBurst,
		NoReceipts:        !cfg.Receipts,
		RepublishInterval: cfg.RepublishInterval,
		MonitorInterval:   cfg.MonitorInterval,
		Logger:            logger,
		Version:           version,
		SMTPListen:        cfg.SMTPListen,
		IMAPListen:        cfg.IMAPListen,
		Book:              bk,
	}
	if d.meta.Kind == kindUser {
		checker := &account.Checker{Usernames: []string{d.meta.Email, k.KeyAddress().String()}}
		ncfg.Authenticate = func(ctx context.Context, user, pass string) error {
			// Read each time: dsep client password takes effect at once.
			h, err := d.clientPasswordHash()
			if err != nil || h == "" {
				logger.Warn("a mail client tried to log in, but there is no client password; make one with `dsep client password`")
				return account.ErrBadPassword
			}
			return checker.Check(h, user, pass)
		}
	} else {
		ncfg.SMTPListen, ncfg.IMAPListen = "", ""
	}
	if d.meta.Kind == kindDomain {
		// A domain's node keeps the domain key and its users' email
		// records published; it has no mailbox role.
		now := time.Now()
		recs, err := d.buildRecords(k, "", nil, uint64(now.Unix()), now, node.DefaultReachTTL)
		if err != nil {
			return err
		}
		for _, r := range recs {
			ncfg.Records = append(ncfg.Records, node.Record{Key: r.Key, Value: r.value})
		}
		ncfg.NoPublish = true
	}
	n, err := node.New(ctx, ncfg)
	if err != nil {
		return fail("check the listen addresses (is the port in use?) and the data directory", "starting the node: %v", err)
	}
	srv := control.NewServer(n.Backend(), logger.With("part", "control"))
	if lim := int64(cfg.MaxMessageSize) + 1<<20; lim > srv.MaxMailBytes {
		srv.MaxMailBytes = lim
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	st := runStatus{Fingerprint: n.Fingerprint().String(), PeerID: n.Host().ID().String(), Control: sock}
	if ad := n.SMTPAddr(); ad != nil {
		st.SMTP = ad.String()
	}
	if ad := n.IMAPAddr(); ad != nil {
		st.IMAP = ad.String()
	}
	for _, m := range n.Host().Addrs() {
		st.Addrs = append(st.Addrs, m.String()+"/p2p/"+st.PeerID)
	}
	if a.jsonOut {
		if err := a.printJSON(st); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(a.stdout, "dsep: node %s running for %s\n", shortPeer(n.Host().ID()), d.meta.label())
		for _, s := range st.Addrs {
			fmt.Fprintf(a.stdout, "  listening  %s\n", s)
		}
		if ad := n.SMTPAddr(); ad != nil {
			fmt.Fprintf(a.stdout, "  smtp       %s (mail clients: dsep client config)\n", ad)
		}
		if ad := n.IMAPAddr(); ad != nil {
			fmt.Fprintf(a.stdout, "  imap       %s\n", ad)
		}
		fmt.Fprintf(a.stdout, "  control    %s\n  stop with Ctrl-C\n", sock)
	}

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-served:
		if err != nil && !errors.Is(err, control.ErrServerClosed) {
			runErr = fail("restart the node", "control API stopped: %v", err)
		}
	}
	logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	if err := n.Close(); err != nil && runErr == nil {
		runErr = fail("the store may need a restart to recover; nothing acknowledged is lost", "closing the node: %v", err)
	}
	if err := bk.Close(); err != nil && runErr == nil {
		runErr = fail("restart the node to recover it", "closing the address book: %v", err)
	}
	if runErr == nil && !a.jsonOut {
		fmt.Fprintln(a.stdout, "dsep: node stopped")
	}
	return runErr
}

// newLogger makes the daemon's structured logger on w.
func newLogger(w interface{ Write([]byte) (int, error) }, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	switch strings.ToLower(level) {
	case "", "info":
		lv = slog.LevelInfo
	case "debug":
		lv = slog.LevelDebug
	case "warn", "warning":
		lv = slog.LevelWarn
	case "error":
		lv = slog.LevelError
	default:
		return nil, fail("use debug, info, warn or error", "bad log level %q", level)
	}
	opt := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "", "text":
		return slog.New(slog.NewTextHandler(w, opt)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opt)), nil
	}
	return nil, fail("use text or json", "bad log format %q", format)
}
