package node

import (
	"context"
	"errors"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/dsep-project/dsep/address"
	"github.com/dsep-project/dsep/node/control"
	"github.com/dsep-project/dsep/node/envelope"
	"github.com/dsep-project/dsep/node/queue"
	"github.com/dsep-project/dsep/node/store"
	"github.com/multiformats/go-multiaddr"
)

// Backend returns the node's control API backend (served on the control
// socket by `dsep run`).
func (n *Node) Backend() control.Backend { return (*backend)(n) }

type backend Node

var _ control.Backend = (*backend)(nil)

func (b *backend) Status(ctx context.Context) (*control.Status, error) {
	n := (*Node)(b)
	st := &control.Status{
		Version:     n.cfg.Version,
		Fingerprint: n.fpr.String(),
		PeerID:      n.host.ID().String(),
		StartedAt:   n.started,
	}
	for _, e := range n.emails {
		st.Emails = append(st.Emails, e.String())
	}
	p2p, _ := multiaddr.NewComponent("p2p", n.host.ID().String())
	for _, a := range n.host.Addrs() {
		st.Listen = append(st.Listen, a.Encapsulate(p2p.Multiaddr()).String())
	}
	if n.smtpAddr != nil {
		st.SMTP = n.smtpAddr.String()
	}
	if n.imapAddr != nil {
		st.IMAP = n.imapAddr.String()
	}
	st.DHT.RoutingTable = n.dht.RoutingTableSize()
	n.mu.Lock()
	rep, repT := n.lastRep, n.lastRepT
	alerts := n.alerts
	n.mu.Unlock()
	st.DHT.LastRepublish = repT
	st.DHT.Republished = rep.Put
	st.DHT.RepublishFailures = len(rep.Failed)
	if st.DHT.RoutingTable == 0 {
		st.Warnings = append(st.Warnings, "no DHT peers: check the bootstrap peers in config.toml (or --bootstrap) and the network")
	}
	if !repT.IsZero() && len(rep.Failed) > 0 {
		st.Warnings = append(st.Warnings, "the last republish round could not store every record")
	}
	for _, a := range alerts {
		st.Alerts = append(st.Alerts, control.Alert{Kind: string(a.Kind), Email: emailString(a.Email), Message: a.Message, At: a.At})
	}
	counts, oldest, err := n.queue.Counts()
	if err != nil {
		return nil, err
	}
	st.Queue = control.QueueStatus{
		Pending: counts[queue.StatePending], Delivered: counts[queue.StateDelivered],
		Failed: counts[queue.StateFailed], Bounced: counts[queue.StateBounced], OldestPending: oldest,
	}
	folders, err := n.store.Folders()
	if err != nil {
		return nil, err
	}
	for _, f := range folders {
		st.Mailbox.Messages += f.Messages
		if f.Name == "INBOX" {
			st.Mailbox.Unseen = f.Unseen
		}
	}
	st.Delivery = control.DeliveryStatus{
		Received:   n.stats.Received.Load(),
		Duplicates: n.stats.Duplicates.Load(),
		Rejected:   n.stats.Refused.Load() + n.stats.Rejected.Load(),
		Decrypted:  n.stats.Delivered.Load(),
	}
	return st, nil
}

func emailString(e address.Email) string {
	if e.IsZero() {
		return ""
	}
	return e.String()
}

func (b *backend) Send(ctx context.Context, req *control.SendRequest) (*control.SendResult, error) {
	n := (*Node)(b)
	res, err := n.Send(ctx, req.Mail, req.To)
	if errors.Is(err, ErrNotOwnAddress) {
		return nil, control.Errorf(400, "send from your own address ("+strings.Join(b.emailStrings(), ", ")+")", "%v", err)
	}
	if err != nil {
		return nil, control.Errorf(400, "check the message's headers", "%v", err)
	}
	out := &control.SendResult{}
	var failed []string
	for _, q := range res {
		e := control.Queued{To: q.To, Status: control.StatePending}
		if q.Err != nil {
			e.Status = control.StateFailed
			failed = append(failed, q.To+": "+q.Err.Error())
		} else if q.ID != (envelope.ID{}) {
			e.MessageID = q.ID.String()
		}
		out.Queued = append(out.Queued, e)
	}
	if len(failed) == len(res) {
		return nil, control.Errorf(400, "check the address; `dsep lookup ADDRESS` shows what the network knows of it", "not sent: %s", strings.Join(failed, "; "))
	}
	return out, nil
}

func (b *backend) emailStrings() []string {
	var out []string
	for _, e := range b.emails {
		out = append(out, e.String())
	}
	return out
}

func summary(m store.Meta) control.Summary {
	return control.Summary{
		ID: m.ID.String(), Folder: m.Folder, UID: m.UID, From: m.From, To: m.To, Subject: m.Subject,
		Date: m.Date, Received: m.Received, Size: m.Size, Flags: m.Flags, Direction: m.Direction,
		Verification: control.Verification{Status: m.Verification.Status, Signer: m.Verification.Signer, Detail: m.Verification.Detail},
	}
}

func (b *backend) List(ctx context.Context, folder string, limit int) ([]control.Summary, error) {
	n := (*Node)(b)
	if folder == "" {
		folder = "INBOX"
	}
	metas, err := n.store.List(folder, 0, 0)
	if errors.Is(err, store.ErrNoFolder) {
		return nil, control.Errorf(404, "list the folders with `dsep status`", "no folder %q", folder)
	}
	if err != nil {
		return nil, err
	}
	out := make([]control.Summary, 0, len(metas))
	for i := len(metas) - 1; i >= 0; i-- {
		out = append(out, summary(metas[i]))
		if limit > 0 && len(out) == limit {
			break
		}
	}
	return out, nil
}

func (b *backend) Message(ctx context.Context, id string, raw bool) (*control.Message, error) {
	n := (*Node)(b)
	mid, err := n.findMessage(id)
	if err != nil {
		return nil, err
	}
	m, err := n.store.Get(mid)
	if err != nil {
		return nil, err
	}
	body, err := n.store.Body(mid)
	if err != nil {
		return nil, err
	}
	out := &control.Message{Summary: summary(m), Body: body}
	if raw {
		if m.Direction != "in" {
			return nil, control.Errorf(400, "--raw is for received messages", "message %s was not received over DSEP", id)
		}
		r, err := n.store.Raw(mid)
		if err != nil {
			return nil, err
		}
		out.Raw, err = armorMessage(r)
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// findMessage resolves a full ID or a unique prefix.
func (n *Node) findMessage(id string) (envelope.ID, error) {
	if len(id) == control.IDLength {
		mid, err := envelope.ParseID(id)
		if err != nil {
			return mid, control.Errorf(400, "", "bad message ID %q", id)
		}
		if _, err := n.store.Get(mid); err != nil {
			return mid, control.Errorf(404, "list messages with `dsep inbox`", "no message %s", id)
		}
		return mid, nil
	}
	var found []envelope.ID
	folders, err := n.store.Folders()
	if err != nil {
		return envelope.ID{}, err
	}
	for _, f := range folders {
		metas, err := n.store.List(f.Name, 0, 0)
		if err != nil {
			return envelope.ID{}, err
		}
		for _, m := range metas {
			if strings.HasPrefix(m.ID.String(), id) {
				found = append(found, m.ID)
			}
		}
	}
	switch len(found) {
	case 0:
		return envelope.ID{}, control.Errorf(404, "list messages with `dsep inbox`", "no message %s", id)
	case 1:
		return found[0], nil
	}
	return envelope.ID{}, control.Errorf(409, "give more digits of the ID", "%d messages start with %s", len(found), id)
}

func (b *backend) Outbox(ctx context.Context) ([]control.OutboxEntry, error) {
	n := (*Node)(b)
	items, err := n.queue.List()
	if err != nil {
		return nil, err
	}
	var out []control.OutboxEntry
	for _, it := range items {
		if it.Kind != queue.KindMessage {
			continue
		}
		e := control.OutboxEntry{ID: it.ID.String(), To: it.To, Recipient: it.Recipient, Created: it.Created, Expires: it.Expires, Status: it.State}
		if !it.Receipt.IsZero() {
			t := it.Receipt
			e.Receipt = &t
		}
		switch {
		case it.State != queue.StatePending:
		case !it.Sealed || len(it.Delegates) == 0:
			e.Delegates = append(e.Delegates, control.DelegateStatus{Status: "resolving the recipient", Attempts: it.Attempts, NextTry: it.NextTry, LastError: it.LastError})
		case len(it.Proof) == 0:
			e.Delegates = append(e.Delegates, control.DelegateStatus{Status: "minting a stamp", Attempts: it.Attempts, LastError: it.LastError})
		}
		for _, d := range it.Delegates {
			e.Delegates = append(e.Delegates, control.DelegateStatus{Peer: d.Peer, Role: d.Role, Status: d.State, Attempts: d.Attempts, NextTry: d.NextTry, LastError: d.LastError, DeliveredAt: d.DeliveredAt})
		}
		out = append(out, e)
	}
	return out, nil
}

// armorMessage armors an OpenPGP message (RFC 9580 §6.2), as gpg reads it.
func armorMessage(b []byte) (string, error) {
	var buf strings.Builder
	w, err := armor.Encode(&buf, "PGP MESSAGE", nil)
	if err != nil {
		return "", err
	}
	if _, err := w.Write(b); err != nil {
		return "", err
	}
	if err := w.Close(); err != nil {
		return "", err
	}
	buf.WriteString("\n")
	return buf.String(), nil
}
