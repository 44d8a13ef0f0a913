package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net"
	"net/netip"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/dsep-project/dsep/dht/host"
	"github.com/dsep-project/dsep/dht/record"
	"github.com/dsep-project/dsep/node/envelope"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/spf13/cobra"
)

// configFile is the optional configuration of `dsep run` in the data
// directory (docs/operator.md, "Configuration").
const configFile = "config.toml"

// maxConfigBytes bounds config.toml.
const maxConfigBytes = 1 << 20

// fileConfig is config.toml. Every key is optional; a missing file means
// every default. Keys are the TOML names; unknown keys are an error.
type fileConfig struct {
	// Listen are the libp2p multiaddrs to listen on.
	// Default: host.DefaultListen (TCP and QUIC on port 4101, every IPv4
	// interface). Empty means the default.
	Listen []string `toml:"listen" json:"listen"`
	// Announce are the multiaddrs to tell peers (in the reach record and
	// identify) instead of the listen addresses: behind a port forward or
	// with a public name. Default: none (the listen addresses).
	Announce []string `toml:"announce" json:"announce"`
	// Bootstrap are multiaddrs with /p2p/<peer ID> of DSEP nodes to join
	// the network through. Default: none ($DSEP_BOOTSTRAP still applies).
	Bootstrap []string `toml:"bootstrap" json:"bootstrap"`
	// DNS is the resolver to ask, "IP:port" (or "IP", port 53). Default
	// "": the nameservers of /etc/resolv.conf.
	DNS string `toml:"dns" json:"dns"`
	// TrustAD believes the resolver's DNSSEC validation (the AD bit), and
	// only from a resolver on loopback. Default false.
	TrustAD bool `toml:"trust_ad" json:"trust_ad"`
	// MaxMessageSize is the largest message the node sends or accepts, in
	// bytes or with a unit ("25MiB"). Default 25MiB.
	MaxMessageSize byteSize `toml:"max_message_size" json:"max_message_size"`
	// StampBits is the base stamp price published in the reach record:
	// senders mint hashcash stamps of this many bits (more for large
	// messages). 1 to 40; default 20.
	StampBits int `toml:"stamp_bits" json:"stamp_bits"`
	// QueueLifetime is how long an outbound message is retried before it
	// bounces. Default "120h" (5 days).
	QueueLifetime time.Duration `toml:"queue_lifetime" json:"queue_lifetime"`
	// RetryMin and RetryMax bound the backoff between delivery attempts.
	// Defaults "30s" and "1h".
	RetryMin time.Duration `toml:"retry_min" json:"retry_min"`
	RetryMax time.Duration `toml:"retry_max" json:"retry_max"`
	// PeerRate is the deliveries per second accepted from one peer, and
	// PeerBurst how many may come at once. Defaults 50 and 200.
	PeerRate  float64 `toml:"peer_rate" json:"peer_rate"`
	PeerBurst int     `toml:"peer_burst" json:"peer_burst"`
	// Receipts sends signed delivery receipts to senders. Default true.
	Receipts bool `toml:"receipts" json:"receipts"`
	// RepublishInterval is how often the node republishes its DHT records
	// (they expire after 48 hours). Default "12h".
	RepublishInterval time.Duration `toml:"republish_interval" json:"republish_interval"`
	// MonitorInterval is how often the node checks DNS and the DHT for
	// other keys certified for its addresses. Default "1h".
	MonitorInterval time.Duration `toml:"monitor_interval" json:"monitor_interval"`
	// IMAPListen and SMTPListen are where mail clients reach the node's
	// IMAP and SMTP submission servers, "IP:port" on loopback; "" turns
	// the server off. Defaults "127.0.0.1:1143" and "127.0.0.1:1587".
	IMAPListen string `toml:"imap_listen" json:"imap_listen"`
	SMTPListen string `toml:"smtp_listen" json:"smtp_listen"`
	// LogLevel is debug, info, warn or error. Default "info".
	LogLevel string `toml:"log_level" json:"log_level"`
	// LogFormat is "text" or "json". Default "text".
	LogFormat string `toml:"log_format" json:"log_format"`
}

// defaultConfig returns the configuration of a node without config.toml.
func defaultConfig() fileConfig {
	return fileConfig{
		Listen:            append([]string(nil), host.DefaultListen...),
		Announce:          []string{},
		Bootstrap:         []string{},
		MaxMessageSize:    envelope.DefaultMaxPayload,
		StampBits:         record.DefaultStampBits,
		QueueLifetime:     120 * time.Hour,
		RetryMin:          30 * time.Second,
		RetryMax:          time.Hour,
		PeerRate:          50,
		PeerBurst:         200,
		Receipts:          true,
		RepublishInterval: 12 * time.Hour,
		MonitorInterval:   time.Hour,
		IMAPListen:        defaultIMAPListen,
		SMTPListen:        defaultSMTPListen,
		LogLevel:          "info",
		LogFormat:         "text",
	}
}

// configKeys are the keys config.toml may hold.
var configKeys = map[string]bool{
	"listen": true, "announce": true, "bootstrap": true, "dns": true, "trust_ad": true,
	"max_message_size": true, "stamp_bits": true, "queue_lifetime": true, "retry_min": true,
	"retry_max": true, "peer_rate": true, "peer_burst": true, "receipts": true,
	"republish_interval": true, "monitor_interval": true, "log_level": true, "log_format": true,
	"imap_listen": true, "smtp_listen": true,
}

// Default addresses of the mail-client servers.
const (
	defaultIMAPListen = "127.0.0.1:1143"
	defaultSMTPListen = "127.0.0.1:1587"
)

// checkLoopbackListen checks a mail-client listen address: "" (off) or a
// loopback IP with a port. The servers speak plain text with a local
// password, so they must not face a network.
func checkLoopbackListen(s string) error {
	if s == "" {
		return nil
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return fmt.Errorf("%q is not IP:port (e.g. 127.0.0.1:1143): %v", s, err)
	}
	if !ap.Addr().IsLoopback() {
		return fmt.Errorf("%s is not a loopback address: mail clients connect without TLS, so the node serves them on 127.0.0.1 or ::1 only", s)
	}
	return nil
}

// configError is a mistake in config.toml, at a line when known.
type configError struct {
	path string
	line int
	msg  string
}

func (e *configError) cli() error {
	where := configFile
	if e.line > 0 {
		where = fmt.Sprintf("%s line %d", configFile, e.line)
	}
	return &cliError{msg: where + ": " + e.msg,
		hint: fmt.Sprintf("fix %s; docs/operator.md, \"Configuration\", lists every key and its default", e.path)}
}

// loadConfig reads DATA/config.toml: defaults for what it does not set,
// every default when it does not exist.
func loadConfig(dataDir string) (fileConfig, error) {
	path := filepath.Join(dataDir, configFile)
	b, err := readSmallFile(path, maxConfigBytes)
	if errors.Is(err, fs.ErrNotExist) {
		return defaultConfig(), nil
	}
	if err != nil {
		return fileConfig{}, fail("check the file's permissions", "reading %s: %v", path, err)
	}
	c, cerr := parseConfig(b)
	if cerr != nil {
		cerr.path = path
		return fileConfig{}, cerr.cli()
	}
	return c, nil
}

// parseConfig decodes and checks a config file's content.
func parseConfig(b []byte) (fileConfig, *configError) {
	c := defaultConfig()
	md, err := toml.NewDecoder(bytes.NewReader(b)).Decode(&c)
	if err != nil {
		return fileConfig{}, tomlError(err)
	}
	// Keys must match exactly (the decoder also takes other spellings).
	for _, k := range md.Keys() {
		if len(k) != 1 || !configKeys[k[0]] {
			msg := fmt.Sprintf("unknown key %q", k.String())
			switch {
			case len(k) > 1 || md.Type(k...) == "Hash" || md.Type(k...) == "ArrayHash":
				msg += ": config.toml has no tables"
			case nearestKey(k[0]) != "":
				msg += fmt.Sprintf(" (did you mean %q?)", nearestKey(k[0]))
			}
			return fileConfig{}, &configError{line: keyLine(b, k), msg: msg}
		}
	}
	// A bare integer would be nanoseconds: certainly a mistake.
	for _, k := range durationKeys {
		if md.Type(k) == "Integer" {
			return fileConfig{}, &configError{line: keyLine(b, toml.Key{k}), msg: k + `: give a duration with its unit, as a string: "30s", "1h", "120h"`}
		}
	}
	if len(c.Listen) == 0 {
		c.Listen = append([]string(nil), host.DefaultListen...)
	}
	if k, msg := c.check(); msg != "" {
		return fileConfig{}, &configError{line: keyLine(b, toml.Key{k}), msg: k + ": " + msg}
	}
	return c, nil
}

var tomlLineRE = regexp.MustCompile(`^toml: line (\d+)(?: \(last key "([^"]*)"\))?: (.*)$`)

// tomlError turns a decoding error into a configError with a line.
func tomlError(err error) *configError {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		msg := pe.Message
		if pe.LastKey != "" && configKeys[pe.LastKey] {
			msg = pe.LastKey + ": " + msg
		}
		return &configError{line: pe.Position.Line, msg: msg}
	}
	if m := tomlLineRE.FindStringSubmatch(err.Error()); m != nil {
		line, _ := strconv.Atoi(m[1])
		msg := m[3]
		if m[2] != "" {
			msg = m[2] + ": " + msg
		}
		return &configError{line: line, msg: msg}
	}
	return &configError{msg: strings.TrimPrefix(err.Error(), "toml: ")}
}

// keyLine finds the line where key is set, or 0.
func keyLine(b []byte, key toml.Key) int {
	if len(key) == 0 {
		return 0
	}
	first := regexp.QuoteMeta(key[0])
	set := regexp.MustCompile(`^\s*(?:` + first + `|"` + first + `"|'` + first + `')\s*[=.]`)
	table := regexp.MustCompile(`^\s*\[\[?\s*(?:` + first + `|"` + first + `"|'` + first + `')\s*[\].]`)
	for i, line := range strings.Split(string(b), "\n") {
		if set.MatchString(line) || table.MatchString(line) {
			return i + 1
		}
	}
	return 0
}

// nearestKey suggests a known key for a misspelt one.
func nearestKey(k string) string {
	norm := func(s string) string { return strings.ReplaceAll(strings.ToLower(s), "-", "_") }
	for known := range configKeys {
		if norm(k) == known {
			return known
		}
	}
	return ""
}

// durationKeys are the keys that hold a duration.
var durationKeys = []string{"queue_lifetime", "retry_min", "retry_max", "republish_interval", "monitor_interval"}

// check validates c and returns the offending key and what is wrong.
func (c *fileConfig) check() (key, msg string) {
	if err := checkLoopbackListen(c.IMAPListen); err != nil {
		return "imap_listen", err.Error()
	}
	if err := checkLoopbackListen(c.SMTPListen); err != nil {
		return "smtp_listen", err.Error()
	}
	for _, a := range c.Listen {
		if _, err := ma.NewMultiaddr(a); err != nil {
			return "listen", fmt.Sprintf("%q is not a multiaddr (e.g. /ip4/0.0.0.0/tcp/4101): %v", a, err)
		}
	}
	for _, a := range c.Announce {
		if _, err := ma.NewMultiaddr(a); err != nil {
			return "announce", fmt.Sprintf("%q is not a multiaddr (e.g. /dns4/node.example.org/tcp/4101): %v", a, err)
		}
	}
	for _, a := range c.Bootstrap {
		if _, err := peer.AddrInfoFromString(a); err != nil {
			return "bootstrap", fmt.Sprintf("%q is not a multiaddr ending in /p2p/<peer ID>: %v", a, err)
		}
	}
	if c.DNS != "" {
		if err := checkResolver(c.DNS); err != nil {
			return "dns", err.Error()
		}
	}
	if n := int64(c.MaxMessageSize); n < 1<<10 || n > 64<<20 {
		return "max_message_size", fmt.Sprintf("%s is not between 1KiB and 64MiB", c.MaxMessageSize)
	}
	if c.StampBits < 1 || c.StampBits > record.MaxStampBits {
		return "stamp_bits", fmt.Sprintf("%d is not between 1 and %d (each bit doubles the senders' work; 20 takes a fraction of a second)", c.StampBits, record.MaxStampBits)
	}
	if d := c.QueueLifetime; d < time.Minute || d > 90*24*time.Hour {
		return "queue_lifetime", fmt.Sprintf("%s is not between 1m and 2160h (90 days)", fmtDuration(d))
	}
	if d := c.RetryMin; d < time.Second || d > 24*time.Hour {
		return "retry_min", fmt.Sprintf("%s is not between 1s and 24h", fmtDuration(d))
	}
	if c.RetryMax < c.RetryMin || c.RetryMax > c.QueueLifetime {
		return "retry_max", fmt.Sprintf("%s is not between retry_min (%s) and queue_lifetime (%s)", fmtDuration(c.RetryMax), fmtDuration(c.RetryMin), fmtDuration(c.QueueLifetime))
	}
	if c.PeerRate <= 0 || c.PeerRate > 1e6 || math.IsNaN(c.PeerRate) {
		return "peer_rate", fmt.Sprintf("%v is not a rate above 0 and at most 1000000 per second", c.PeerRate)
	}
	if c.PeerBurst < 1 || c.PeerBurst > 1e6 {
		return "peer_burst", fmt.Sprintf("%d is not between 1 and 1000000", c.PeerBurst)
	}
	if d := c.RepublishInterval; d < time.Minute || d >= 48*time.Hour {
		return "republish_interval", fmt.Sprintf("%s is not between 1m and 48h (DHT records expire after 48 hours)", fmtDuration(d))
	}
	if d := c.MonitorInterval; d < time.Minute || d > 7*24*time.Hour {
		return "monitor_interval", fmt.Sprintf("%s is not between 1m and 168h (a week)", fmtDuration(d))
	}
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "warning", "error":
	default:
		return "log_level", fmt.Sprintf("%q is not debug, info, warn or error", c.LogLevel)
	}
	switch strings.ToLower(c.LogFormat) {
	case "text", "json":
	default:
		return "log_format", fmt.Sprintf("%q is not text or json", c.LogFormat)
	}
	return "", ""
}

// validate checks c (after flags have changed it) and explains a mistake.
func (c *fileConfig) validate() error {
	if k, msg := c.check(); msg != "" {
		return fail("fix the flag or config.toml; docs/operator.md, \"Configuration\", lists every key and its default", "%s: %s", k, msg)
	}
	return nil
}

// checkResolver checks a resolver address: an IP, with or without a port.
func checkResolver(s string) error {
	if _, err := netip.ParseAddr(s); err == nil {
		return nil
	}
	h, p, err := net.SplitHostPort(s)
	if err == nil {
		if _, err = netip.ParseAddr(h); err == nil {
			if n, perr := strconv.Atoi(p); perr != nil || n < 1 || n > 65535 {
				err = fmt.Errorf("bad port %q", p)
			}
		}
	}
	if err != nil {
		return fmt.Errorf("%q is not a resolver address IP:port (e.g. 127.0.0.1:53): %v", s, err)
	}
	return nil
}

// warnings are settings that are valid but probably not what was meant.
func (c *fileConfig) warnings() []string {
	var w []string
	if c.TrustAD && c.DNS != "" {
		h := c.DNS
		if hh, _, err := net.SplitHostPort(h); err == nil {
			h = hh
		}
		if a, err := netip.ParseAddr(h); err == nil && !a.IsLoopback() {
			w = append(w, fmt.Sprintf("trust_ad: resolver %s is not on loopback, so its AD bit is ignored (run a validating resolver on this host)", c.DNS))
		}
	}
	if c.StampBits > 28 {
		w = append(w, fmt.Sprintf("stamp_bits: %d bits cost senders minutes of work per message; most will not send", c.StampBits))
	}
	return w
}

// fmtDuration writes d without zero minutes or seconds: "120h", "1h30m".
func fmtDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

var durationLineRE = regexp.MustCompile(`(?m)^([a-z_]+) = "([0-9hms.]+)"$`)

// tidyDurations rewrites the encoder's "120h0m0s" as "120h".
func tidyDurations(b []byte) []byte {
	return durationLineRE.ReplaceAllFunc(b, func(line []byte) []byte {
		m := durationLineRE.FindSubmatch(line)
		d, err := time.ParseDuration(string(m[2]))
		if err != nil {
			return line
		}
		return []byte(fmt.Sprintf("%s = %q", m[1], fmtDuration(d)))
	})
}

// MarshalJSON writes durations as strings ("120h"), as config.toml has them.
func (c fileConfig) MarshalJSON() ([]byte, error) {
	type plain fileConfig
	return json.Marshal(struct {
		plain
		QueueLifetime     string `json:"queue_lifetime"`
		RetryMin          string `json:"retry_min"`
		RetryMax          string `json:"retry_max"`
		RepublishInterval string `json:"republish_interval"`
		MonitorInterval   string `json:"monitor_interval"`
	}{plain(c), fmtDuration(c.QueueLifetime), fmtDuration(c.RetryMin), fmtDuration(c.RetryMax),
		fmtDuration(c.RepublishInterval), fmtDuration(c.MonitorInterval)})
}

// byteSize is a size in bytes: a TOML integer, or a string with a unit
// ("25MiB", "512 KiB", "1MB").
type byteSize int64

var sizeUnits = []struct {
	suffix string
	mult   float64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"b", 1}, {"", 1},
}

func (b *byteSize) UnmarshalText(t []byte) error {
	s := strings.ToLower(strings.TrimSpace(string(t)))
	for _, u := range sizeUnits {
		n, ok := strings.CutSuffix(s, u.suffix)
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(n), 64)
		if err != nil || v < 0 || v*u.mult > 1<<50 || v*u.mult != math.Trunc(v*u.mult) {
			break
		}
		*b = byteSize(v * u.mult)
		return nil
	}
	return fmt.Errorf("bad size %q: use bytes or a unit, e.g. 26214400 or \"25MiB\"", string(t))
}

func (b byteSize) MarshalText() ([]byte, error) { return []byte(b.String()), nil }

func (b byteSize) String() string {
	switch n := int64(b); {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	default:
		return strconv.FormatInt(n, 10)
	}
}

func (a *app) configCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "config",
		Short: "Show the configuration `dsep run` uses",
		Long: `dsep run reads DATA/config.toml, if present: listen addresses,
bootstrap peers, DNS resolver, limits, intervals and logging. Every key
is optional; an unknown key or a bad value is an error naming its line.
docs/operator.md, "Configuration", lists every key and its default.`,
		Example: `  dsep config show
  dsep --data ./alice config show --json`,
	}
	c.AddCommand(a.configShowCommand())
	return c
}

func (a *app) configShowCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "show",
		Short: "Check config.toml and print the effective configuration (defaults filled in)",
		Long: `Read DATA/config.toml, check it as dsep run does, and print every
setting with the defaults filled in, as TOML (a valid config.toml) or,
with --json, as JSON. Exit status 1 when the file has a mistake.`,
		Example: `  dsep config show
  dsep config show > config.toml.example
  dsep config show --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir := a.dataDir()
			c, err := loadConfig(dir)
			if err != nil {
				return err
			}
			for _, w := range c.warnings() {
				fmt.Fprintf(a.stderr, "dsep: warning: %s\n", w)
			}
			if a.jsonOut {
				return a.printJSON(c)
			}
			var buf bytes.Buffer
			if err := toml.NewEncoder(&buf).Encode(c); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "# The configuration dsep run uses for %s\n# (%s with the defaults filled in).\n", dir, configFile)
			_, err = a.stdout.Write(tidyDurations(buf.Bytes()))
			return err
		},
	}
}
