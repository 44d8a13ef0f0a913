package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dsep-project/dsep/dht/host"
)

func TestConfigDefaults(t *testing.T) {
	c, err := loadConfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	want := fileConfig{
		Listen: host.DefaultListen, Announce: []string{}, Bootstrap: []string{},
		MaxMessageSize: 25 << 20, StampBits: 20, QueueLifetime: 120 * time.Hour, RetryMin: 30 * time.Second,
		RetryMax: time.Hour, PeerRate: 50, PeerBurst: 200, Receipts: true, RepublishInterval: 12 * time.Hour,
		MonitorInterval: time.Hour, LogLevel: "info", LogFormat: "text",
		IMAPListen: "127.0.0.1:1143", SMTPListen: "127.0.0.1:1587",
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", c, want)
	}
	if k, msg := c.check(); msg != "" {
		t.Errorf("the defaults do not pass their own check: %s: %s", k, msg)
	}
	// The defaults are a copy: changing them changes nothing shared.
	c.Listen[0] = "changed"
	if host.DefaultListen[0] == "changed" {
		t.Error("defaultConfig shares host.DefaultListen")
	}
}

func TestConfigParse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		check   func(c fileConfig) bool
		wantErr string // regexp of the error, with its line
	}{
		{
			name: "every key",
			in: `# a comment
listen = ["/ip4/0.0.0.0/tcp/4102", "/ip6/::/tcp/4102"]
announce = ["/dns4/node.example.org/tcp/4102"]
bootstrap = ["/ip4/192.0.2.1/tcp/4101/p2p/12D3KooWRBhwfeP2Y4TCx1SM6s9rUoHhR5STiGwxBhgFRcw3UERE"]
dns = "127.0.0.1:5353"
trust_ad = true
max_message_size = "10MiB"
stamp_bits = 22
queue_lifetime = "72h"
retry_min = "10s"
retry_max = "30m"
peer_rate = 10
peer_burst = 20
receipts = false
republish_interval = "6h"
monitor_interval = "30m"
log_level = "debug"
log_format = "json"
`,
			check: func(c fileConfig) bool {
				return len(c.Listen) == 2 && c.Announce[0] == "/dns4/node.example.org/tcp/4102" && len(c.Bootstrap) == 1 &&
					c.DNS == "127.0.0.1:5353" && c.TrustAD && c.MaxMessageSize == 10<<20 && c.StampBits == 22 &&
					c.QueueLifetime == 72*time.Hour && c.RetryMin == 10*time.Second && c.RetryMax == 30*time.Minute &&
					c.PeerRate == 10 && c.PeerBurst == 20 && !c.Receipts && c.RepublishInterval == 6*time.Hour &&
					c.MonitorInterval == 30*time.Minute && c.LogLevel == "debug" && c.LogFormat == "json"
			},
		},
		{name: "empty file", in: "", check: func(c fileConfig) bool { return reflect.DeepEqual(c, defaultConfig()) }},
		{name: "empty listen is the default", in: "listen = []\n", check: func(c fileConfig) bool { return reflect.DeepEqual(c.Listen, host.DefaultListen) }},
		{name: "size in bytes", in: "max_message_size = 1048576\n", check: func(c fileConfig) bool { return c.MaxMessageSize == 1<<20 }},
		{name: "size with space and unit", in: `max_message_size = "1.5 MiB"`, check: func(c fileConfig) bool { return c.MaxMessageSize == 3<<19 }},
		{name: "size decimal unit", in: `max_message_size = "2MB"`, check: func(c fileConfig) bool { return c.MaxMessageSize == 2e6 }},
		{name: "dns without port", in: `dns = "::1"`, check: func(c fileConfig) bool { return c.DNS == "::1" }},
		{name: "dns ipv6 with port", in: `dns = "[::1]:53"`, check: func(c fileConfig) bool { return c.DNS == "[::1]:53" }},

		{name: "unknown key", in: "stamp_bits = 20\n\nlisten_on = []\n", wantErr: `^config.toml line 3: unknown key "listen_on"$`},
		{name: "other spelling", in: "Stamp_Bits = 20\n", wantErr: `^config.toml line 1: unknown key "Stamp_Bits" \(did you mean "stamp_bits"\?\)$`},
		{name: "dash spelling", in: "\nstamp-bits = 20\n", wantErr: `^config.toml line 2: unknown key "stamp-bits" \(did you mean "stamp_bits"\?\)$`},
		{name: "table", in: "log_level = \"info\"\n[node]\nlisten = []\n", wantErr: `^config.toml line 2: unknown key "node": config.toml has no tables$`},
		{name: "syntax", in: "stamp_bits = 20\nlisten = [\n", wantErr: `^config.toml line \d+: `},
		{name: "wrong type", in: "\n\nstamp_bits = \"twenty\"\n", wantErr: `^config.toml line 3: stamp_bits: .*string.*integer`},
		{name: "bad duration", in: "retry_min = \"30\"\n", wantErr: `^config.toml line 1: retry_min: .*30`},
		{name: "days are not Go durations", in: "queue_lifetime = \"5d\"\n", wantErr: `^config.toml line 1: queue_lifetime: `},
		{name: "integer duration", in: "\nretry_min = 30\n", wantErr: `^config.toml line 2: retry_min: give a duration with its unit`},
		{name: "bad size", in: "max_message_size = \"lots\"\n", wantErr: `^config.toml line 1: max_message_size: bad size "lots"`},
		{name: "fractional bytes", in: "max_message_size = \"1.5B\"\n", wantErr: `^config.toml line 1: max_message_size: bad size`},
		{name: "size too small", in: "max_message_size = 10\n", wantErr: `^config.toml line 1: max_message_size: 10 is not between 1KiB and 64MiB$`},
		{name: "size too large", in: "max_message_size = \"1GiB\"\n", wantErr: `^config.toml line 1: max_message_size: 1GiB is not between`},
		{name: "stamp bits too many", in: "# c\nstamp_bits = 41\n", wantErr: `^config.toml line 2: stamp_bits: 41 is not between 1 and 40`},
		{name: "stamp bits zero", in: "stamp_bits = 0\n", wantErr: `^config.toml line 1: stamp_bits: 0 is not`},
		{name: "bad listen", in: "listen = [\"0.0.0.0:4101\"]\n", wantErr: `^config.toml line 1: listen: "0.0.0.0:4101" is not a multiaddr`},
		{name: "bad announce", in: "announce = [\"node.example.org\"]\n", wantErr: `^config.toml line 1: announce: `},
		{name: "bootstrap without peer", in: "bootstrap = [\"/ip4/192.0.2.1/tcp/4101\"]\n", wantErr: `^config.toml line 1: bootstrap: .*/p2p/`},
		{name: "dns name", in: "dns = \"dns.example.org:53\"\n", wantErr: `^config.toml line 1: dns: "dns.example.org:53" is not a resolver address`},
		{name: "dns bad port", in: "dns = \"127.0.0.1:99999\"\n", wantErr: `^config.toml line 1: dns: .*bad port`},
		{name: "dns list", in: "dns = [\"127.0.0.1\"]\n", wantErr: `^config.toml line 1: dns: `},
		{name: "retry max below min", in: "retry_min = \"1m\"\nretry_max = \"30s\"\n", wantErr: `^config.toml line 2: retry_max: 30s is not between retry_min \(1m\) and queue_lifetime \(120h\)$`},
		{name: "retry max beyond lifetime", in: "queue_lifetime = \"1h\"\nretry_max = \"2h\"\n", wantErr: `^config.toml line 2: retry_max: `},
		{name: "lifetime too long", in: "queue_lifetime = \"10000h\"\n", wantErr: `^config.toml line 1: queue_lifetime: 10000h is not between`},
		{name: "republish too rare", in: "republish_interval = \"48h\"\n", wantErr: `^config.toml line 1: republish_interval: .*expire after 48 hours`},
		{name: "monitor too often", in: "monitor_interval = \"1s\"\n", wantErr: `^config.toml line 1: monitor_interval: `},
		{name: "peer rate zero", in: "peer_rate = 0\n", wantErr: `^config.toml line 1: peer_rate: `},
		{name: "peer rate nan", in: "peer_rate = nan\n", wantErr: `^config.toml line 1: peer_rate: `},
		{name: "peer burst negative", in: "peer_burst = -1\n", wantErr: `^config.toml line 1: peer_burst: `},
		{name: "log level", in: "log_level = \"verbose\"\n", wantErr: `^config.toml line 1: log_level: "verbose" is not debug, info, warn or error$`},
		{name: "log format", in: "log_format = \"xml\"\n", wantErr: `^config.toml line 1: log_format: "xml" is not text or json$`},
		{name: "receipts not bool", in: "receipts = \"no\"\n", wantErr: `^config.toml line 1: receipts: `},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, configFile), []byte(tt.in), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := loadConfig(dir)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("loadConfig: %v", err)
				}
				if !tt.check(c) {
					t.Errorf("parsed %+v", c)
				}
				return
			}
			var ce *cliError
			if !errors.As(err, &ce) {
				t.Fatalf("loadConfig = %+v, %v; want an error matching %s", c, err, tt.wantErr)
			}
			if !regexp.MustCompile(tt.wantErr).MatchString(ce.msg) {
				t.Errorf("error %q does not match %s", ce.msg, tt.wantErr)
			}
			if !strings.Contains(ce.hint, filepath.Join(dir, configFile)) || !strings.Contains(ce.hint, "Configuration") {
				t.Errorf("hint %q does not name the file and the docs", ce.hint)
			}
		})
	}
}

func TestConfigUnreadable(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, configFile), bytes.Repeat([]byte("#"), maxConfigBytes+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadConfig(dir); err == nil {
		t.Error("a config.toml over the size limit was read")
	}
}

func TestConfigWarnings(t *testing.T) {
	c := defaultConfig()
	c.TrustAD, c.DNS = true, "192.0.2.53:53"
	if w := c.warnings(); len(w) != 1 || !strings.Contains(w[0], "not on loopback") {
		t.Errorf("warnings = %q", w)
	}
	c.DNS = "127.0.0.1:53"
	if w := c.warnings(); len(w) != 0 {
		t.Errorf("warnings for a loopback resolver = %q", w)
	}
}

func TestConfigValidate(t *testing.T) {
	c := defaultConfig()
	c.StampBits = 99 // as a flag would set it
	err := c.validate()
	var ce *cliError
	if !errors.As(err, &ce) || !strings.HasPrefix(ce.msg, "stamp_bits: 99") {
		t.Errorf("validate = %v", err)
	}
}

// `dsep config show` prints a config.toml that reads back the same, and
// JSON with the durations as strings.
func TestConfigShow(t *testing.T) {
	dir := t.TempDir()
	in := "stamp_bits = 24\nretry_max = \"90m\"\nbootstrap = [\"/ip4/192.0.2.1/tcp/4101/p2p/12D3KooWRBhwfeP2Y4TCx1SM6s9rUoHhR5STiGwxBhgFRcw3UERE\"]\n"
	if err := os.WriteFile(filepath.Join(dir, configFile), []byte(in), 0o600); err != nil {
		t.Fatal(err)
	}
	want, err := loadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run([]string{"--data", dir, "config", "show"}, strings.NewReader(""), &out, &errb); code != 0 {
		t.Fatalf("config show: exit %d: %s", code, errb.String())
	}
	dir2 := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir2, configFile), out.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := loadConfig(dir2)
	if err != nil {
		t.Fatalf("the output of config show does not load: %v\n%s", err, out.String())
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("config show round trip:\n got %+v\nwant %+v\n%s", got, want, out.String())
	}
	if !strings.Contains(out.String(), "\nretry_max = \"1h30m\"\n") || !strings.Contains(out.String(), "\nqueue_lifetime = \"120h\"\n") {
		t.Errorf("durations not written as strings:\n%s", out.String())
	}

	out.Reset()
	if code := run([]string{"--data", dir, "config", "show", "--json"}, strings.NewReader(""), &out, &errb); code != 0 {
		t.Fatalf("config show --json: exit %d: %s", code, errb.String())
	}
	var j map[string]any
	if err := json.Unmarshal(out.Bytes(), &j); err != nil {
		t.Fatal(err)
	}
	if j["retry_max"] != "1h30m" || j["queue_lifetime"] != "120h" || j["stamp_bits"] != float64(24) || j["max_message_size"] != "25MiB" {
		t.Errorf("config show --json = %s", out.String())
	}

	// A mistake is reported with its line, exit status 1.
	if err := os.WriteFile(filepath.Join(dir, configFile), []byte("\nstamp_bits = 99\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	errb.Reset()
	if code := run([]string{"--data", dir, "config", "show"}, strings.NewReader(""), &out, &errb); code != 1 {
		t.Errorf("config show of a bad file: exit %d", code)
	}
	if !strings.HasPrefix(errb.String(), "dsep: error: config.toml line 2: stamp_bits: 99 is not between 1 and 40") || !strings.Contains(errb.String(), "dsep: hint: fix ") {
		t.Errorf("stderr:\n%s", errb.String())
	}
}

// The example in docs/operator.md is a valid config.toml.
func TestConfigDocExample(t *testing.T) {
	doc, err := os.ReadFile("../../docs/operator.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(doc), "\n## Configuration\n")
	if !ok {
		t.Fatal(`docs/operator.md has no "## Configuration" section`)
	}
	sec, _, _ = strings.Cut(sec, "\n## ")
	m := regexp.MustCompile("(?s)```toml\n(.*?)```").FindStringSubmatch(sec)
	if m == nil {
		t.Fatal("no ```toml example in the Configuration section")
	}
	c, cerr := parseConfig([]byte(m[1]))
	if cerr != nil {
		t.Fatalf("the example does not parse: line %d: %s", cerr.line, cerr.msg)
	}
	// Every key is documented.
	for k := range configKeys {
		if !strings.Contains(sec, "`"+k+"`") {
			t.Errorf("key %s is not documented", k)
		}
	}
	_ = c
}

func TestConfigMailListenLoopbackOnly(t *testing.T) {
	for in, ok := range map[string]bool{
		`imap_listen = "127.0.0.1:2143"`: true, `smtp_listen = "[::1]:2587"`: true, `imap_listen = ""`: true,
		`imap_listen = "0.0.0.0:1143"`: false, `smtp_listen = "192.0.2.1:1587"`: false, `smtp_listen = "localhost"`: false,
	} {
		c, cerr := parseConfig([]byte(in + "\n"))
		if cerr != nil {
			if ok {
				t.Errorf("%s: %s", in, cerr.msg)
			}
			continue
		}
		if _, msg := c.check(); (msg == "") != ok {
			t.Errorf("%s: check says %q", in, msg)
		}
	}
}

// FuzzParseConfig: any config.toml gives a configuration or an error with
// a message, never a panic; a parsed one is checked without panicking.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte("stamp_bits = 22\nqueue_lifetime = \"120h\"\n"))
	f.Add([]byte("listen = [\"/ip4/0.0.0.0/tcp/4101\"]\nmax_message_size = \"25MiB\"\n"))
	f.Add([]byte("imap_listen = \"127.0.0.1:1143\"\n[table]\nx = 1\n"))
	f.Add([]byte("retry_min = 30\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, cerr := parseConfig(b)
		if cerr != nil {
			if cerr.msg == "" {
				t.Fatalf("an error without a message for %q", b)
			}
			return
		}
		_, _ = c.check()
	})
}
