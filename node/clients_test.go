package node_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dsep-project/dsep/node"
	"github.com/dsep-project/dsep/testnet"
	"github.com/dsep-project/dsep/testnet/testtool"
	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

const clientPassword = "local-client-password"

// clientNet is a network whose nodes serve IMAP and SMTP on loopback.
func clientNet(t *testing.T) *testnet.MailNet {
	return newNet(t, func(c *node.Config) {
		c.SMTPListen, c.IMAPListen = "127.0.0.1:0", "127.0.0.1:0"
		c.Authenticate = func(_ context.Context, user, pass string) error {
			if pass != clientPassword {
				return errors.New("bad password")
			}
			return nil
		}
	})
}

func submit(t *testing.T, from *testnet.User, rcpts []string, msg string) {
	t.Helper()
	c, err := smtp.Dial(from.Node().SMTPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", from.Email.String(), clientPassword)); err != nil {
		t.Fatal(err)
	}
	if err := c.SendMail(from.Email.String(), rcpts, strings.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
}

func imapLogin(t *testing.T, u *testnet.User, h *imapclient.UnilateralDataHandler) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(u.Node().IMAPAddr().String(), &imapclient.Options{UnilateralDataHandler: h})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(u.Email.String(), clientPassword).Wait(); err != nil {
		t.Fatal(err)
	}
	return c
}

// A mail client at Alice's node sends; Bob's client, idling, is told at
// once and fetches the message with the node's Authentication-Results;
// the Bcc recipient's client sees no Bcc; Bob's flags and moves and the
// UIDs survive a restart of his node.
func TestMailClientsEndToEnd(t *testing.T) {
	m := clientNet(t)
	alice := addUser(t, m, "alice", testnet.UserOptions{})
	bob := addUser(t, m, "bob", testnet.UserOptions{})
	dave := addUser(t, m, "dave", testnet.UserOptions{})

	exists := make(chan uint32, 10)
	bc := imapLogin(t, bob, &imapclient.UnilateralDataHandler{Mailbox: func(d *imapclient.UnilateralDataMailbox) {
		if d.NumMessages != nil {
			exists <- *d.NumMessages
		}
	}})
	sel, err := bc.Select("INBOX", nil).Wait()
	if err != nil || sel.NumMessages != 0 {
		t.Fatalf("select: %v %+v", err, sel)
	}
	idle, err := bc.Idle()
	if err != nil {
		t.Fatal(err)
	}
	body := "Hello Bob, from a mail client.\r\n"
	submit(t, alice, []string{"bob@example.org", "dave@example.org"},
		"From: Alice <alice@example.org>\r\nTo: bob@example.org\r\nBcc: dave@example.org\r\nSubject: via IMAP\r\n\r\n"+body)
	select {
	case n := <-exists:
		if n != 1 {
			t.Fatalf("IDLE: %d messages", n)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("IDLE was not told of the new message")
	}
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := bc.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{UID: true, Flags: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("fetch: %v %d", err, len(msgs))
	}
	raw := msgs[0].BodySection[0].Bytes
	uid := msgs[0].UID
	unfolded := bytes.ReplaceAll(raw, []byte("\r\n "), []byte(" ")) // header lines may be folded
	if !bytes.HasSuffix(raw, []byte("\r\n\r\n"+body)) || !bytes.HasPrefix(unfolded, []byte("Authentication-Results: dsep.local; dsep=pass (key "+alice.Key.Fingerprint().String())) {
		t.Fatalf("fetched:\n%s", raw)
	}
	if bytes.Contains(raw, []byte("Bcc")) {
		t.Fatalf("Bob sees a Bcc header:\n%s", raw)
	}

	// Dave, the Bcc recipient, has it too, without a Bcc header.
	dc := imapLogin(t, dave, nil)
	eventually(t, 30*time.Second, "dave's copy", func() bool {
		st, err := dc.Status("INBOX", &imap.StatusOptions{NumMessages: true}).Wait()
		return err == nil && *st.NumMessages == 1
	})
	if _, err := dc.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	dm, err := dc.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
	if err != nil || len(dm) != 1 || bytes.Contains(dm[0].BodySection[0].Bytes, []byte("Bcc")) || !bytes.Contains(dm[0].BodySection[0].Bytes, []byte(body)) {
		t.Fatalf("dave: %v %+v", err, dm)
	}

	// Flag it, move it to Archive; restart Bob's node; all is as left.
	if _, err := bc.Store(imap.UIDSetNum(uid), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Collect(); err != nil {
		t.Fatal(err)
	}
	mv, err := bc.Move(imap.UIDSetNum(uid), "Archive").Wait()
	if err != nil {
		t.Fatal(err)
	}
	archived, err := bc.Select("Archive", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	before, err := bc.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{UID: true, Flags: true}).Collect()
	if err != nil || len(before) != 1 {
		t.Fatalf("archive: %v %+v", err, before)
	}
	bc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := bob.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := bob.Start(ctx, 0); err != nil {
		t.Fatal(err)
	}
	bc2 := imapLogin(t, bob, nil)
	again, err := bc2.Select("Archive", nil).Wait()
	if err != nil || again.UIDValidity != archived.UIDValidity || again.NumMessages != 1 {
		t.Fatalf("after restart: %v %+v (before %+v)", err, again, archived)
	}
	after, err := bc2.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{UID: true, Flags: true}).Collect()
	if err != nil || len(after) != 1 || after[0].UID != before[0].UID || !slices.Contains(after[0].Flags, imap.FlagFlagged) {
		t.Fatalf("after restart: %v %+v, before %+v (move %+v)", err, after, before, mv)
	}
	st, err := bc2.Status("INBOX", &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil || *st.NumMessages != 0 {
		t.Fatalf("inbox after the move: %v %+v", err, st)
	}
}

// Python's smtplib and imaplib, nothing else, against two nodes.
func TestPythonMailClient(t *testing.T) {
	py := testtool.Require(t, "python3")
	m := clientNet(t)
	alice := addUser(t, m, "alice", testnet.UserOptions{})
	bob := addUser(t, m, "bob", testnet.UserOptions{})
	cmd := exec.Command(py, "testdata/mailclient.py",
		alice.Node().SMTPAddr().String(), alice.Email.String(), clientPassword,
		bob.Node().IMAPAddr().String(), bob.Email.String(), clientPassword)
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("python: %v\n%s", err, ee.Stderr)
		}
		t.Fatal(err)
	}
	var res struct {
		BadLogin    any      `json:"bad_login"`
		Refused     []string `json:"refused"`
		Found       int      `json:"found"`
		Subject     string   `json:"subject"`
		AuthResults string   `json:"auth_results"`
		Body        string   `json:"body"`
		Flags       string   `json:"flags"`
		Folders     []string `json:"folders"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if res.BadLogin != float64(535) || len(res.Refused) != 0 || res.Found != 1 || res.Subject != "from smtplib" ||
		!strings.HasPrefix(res.AuthResults, "dsep.local; dsep=pass") || !strings.Contains(res.Body, "Hello from Python's smtplib.") ||
		!strings.Contains(res.Flags, `\Flagged`) {
		t.Fatalf("python saw: %s", out)
	}
	joined := strings.Join(res.Folders, "\n")
	for _, f := range []string{`\Sent`, `\Drafts`, `\Trash`, `\Junk`, `\Archive`} {
		if !strings.Contains(joined, f) {
			t.Errorf("LIST lacks %s: %s", f, joined)
		}
	}
}
