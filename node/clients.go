package node

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/dsep-project/dsep/node/imap"
	"github.com/dsep-project/dsep/node/submit"
)

// The node's servers for mail clients (docs/operator.md, "Mail clients").

// submitBackend is the node as the SMTP submission server's backend.
type submitBackend Node

var _ submit.Backend = (*submitBackend)(nil)

func (b *submitBackend) Authenticate(ctx context.Context, username, password string) error {
	n := (*Node)(b)
	if n.cfg.Authenticate == nil {
		return errors.New("node: no mail-client account")
	}
	return n.cfg.Authenticate(ctx, username, password)
}

func (b *submitBackend) OwnAddress(addr string) bool { return (*Node)(b).ownAddress(addr) }

func (b *submitBackend) CheckRecipient(ctx context.Context, rcpt string) error {
	n := (*Node)(b)
	_, _, err := n.resolveRecipient(ctx, rcpt)
	if isPermanent(err) {
		return submit.Permanent(err)
	}
	return err
}

func (b *submitBackend) Submit(ctx context.Context, from string, rcpts []string, mail []byte) error {
	n := (*Node)(b)
	res, err := n.Send(ctx, mail, rcpts)
	if errors.Is(err, ErrNotOwnAddress) {
		return submit.Permanent(err)
	}
	if err != nil {
		return err
	}
	queued := 0
	for _, q := range res {
		if q.Err == nil {
			queued++
		}
	}
	if queued == 0 {
		return submit.Permanent(fmt.Errorf("no recipient could be queued: %v", res[0].Err))
	}
	// Recipients checked at RCPT time that fail now (a key revoked in
	// between): the others are queued, so the client must not resend;
	// the sender learns of these from bounces.
	for _, q := range res {
		if q.Err != nil {
			n.bounceNow(ctx, q.To, summarize(mail).Subject, q.Err.Error())
		}
	}
	return nil
}

// startClients starts the SMTP submission and IMAP servers on their
// loopback addresses.
func (n *Node) startClients() error {
	if n.cfg.SMTPListen != "" {
		l, err := net.Listen("tcp", n.cfg.SMTPListen)
		if err != nil {
			return fmt.Errorf("node: SMTP submission on %s: %w", n.cfg.SMTPListen, err)
		}
		srv, err := submit.NewServer(submit.Config{
			Backend:         (*submitBackend)(n),
			MaxMessageBytes: int64(n.maxPayload()),
			Logger:          n.log.With("part", "smtp"),
		})
		if err != nil {
			l.Close()
			return err
		}
		n.smtp, n.smtpAddr = srv, l.Addr()
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			if err := srv.Serve(l); err != nil && !errors.Is(err, submit.ErrServerClosed) {
				n.log.Error("SMTP submission stopped", "err", err)
			}
		}()
	}
	if n.cfg.IMAPListen != "" {
		auth := n.cfg.Authenticate
		if auth == nil {
			auth = func(context.Context, string, string) error { return errors.New("node: no mail-client account") }
		}
		srv, err := imap.NewServer(imap.Config{
			Store:           n.store,
			Authenticate:    auth,
			Logger:          n.log.With("part", "imap"),
			MaxMessageBytes: int64(n.maxPayload()),
		})
		if err != nil {
			return err
		}
		l, err := net.Listen("tcp", n.cfg.IMAPListen)
		if err != nil {
			srv.Close()
			return fmt.Errorf("node: IMAP on %s: %w", n.cfg.IMAPListen, err)
		}
		n.imap, n.imapAddr = srv, l.Addr()
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			if err := srv.Serve(l); err != nil && !errors.Is(err, imap.ErrServerClosed) {
				n.log.Error("IMAP stopped", "err", err)
			}
		}()
	}
	return nil
}

// SMTPAddr is where the SMTP submission server listens (nil if off).
func (n *Node) SMTPAddr() net.Addr { return n.smtpAddr }

// IMAPAddr is where the IMAP server listens (nil if off).
func (n *Node) IMAPAddr() net.Addr { return n.imapAddr }
