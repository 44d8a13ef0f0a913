package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/dsep-project/dsep/address"
	"github.com/dsep-project/dsep/node/compose"
	"github.com/dsep-project/dsep/node/control"
	"github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // decode mail in any charset for display
	"github.com/emersion/go-message/mail"
	"github.com/spf13/cobra"
)

// maxBodyBytes bounds the text `dsep send` reads from standard input, and
// each attachment.
const maxBodyBytes = 25 << 20

// nodeClient returns a client of the control API of the node running on
// the data directory, after checking that nobody else could have put
// a socket there.
func (a *app) nodeClient() (*control.Client, string, error) {
	dir := a.dataDir()
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil, dir, nodeError(dir, control.ErrNotRunning)
	}
	if err := checkPrivate(dir); err != nil {
		return nil, dir, err
	}
	return control.Dial(filepath.Join(dir, control.SocketName)), dir, nil
}

// nodeError explains a failed control API call.
func nodeError(dir string, err error) error {
	var e *control.Error
	switch {
	case errors.Is(err, control.ErrNotRunning):
		return fail("start it with `dsep run`", "no node is running for %s", dir)
	case errors.As(err, &e):
		return &cliError{msg: e.Message, hint: e.Hint, err: err}
	case errors.Is(err, fs.ErrPermission):
		return fail("run the command as the user who runs the node", "cannot reach the node of %s: %v", dir, err)
	case errors.Is(err, context.DeadlineExceeded):
		return fail("the node may be overloaded; look at its log", "the node of %s did not answer in time", dir)
	case errors.Is(err, context.Canceled):
		return &exitError{code: 130, msg: "interrupted"}
	}
	return fail("check that `dsep run` is running for this data directory", "talking to the node of %s: %v", dir, err)
}

// recipients parses --to/--cc/--bcc values, each one address or a
// comma-separated list.
func recipients(flag string, vals []string) ([]*mail.Address, error) {
	var out []*mail.Address
	for _, v := range vals {
		list, err := mail.ParseAddressList(v)
		if err != nil || len(list) == 0 {
			return nil, fail("give addresses like bob@example.org or \"Bob <bob@example.org>\"", "bad --%s %q: %v", flag, v, err)
		}
		out = append(out, list...)
	}
	return out, nil
}

// fromAddress is the identity's address, with the name of its User ID.
func fromAddress(d *dataDir) string {
	from := &mail.Address{Address: d.meta.Email}
	if k, err := d.publicKey(); err == nil {
		for _, uid := range k.UserIDs(time.Now()) {
			if a, err := mail.ParseAddress(uid); err == nil && strings.EqualFold(a.Address, d.meta.Email) {
				from.Name = a.Name
				break
			}
		}
	}
	return from.String()
}

func (a *app) sendCommand() *cobra.Command {
	var to, cc, bcc, attach []string
	var subject string
	c := &cobra.Command{
		Use:   "send --to ADDRESS [--cc ADDRESS] [--subject S] [--attach FILE] < BODY",
		Short: "Send a message through the running node",
		Long: `Read the message text (UTF-8) from standard input until end of file,
build the mail (From is your identity's address; attachments as MIME
parts) and hand it to the node running on the data directory, which signs
it, encrypts it for each recipient and queues it. Prints the message ID
queued for each recipient; ` + "`dsep outbox`" + ` follows their delivery.

--to, --cc and --bcc are repeatable and take email addresses
(bob@example.org) or key addresses (<z-base-32>@dsep.alt). Bcc recipients
get the message but are not named in it.`,
		Example: `  echo "See you at noon." | dsep send --to bob@example.org --subject Lunch
  dsep send --to bob@example.org --cc carol@example.org --subject Report --attach report.pdf < note.txt
  dsep send --to bob@example.org --subject Hi --json < body.txt`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, err := a.openDataDir()
			if err != nil {
				return err
			}
			if d.meta.Kind != kindUser {
				return fail("send with your own identity's --data directory", "%s holds the key of domain %s, not a user identity", d.path, d.meta.Domain)
			}
			toA, err := recipients("to", to)
			if err != nil {
				return err
			}
			ccA, err := recipients("cc", cc)
			if err != nil {
				return err
			}
			bccA, err := recipients("bcc", bcc)
			if err != nil {
				return err
			}
			if len(toA)+len(ccA)+len(bccA) == 0 {
				return fail("name a recipient with --to ADDRESS", "no recipient")
			}
			var atts []compose.Attachment
			for _, f := range attach {
				b, err := readSmallFile(f, maxBodyBytes)
				if err != nil {
					return fail("attach readable files of at most 25 MiB", "attaching %s: %v", f, err)
				}
				atts = append(atts, compose.Attachment{Name: filepath.Base(f), Data: b})
			}
			cl, dir, err := a.nodeClient()
			if err != nil {
				return err
			}
			defer cl.Close()
			// Before the text is typed, not after.
			if err := cl.Ping(cmd.Context()); err != nil {
				return nodeError(dir, err)
			}
			if isTerminal(a.stdin) {
				fmt.Fprintln(a.stderr, "dsep: type the message; end it with Ctrl-D on a line of its own")
			}
			body, err := readAllLimit(a.stdin, maxBodyBytes)
			if err != nil {
				return fail("send large files with --attach, up to the node's max_message_size", "reading the message from standard input: %v", err)
			}
			draft := compose.Draft{From: fromAddress(d), Subject: subject, Body: body, Attachments: atts}
			for _, x := range toA {
				draft.To = append(draft.To, x.String())
			}
			for _, x := range ccA {
				draft.Cc = append(draft.Cc, x.String())
			}
			if len(draft.To)+len(draft.Cc) == 0 {
				// Bcc only: the message names its sender as recipient.
				draft.To = []string{draft.From}
			}
			msg, err := buildMail(draft)
			if err != nil {
				return err
			}
			var env []string
			seen := map[string]bool{}
			for _, x := range append(append(toA, ccA...), bccA...) {
				if k := strings.ToLower(x.Address); !seen[k] {
					seen[k] = true
					env = append(env, x.Address)
				}
			}
			res, err := cl.Send(cmd.Context(), &control.SendRequest{To: env, Mail: msg})
			if err != nil {
				return nodeError(dir, err)
			}
			if a.jsonOut {
				if res.Queued == nil {
					res.Queued = []control.Queued{}
				}
				return a.printJSON(res)
			}
			for _, q := range res.Queued {
				fmt.Fprintf(a.stdout, "%s  %s  %s\n", shortID(q.MessageID), q.Status, clean(q.To))
			}
			return nil
		},
	}
	c.Flags().StringArrayVar(&to, "to", nil, "recipient (repeatable)")
	c.Flags().StringArrayVar(&cc, "cc", nil, "copy recipient (repeatable)")
	c.Flags().StringArrayVar(&bcc, "bcc", nil, "blind copy recipient, not named in the message (repeatable)")
	c.Flags().StringVarP(&subject, "subject", "s", "", "subject")
	c.Flags().StringArrayVarP(&attach, "attach", "a", nil, "file to attach (repeatable)")
	return c
}

// buildMail composes the draft and explains a failure.
func buildMail(d compose.Draft) ([]byte, error) {
	msg, err := compose.Build(d)
	if errors.Is(err, compose.ErrHeaderValue) {
		return nil, fail("give the subject and addresses on one line", "%v", err)
	}
	if errors.Is(err, compose.ErrBodyNotUTF8) {
		return nil, fail("convert the text to UTF-8 (e.g. iconv -t UTF-8), or send the file with --attach", "the message text is not UTF-8")
	}
	if err != nil {
		return nil, fail("check the addresses and file names", "%v", err)
	}
	return msg, nil
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// clean makes text from a message safe to print on one terminal line:
// no control characters (escape sequences), no bidirectional overrides.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\t' || r == '\n' || r == '\r':
			return ' '
		case unicode.IsControl(r), unicode.Is(unicode.Bidi_Control, r):
			return '\uFFFD'
		}
		return r
	}, s)
}

// cleanText is clean for multi-line text: it keeps line breaks and tabs.
func cleanText(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\n' || r == '\t':
			return r
		case unicode.IsControl(r), unicode.Is(unicode.Bidi_Control, r):
			return '\uFFFD'
		}
		return r
	}, s)
}

// truncate shortens s to n runes.
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// verifyMark is the one-glance verdict on a message.
func verifyMark(s *control.Summary) string {
	if s.Direction == control.DirectionOut {
		return "→ sent"
	}
	// The control.Verify… names, also in the store's hyphenated spelling.
	switch strings.ReplaceAll(s.Verification.Status, "-", "_") {
	case control.VerifyVerified:
		return "✔ verified"
	case control.VerifyUnknownKey:
		return "? unknown key"
	case control.VerifySuperseded:
		return "! SUPERSEDED KEY"
	case control.VerifyRevoked:
		return "✘ REVOKED KEY"
	case control.VerifyMismatch:
		return "✘ binding mismatch"
	case control.VerifyBadSignature:
		return "✘ BAD SIGNATURE"
	case control.VerifyUnsigned:
		return "? unsigned"
	case control.VerifyGateway:
		return "~ via gateway"
	case control.VerifySent:
		return "→ sent"
	case control.VerifyUnchecked:
		return "? not checked"
	case control.VerifyLocal:
		return "· from this node"
	case "":
		return "? not checked"
	}
	return "? " + clean(s.Verification.Status)
}

// verifyLine explains the verdict in one line.
func verifyLine(s *control.Summary) string {
	v := s.Verification
	line := verifyMark(s)
	if v.Detail != "" {
		line += ": " + clean(v.Detail)
	}
	if v.Signer != "" {
		signer := clean(v.Signer)
		if f, err := address.ParseFingerprint(v.Signer); err == nil {
			signer = f.Grouped()
		}
		line += " (key " + signer + ")"
	}
	return line
}

func localTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04")
}

func (a *app) inboxCommand() *cobra.Command {
	var folder string
	var limit int
	c := &cobra.Command{
		Use:   "inbox [--folder F] [--limit N]",
		Short: "List the messages in the node's mailbox, newest first",
		Long: `List a folder of the running node's mailbox (INBOX unless --folder):
message ID (its first 12 hex digits, enough for ` + "`dsep read`" + `), date,
sender, subject and what the node found when it checked the signature:

  ✔ verified          signed by the key the sender's address is bound to
  ? unknown key       signed, but the key could not be checked against the address
  ! SUPERSEDED KEY    signed by a key its owner has replaced
  ✘ REVOKED KEY       signed by a revoked key: do not trust it
  ✘ binding mismatch  signed by a key that is not the sender's: a forgery or a hijack
  ✘ BAD SIGNATURE     the signature does not verify
  ~ via gateway       came from ordinary email through a domain's gateway

An asterisk marks a message not yet read.`,
		Example: `  dsep inbox
  dsep inbox --limit 10
  dsep inbox --folder Sent --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit < 0 {
				return fail("use --limit N, or 0 for every message", "bad --limit %d", limit)
			}
			cl, dir, err := a.nodeClient()
			if err != nil {
				return err
			}
			defer cl.Close()
			list, err := cl.List(cmd.Context(), folder, limit)
			if err != nil {
				return nodeError(dir, err)
			}
			name := folder
			if name == "" {
				name = "INBOX"
			}
			if a.jsonOut {
				if list == nil {
					list = []control.Summary{}
				}
				return a.printJSON(list)
			}
			if len(list) == 0 {
				fmt.Fprintf(a.stdout, "no messages in %s\n", clean(name))
				return nil
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "  ID\tDATE\tFROM\tSUBJECT\tSIGNATURE")
			for i := range list {
				s := &list[i]
				mark := " "
				if !s.Seen() && s.Direction != control.DirectionOut {
					mark = "*"
				}
				date := s.Date
				if date.IsZero() {
					date = s.Received
				}
				who := s.From
				if s.Direction == control.DirectionOut {
					who = "to " + strings.Join(s.To, ", ")
				}
				subject := s.Subject
				if subject == "" {
					subject = "(no subject)"
				}
				fmt.Fprintf(tw, "%s %s\t%s\t%s\t%s\t%s\n", mark, shortID(s.ID), localTime(date),
					truncate(clean(who), 32), truncate(clean(subject), 50), verifyMark(s))
			}
			return tw.Flush()
		},
	}
	c.Flags().StringVar(&folder, "folder", "", "folder to list (default INBOX)")
	c.Flags().IntVarP(&limit, "limit", "n", 50, "most messages to list; 0 for all")
	return c
}

// readJSON is `dsep read --json`: the summary, the message as text and,
// with --raw, the OpenPGP original.
type readJSON struct {
	control.Summary
	Body string `json:"body"`
	Raw  string `json:"raw,omitempty"`
}

func (a *app) readCommand() *cobra.Command {
	var raw, source bool
	c := &cobra.Command{
		Use:   "read ID [--raw | --source]",
		Short: "Show one message, with what its signature check found",
		Long: `Show the message whose ID starts with ID (at least 8 hex digits, as
` + "`dsep inbox`" + ` shows them): first the signature verdict, then the
sender, recipients, date and subject, the text, and a list of attachments.
Control characters in the message are shown as �, so a message cannot
drive your terminal.

--source prints the message (RFC 5322, MIME) exactly as signed, for a mail
tool. --raw prints only the armored OpenPGP message as it arrived, signed
and encrypted, so that you can check it yourself:

  dsep read 3fa9c0d1e2b4 --raw | gpg --decrypt`,
		Example: `  dsep read 3fa9c0d1e2b4
  dsep read 3fa9c0d1e2b4 --raw | gpg --decrypt
  dsep read 3fa9c0d1e2b4 --source > message.eml
  dsep read 3fa9c0d1e2b4 --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if raw && source {
				return fail("use one of them", "--raw and --source together")
			}
			if _, err := control.CheckID(args[0]); err != nil {
				return fail("give the message ID, or at least its first 8 hex digits, as `dsep inbox` shows it", "bad message ID %q", clean(truncate(args[0], 80)))
			}
			cl, dir, err := a.nodeClient()
			if err != nil {
				return err
			}
			defer cl.Close()
			m, err := cl.Message(cmd.Context(), args[0], raw)
			if err != nil {
				return nodeError(dir, err)
			}
			if raw && m.Raw == "" {
				return fail("--raw is for received messages; --source prints this one", "message %s has no OpenPGP original here (it was sent by this node)", shortID(m.ID))
			}
			switch {
			case a.jsonOut:
				return a.printJSON(readJSON{Summary: m.Summary, Body: string(m.Body), Raw: m.Raw})
			case raw:
				_, err := io.WriteString(a.stdout, m.Raw)
				if err == nil && !strings.HasSuffix(m.Raw, "\n") {
					_, err = io.WriteString(a.stdout, "\n")
				}
				return err
			case source:
				_, err := a.stdout.Write(m.Body)
				return err
			}
			a.printMessage(m)
			return nil
		},
	}
	c.Flags().BoolVar(&raw, "raw", false, "print only the armored OpenPGP message as received")
	c.Flags().BoolVar(&source, "source", false, "print the RFC 5322 message as it is")
	return c
}

// printMessage shows a message for a person.
func (a *app) printMessage(m *control.Message) {
	w := a.stdout
	fmt.Fprintf(w, "%s\n\n", verifyLine(&m.Summary))
	fmt.Fprintf(w, "ID:       %s\n", m.ID)
	mr, err := mail.CreateReader(bytes.NewReader(m.Body))
	if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
		// Not MIME we can read: show it as text.
		fmt.Fprintf(w, "\n%s\n", cleanText(string(m.Body)))
		return
	}
	h := mr.Header
	for _, f := range []string{"From", "To", "Cc", "Date", "Subject"} {
		v, err := h.Text(f)
		if err != nil {
			v = h.Get(f)
		}
		if v != "" {
			fmt.Fprintf(w, "%-9s %s\n", f+":", clean(v))
		}
	}
	fmt.Fprintln(w)
	var atts []string
	shown := false
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
			fmt.Fprintf(w, "[the rest of the message could not be read: %s; --source shows it]\n", clean(err.Error()))
			break
		}
		switch ph := p.Header.(type) {
		case *mail.InlineHeader:
			ct, _, _ := ph.ContentType()
			if ct == "text/plain" && !shown {
				b, err := io.ReadAll(io.LimitReader(p.Body, maxBodyBytes))
				fmt.Fprintln(w, strings.TrimRight(cleanText(string(b)), "\n"))
				if err != nil {
					fmt.Fprintf(w, "[the rest of the text could not be decoded: %s; --source shows it as it is]\n", clean(err.Error()))
				}
				shown = true
				continue
			}
			n, _ := io.Copy(io.Discard, p.Body)
			atts = append(atts, fmt.Sprintf("%s part, %s", clean(ct), sizeText(n)))
		case *mail.AttachmentHeader:
			name, _ := ph.Filename()
			ct, _, _ := ph.ContentType()
			n, _ := io.Copy(io.Discard, p.Body)
			atts = append(atts, fmt.Sprintf("%s (%s, %s)", clean(name), clean(ct), sizeText(n)))
		}
	}
	if !shown {
		fmt.Fprintln(w, "[no plain text part; --source shows the message as it is]")
	}
	if len(atts) > 0 {
		fmt.Fprintln(w)
		for i, s := range atts {
			fmt.Fprintf(w, "[attachment %d: %s]\n", i+1, s)
		}
	}
}

func sizeText(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

func (a *app) outboxCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "outbox",
		Short: "Show the outbound queue: each message's delivery to each of the recipient's nodes",
		Long: `List the messages the running node is delivering or has recently
delivered, one per recipient: its state (pending, delivered, failed,
bounced), when it expires, and per delegate of the recipient (their own
node, a mailbox server, a gateway) the attempts made, the next try, the
last error and when it was delivered; and whether the recipient's signed
receipt has come back.`,
		Example: `  dsep outbox
  dsep outbox --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, dir, err := a.nodeClient()
			if err != nil {
				return err
			}
			defer cl.Close()
			es, err := cl.Outbox(cmd.Context())
			if err != nil {
				return nodeError(dir, err)
			}
			if a.jsonOut {
				if es == nil {
					es = []control.OutboxEntry{}
				}
				return a.printJSON(es)
			}
			if len(es) == 0 {
				fmt.Fprintln(a.stdout, "the outbox is empty")
				return nil
			}
			w := a.stdout
			for i, e := range es {
				if i > 0 {
					fmt.Fprintln(w)
				}
				fmt.Fprintf(w, "%s  to %s  %s\n", shortID(e.ID), clean(e.To), strings.ToUpper(clean(e.Status)))
				fmt.Fprintf(w, "    created %s, expires %s", localTime(e.Created), localTime(e.Expires))
				if e.Recipient != "" {
					fmt.Fprintf(w, ", recipient key %s", clean(e.Recipient))
				}
				fmt.Fprintln(w)
				if len(e.Delegates) == 0 && e.Status == control.StatePending {
					fmt.Fprintln(w, "    no delegate yet: the recipient's reach record has not been found")
				}
				for _, d := range e.Delegates {
					fmt.Fprintf(w, "    %-8s %s  %s", clean(d.Role), clean(shortPeerID(d.Peer)), clean(d.Status))
					if d.Attempts > 0 {
						fmt.Fprintf(w, ", %d attempt(s)", d.Attempts)
					}
					if !d.DeliveredAt.IsZero() {
						fmt.Fprintf(w, ", delivered %s", localTime(d.DeliveredAt))
					} else if !d.NextTry.IsZero() && d.Status == control.StatePending {
						fmt.Fprintf(w, ", next try %s", localTime(d.NextTry))
					}
					fmt.Fprintln(w)
					if d.LastError != "" {
						fmt.Fprintf(w, "             last error: %s\n", clean(d.LastError))
					}
				}
				if e.Receipt != nil {
					fmt.Fprintf(w, "    receipt  signed receipt received %s\n", localTime(*e.Receipt))
				}
			}
			return nil
		},
	}
}

func shortPeerID(s string) string {
	if len(s) > 16 {
		return s[:8] + "…" + s[len(s)-6:]
	}
	return s
}

func (a *app) statusCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the running node's state: identity, network, queue, mailbox and alerts",
		Long: `Ask the node running on the data directory how it is: its identity and
peer ID, where it listens, how long it has been up, its DHT routing table
and record republishing, the outbound queue, the mailbox and the delivery
counters. Alerts come first: self-monitoring found another key certified
for your address, a contact's key changed suspiciously, … Act on them.

Exit status: 0 when the node answers (even with alerts), 1 otherwise.`,
		Example: `  dsep status
  dsep --data ./alice status --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, dir, err := a.nodeClient()
			if err != nil {
				return err
			}
			defer cl.Close()
			st, err := cl.Status(cmd.Context())
			if err != nil {
				return nodeError(dir, err)
			}
			if a.jsonOut {
				for _, l := range []*[]string{&st.Emails, &st.Listen, &st.Warnings} {
					if *l == nil {
						*l = []string{}
					}
				}
				if st.Alerts == nil {
					st.Alerts = []control.Alert{}
				}
				return a.printJSON(st)
			}
			a.printStatus(st)
			return nil
		},
	}
}

func (a *app) printStatus(st *control.Status) {
	w := a.stdout
	for _, al := range st.Alerts {
		fmt.Fprintf(w, "!!! ALERT: %s\n", clean(al.Message))
		fmt.Fprintf(w, "!!!        %s", clean(al.Kind))
		if al.Email != "" {
			fmt.Fprintf(w, ", %s", clean(al.Email))
		}
		fmt.Fprintf(w, ", since %s\n", localTime(al.At))
	}
	if len(st.Alerts) > 0 {
		fmt.Fprintln(w)
	}
	fpr := clean(st.Fingerprint)
	if f, err := address.ParseFingerprint(st.Fingerprint); err == nil {
		fpr = f.Grouped()
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, e := range st.Emails {
		fmt.Fprintf(tw, "identity\t%s\n", clean(e))
	}
	fmt.Fprintf(tw, "key\t%s\n", fpr)
	fmt.Fprintf(tw, "peer id\t%s\n", clean(st.PeerID))
	for i, l := range st.Listen {
		label := ""
		if i == 0 {
			label = "listening"
		}
		fmt.Fprintf(tw, "%s\t%s\n", label, clean(l))
	}
	if st.IMAP != "" || st.SMTP != "" {
		fmt.Fprintf(tw, "mail clients\tIMAP %s, SMTP %s (dsep client config)\n", orOff(st.IMAP), orOff(st.SMTP))
	}
	if !st.StartedAt.IsZero() {
		fmt.Fprintf(tw, "up\t%s (since %s), version %s\n", fmtDuration(time.Since(st.StartedAt).Round(time.Second)), localTime(st.StartedAt), clean(st.Version))
	}
	fmt.Fprintf(tw, "dht\t%d peers in the routing table\n", st.DHT.RoutingTable)
	rep := "records not republished yet"
	if !st.DHT.LastRepublish.IsZero() {
		rep = fmt.Sprintf("%d records republished %s", st.DHT.Republished, localTime(st.DHT.LastRepublish))
	}
	if st.DHT.RepublishFailures > 0 {
		rep += fmt.Sprintf("; the last %d round(s) FAILED", st.DHT.RepublishFailures)
	}
	fmt.Fprintf(tw, "\t%s\n", rep)
	q := st.Queue
	fmt.Fprintf(tw, "outbox\t%d pending, %d delivered, %d failed, %d bounced", q.Pending, q.Delivered, q.Failed, q.Bounced)
	if !q.OldestPending.IsZero() && q.Pending > 0 {
		fmt.Fprintf(tw, "; oldest pending since %s", localTime(q.OldestPending))
	}
	fmt.Fprintln(tw)
	fmt.Fprintf(tw, "mailbox\t%d messages, %d unread\n", st.Mailbox.Messages, st.Mailbox.Unseen)
	dl := st.Delivery
	fmt.Fprintf(tw, "received\t%d envelopes (%d duplicates, %d rejected), %d opened\n", dl.Received, dl.Duplicates, dl.Rejected, dl.Decrypted)
	tw.Flush()
	for _, s := range st.Warnings {
		fmt.Fprintf(w, "warning: %s\n", clean(s))
	}
	if len(st.Alerts) > 0 {
		fmt.Fprintf(w, "\n!!! %d ALERT(S) above: read them.\n", len(st.Alerts))
	}
}

// orOff names a server address, or says it is off.
func orOff(addr string) string {
	if addr == "" {
		return "off"
	}
	return clean(addr)
}
