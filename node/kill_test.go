package node_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dsep-project/dsep/address"
	dsepdns "github.com/dsep-project/dsep/address/dns"
	"github.com/dsep-project/dsep/dht/host"
	"github.com/dsep-project/dsep/node"
	"github.com/dsep-project/dsep/node/compose"
	"github.com/dsep-project/dsep/testnet"
	"github.com/dsep-project/dsep/testnet/testtool"
	"github.com/libp2p/go-libp2p/core/peer"
)

func TestMain(m *testing.M) {
	if spec := os.Getenv("DSEP_NODE_CHILD"); spec != "" {
		os.Exit(runChild(spec))
	}
	testtool.Main(m, 10, 20*time.Second)
}

// childSpec is what a child process runs: a sender node from Dir, which
// first queues Send messages to To (unless zero) and prints "queued".
type childSpec struct {
	Dir       string   `json:"dir"`
	Public    []byte   `json:"public"`
	Secret    []byte   `json:"secret"` // sealed without a passphrase
	DNS       string   `json:"dns"`
	Bootstrap []string `json:"bootstrap"`
	Listen    []string `json:"listen"`
	Send      int      `json:"send"`
	From      string   `json:"from"`
	To        string   `json:"to"`
}

func runChild(path string) int {
	fail := func(err error) int { fmt.Fprintln(os.Stderr, "child:", err); return 2 }
	b, err := os.ReadFile(path)
	if err != nil {
		return fail(err)
	}
	var s childSpec
	if err := json.Unmarshal(b, &s); err != nil {
		return fail(err)
	}
	pub, err := address.ReadKey(bytes.NewReader(s.Public))
	if err != nil {
		return fail(err)
	}
	k, err := address.OpenSecret(s.Secret, nil, pub)
	if err != nil {
		return fail(err)
	}
	nk, err := host.LoadOrCreateKey(filepath.Join(s.Dir, "node.key"))
	if err != nil {
		return fail(err)
	}
	dns, err := dsepdns.New(dsepdns.Config{Servers: []string{s.DNS}})
	if err != nil {
		return fail(err)
	}
	var boot []peer.AddrInfo
	for _, a := range s.Bootstrap {
		ai, err := peer.AddrInfoFromString(a)
		if err != nil {
			return fail(err)
		}
		boot = append(boot, *ai)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	n, err := node.New(ctx, node.Config{
		Identity: k, NodeKey: nk, Dir: s.Dir, InsecurePlaintextStore: true,
		Listen: s.Listen, Limits: host.Testnet, Bootstrap: boot, DNS: dns, NoPublish: true,
		RetryMin: 100 * time.Millisecond, RetryMax: time.Second, StampBits: testBits,
	})
	if err != nil {
		return fail(err)
	}
	defer n.Close()
	for i := 0; i < s.Send; i++ {
		m, err := compose.Build(compose.Draft{From: s.From, To: []string{s.To}, Subject: fmt.Sprintf("msg %03d", i), Body: []byte("numbered\r\n")})
		if err != nil {
			return fail(err)
		}
		res, err := n.Send(ctx, m, []string{s.To})
		if err != nil || res[0].Err != nil {
			return fail(fmt.Errorf("send %d: %v %+v", i, err, res))
		}
	}
	fmt.Println("queued")
	<-ctx.Done()
	return 0
}

// The sender is SIGKILLed with a full queue, then restarted: every
// message arrives, exactly once.
func TestSenderKilledDeliversExactlyOnce(t *testing.T) {
	const total = 60
	m := newNet(t, nil)
	alice := addUser(t, m, "alice", testnet.UserOptions{})
	bob := addUser(t, m, "bob", testnet.UserOptions{})
	listen := []string{}
	for _, a := range alice.Node().Host().Addrs() {
		listen = append(listen, a.String())
	}
	if err := alice.Stop(); err != nil {
		t.Fatal(err)
	}
	secret, err := alice.Key.SealSecret(nil)
	if err != nil {
		t.Fatal(err)
	}
	spec := childSpec{
		Dir: alice.Dir(0), Public: alice.Key.Bytes(), Secret: secret, DNS: m.DNS.Addr(),
		Listen: listen, From: alice.Email.String(), To: bob.Email.String(), Send: total,
	}
	for _, ai := range m.Bootstrap() {
		spec.Bootstrap = append(spec.Bootstrap, ai.Addrs[0].String()+"/p2p/"+ai.ID.String())
	}
	start := func(send int) (*exec.Cmd, *bufio.Reader) {
		spec.Send = send
		b, _ := json.Marshal(spec)
		path := filepath.Join(t.TempDir(), "spec.json")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "DSEP_NODE_CHILD="+path)
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd, bufio.NewReader(out)
	}
	cmd, out := start(total)
	line, err := out.ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "queued" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child: %q %v", line, err)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	got := len(inbox(t, bob.Node()))
	t.Logf("%d of %d delivered before the kill", got, total)

	cmd, _ = start(0)
	defer func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	}()
	eventually(t, 2*time.Minute, "every message", func() bool { return len(inbox(t, bob.Node())) >= total })
	time.Sleep(time.Second) // late duplicates would show now
	seen := map[string]int{}
	for _, s := range inbox(t, bob.Node()) {
		seen[s.Subject]++
	}
	for i := 0; i < total; i++ {
		if c := seen[fmt.Sprintf("msg %03d", i)]; c != 1 {
			t.Errorf("msg %03d arrived %d times", i, c)
		}
	}
	if len(seen) != total {
		t.Errorf("%d distinct messages, want %d", len(seen), total)
	}
}
