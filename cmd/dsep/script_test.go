package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dsep-project/dsep/dht/record"
	"github.com/dsep-project/dsep/testnet"
	"github.com/dsep-project/dsep/testnet/dnstest"
	"github.com/rogpeppe/go-internal/testscript"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"dsep": func() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) },
	})
}

// TestScripts runs the CLI scripts in testdata/script: each gets its own
// work directory and its own DNS server on loopback ($DNS).
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(env *testscript.Env) error {
			srv, err := dnstest.Start("127.0.0.1:0")
			if err != nil {
				return err
			}
			env.Defer(func() { srv.Close() })
			env.Values["dns"] = srv
			env.Setenv("DNS", srv.Addr())
			env.Setenv("DSEP_DATA", "")
			env.Setenv("DSEP_PASSPHRASE", "")
			env.Setenv("XDG_DATA_HOME", filepath.Join(env.WorkDir, "xdg"))
			env.Setenv("GNUPGHOME", filepath.Join(env.WorkDir, ".gnupg"))
			return nil
		},
		Condition: toolCondition,
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"dns-publish": cmdDNSPublish,
			"dns-txt":     cmdDNSTXT,
			"dns-mode":    cmdDNSMode,
			"dns-ad":      cmdDNSAD,
			"perm":        cmdPerm,
			"jsonfield":   cmdJSONField,
			"jsonenv":     cmdJSONEnv,
			"sleep":       cmdSleep,
			"testnet-up":  cmdTestnetUp,
			"envfrom":     cmdEnvFrom,
			"eventually":  cmdEventually,
		},
	})
}

func dnsOf(ts *testscript.TestScript) *dnstest.Server {
	return ts.Value("dns").(*dnstest.Server)
}

// dns-publish [-add] DATADIR: publish the TXT record of the domain in
// DATADIR (replacing, or with -add beside, what is there).
func cmdDNSPublish(ts *testscript.TestScript, neg bool, args []string) {
	add := len(args) > 0 && args[0] == "-add"
	if add {
		args = args[1:]
	}
	if len(args) != 1 {
		ts.Fatalf("usage: dns-publish [-add] DATADIR")
	}
	var m meta
	ts.Check(json.Unmarshal([]byte(ts.ReadFile(filepath.Join(args[0], metaFile))), &m))
	name := "_dsep." + m.Domain
	rec := "v=DSEP1; fpr=" + m.Fingerprint.String()
	if add {
		dnsOf(ts).AddTXT(name, rec)
	} else {
		dnsOf(ts).SetTXT(name, []string{rec})
	}
}

// dns-txt NAME [VALUE...]: set the TXT records at NAME (none: remove).
func cmdDNSTXT(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 1 {
		ts.Fatalf("usage: dns-txt NAME [VALUE...]")
	}
	if len(args) == 1 {
		dnsOf(ts).RemoveTXT(args[0])
		return
	}
	var recs [][]string
	for _, v := range args[1:] {
		recs = append(recs, []string{v})
	}
	dnsOf(ts).SetTXT(args[0], recs...)
}

// dns-mode NAME normal|truncate|timeout|servfail|refused
func cmdDNSMode(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: dns-mode NAME MODE")
	}
	modes := map[string]dnstest.Mode{"normal": dnstest.Normal, "truncate": dnstest.Truncate,
		"timeout": dnstest.Timeout, "servfail": dnstest.ServFail, "refused": dnstest.Refused}
	m, ok := modes[args[1]]
	if !ok {
		ts.Fatalf("unknown mode %q", args[1])
	}
	dnsOf(ts).SetMode(args[0], m)
}

// dns-ad on|off: make the server set the AD bit (a resolver claiming DNSSEC).
func cmdDNSAD(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: dns-ad on|off")
	}
	dnsOf(ts).SetAD(args[0] == "on")
}

// perm FILE MODE: FILE has exactly this permission (octal).
func cmdPerm(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: perm FILE MODE")
	}
	fi, err := os.Stat(ts.MkAbs(args[0]))
	ts.Check(err)
	want, err := strconv.ParseUint(args[1], 8, 32)
	ts.Check(err)
	if got := uint64(fi.Mode().Perm()); (got == want) == neg {
		ts.Fatalf("%s has mode %o, want %s%o", args[0], got, map[bool]string{true: "not ", false: ""}[neg], want)
	}
}

// toolCondition answers [tool:NAME]: whether an outside program is on
// PATH. Scripts write `[!tool:gpg] skip`. Under CI a missing tool is an
// error instead, so a broken install can never pass as a skip.
func toolCondition(cond string) (bool, error) {
	tool, ok := strings.CutPrefix(cond, "tool:")
	if !ok {
		return false, fmt.Errorf("unknown condition %q", cond)
	}
	if _, err := exec.LookPath(tool); err == nil {
		return true, nil
	}
	msg := fmt.Sprintf("%s not found in PATH (make deps installs it)", tool)
	if os.Getenv("CI") != "" {
		return false, fmt.Errorf("CI is set and %s", msg)
	}
	fmt.Fprintf(os.Stderr, "\n*** SKIPPING scripts that need %s: %s ***\n\n", tool, msg)
	return false, nil
}

// jsonfield FILE PATH WANT: the JSON value at the dotted PATH in FILE (or
// "stdout") prints as WANT; a WANT ending in * matches a prefix.
func cmdJSONField(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 {
		ts.Fatalf("usage: jsonfield FILE PATH WANT")
	}
	got := jsonAt(ts, args[0], args[1])
	ok := got == args[2] || (strings.HasSuffix(args[2], "*") && strings.HasPrefix(got, strings.TrimSuffix(args[2], "*")))
	if ok == neg {
		ts.Fatalf("%s: %s = %q, want %s%q", args[0], args[1], got, map[bool]string{true: "not ", false: ""}[neg], args[2])
	}
}

// jsonenv FILE PATH VAR: set $VAR to the JSON value at PATH in FILE.
func cmdJSONEnv(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 {
		ts.Fatalf("usage: jsonenv FILE PATH VAR")
	}
	ts.Setenv(args[2], jsonAt(ts, args[0], args[1]))
}

func jsonAt(ts *testscript.TestScript, file, path string) string {
	var data string
	data = ts.ReadFile(file)
	var v any
	ts.Check(json.Unmarshal([]byte(data), &v))
	for _, p := range strings.Split(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			v = x[p]
		case []any:
			i, err := strconv.Atoi(p)
			if err != nil || i >= len(x) {
				ts.Fatalf("bad index %q", p)
			}
			v = x[i]
		default:
			ts.Fatalf("cannot index %T with %q", v, p)
		}
	}
	return fmt.Sprint(v)
}

// sleep DURATION: wait (for certifications that must expire).
func cmdSleep(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: sleep DURATION")
	}
	d, err := time.ParseDuration(args[0])
	ts.Check(err)
	time.Sleep(d)
}

// testnet-up N: start an in-process DSEP network of N nodes on loopback
// for this script and set $BOOTSTRAP to node 0's address.
func cmdTestnetUp(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: testnet-up N")
	}
	n, err := strconv.Atoi(args[0])
	ts.Check(err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	net, err := testnet.New(ctx, testnet.Config{Nodes: n, Validator: record.NamespacedValidator(record.Validator{})})
	ts.Check(err)
	ts.Defer(func() { net.Close() })
	h := net.Node(0).Host()
	var boot string
	for _, a := range h.Addrs() {
		if strings.HasPrefix(a.String(), "/ip4/127.0.0.1/tcp/") {
			boot = a.String() + "/p2p/" + h.ID().String()
		}
	}
	if boot == "" {
		ts.Fatalf("node 0 has no loopback TCP address: %v", h.Addrs())
	}
	ts.Setenv("BOOTSTRAP", boot)
}

// envfrom FILE VAR: set $VAR to FILE's content (or stdout's), trimmed.
func cmdEnvFrom(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: envfrom FILE VAR")
	}
	ts.Setenv(args[1], strings.TrimSpace(ts.ReadFile(args[0])))
}

// eventually SECONDS PROGRAM ARGS... -- REGEXP: run the program (with
// exec's rules) until its stdout matches REGEXP, for at most SECONDS; its
// last output stays in stdout and stderr.
func cmdEventually(ts *testscript.TestScript, neg bool, args []string) {
	sep := slices.Index(args, "--")
	if len(args) < 4 || sep < 2 || sep != len(args)-2 {
		ts.Fatalf("usage: eventually SECONDS PROGRAM ARGS... -- REGEXP")
	}
	secs, err := strconv.Atoi(args[0])
	ts.Check(err)
	re, err := regexp.Compile(args[len(args)-1])
	ts.Check(err)
	deadline := time.Now().Add(time.Duration(secs) * time.Second)
	for {
		err := ts.Exec(args[1], args[2:sep]...)
		if err == nil && re.MatchString(ts.ReadFile("stdout")) {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("after %ds, %s %v: err %v, stdout %q, stderr %q", secs, args[1], args[2:sep], err, ts.ReadFile("stdout"), ts.ReadFile("stderr"))
		}
		time.Sleep(200 * time.Millisecond)
	}
}
