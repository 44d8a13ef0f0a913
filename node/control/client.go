package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"syscall"
	"time"
)

// DefaultTimeout bounds one Client call unless Client.Timeout says
// otherwise.
const DefaultTimeout = time.Minute

// Response size limits of the Client: the daemon is trusted (only its
// owner can bind the socket), so these only bound the damage of a bug.
const (
	maxSmallResponse   = 64 << 20  // status, lists, outbox, send results, errors
	maxMessageResponse = 512 << 20 // one message: base64 body plus armored raw
)

// Client talks to a node's control API. It implements Backend. Its methods
// return ErrNotRunning (wrapped) when no node listens on the socket, an
// *Error for a failure the node reported, and other errors for transport
// failures.
type Client struct {
	// Timeout bounds each call (when ctx has no earlier deadline).
	// Default DefaultTimeout.
	Timeout time.Duration

	path string
	hc   *http.Client
}

var _ Backend = (*Client)(nil)

// Dial returns a client for the control socket at path. It does not
// connect: each call does, so a node started later is found.
func Dial(path string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		MaxIdleConns:          2,
		IdleConnTimeout:       30 * time.Second,
		ResponseHeaderTimeout: 0, // Send may take a while; Timeout bounds the call
		ExpectContinueTimeout: 5 * time.Second,
		DisableCompression:    true,
	}
	return &Client{path: path, hc: &http.Client{Transport: tr}}
}

// Path returns the socket path the client connects to.
func (c *Client) Path() string { return c.path }

// Close releases idle connections.
func (c *Client) Close() error {
	c.hc.CloseIdleConnections()
	return nil
}

// Ping checks that a node listens on the socket, without asking it
// anything: ErrNotRunning (wrapped) when none does.
func (c *Client) Ping(ctx context.Context) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.path)
	if err != nil {
		if notRunning(err) {
			return fmt.Errorf("%w (nothing answers on %s)", ErrNotRunning, c.path)
		}
		return fmt.Errorf("control: %w", err)
	}
	return conn.Close()
}

// Status implements Backend.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	var st Status
	if err := c.do(ctx, http.MethodGet, "/v1/status", nil, nil, maxSmallResponse, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// Send implements Backend.
func (c *Client) Send(ctx context.Context, req *SendRequest) (*SendResult, error) {
	q := url.Values{"to": req.To}
	var res SendResult
	if err := c.do(ctx, http.MethodPost, "/v1/send", q, req.Mail, maxSmallResponse, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// List implements Backend.
func (c *Client) List(ctx context.Context, folder string, limit int) ([]Summary, error) {
	q := url.Values{}
	if folder != "" {
		q.Set("folder", folder)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var res listResponse
	if err := c.do(ctx, http.MethodGet, "/v1/messages", q, nil, maxSmallResponse, &res); err != nil {
		return nil, err
	}
	return res.Messages, nil
}

// Message implements Backend. id is checked with CheckID first.
func (c *Client) Message(ctx context.Context, id string, raw bool) (*Message, error) {
	id, err := CheckID(id)
	if err != nil {
		return nil, err
	}
	q := url.Values{}
	if raw {
		q.Set("raw", "true")
	}
	var m Message
	if err := c.do(ctx, http.MethodGet, "/v1/messages/"+id, q, nil, maxMessageResponse, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// Outbox implements Backend.
func (c *Client) Outbox(ctx context.Context) ([]OutboxEntry, error) {
	var res outboxResponse
	if err := c.do(ctx, http.MethodGet, "/v1/outbox", nil, nil, maxSmallResponse, &res); err != nil {
		return nil, err
	}
	return res.Entries, nil
}

// do makes one call and decodes the JSON answer into out.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, body []byte, limit int64, out any) error {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	u := "http://dsep" + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "message/rfc822")
		req.Header.Set("Expect", "100-continue")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if notRunning(err) {
			return fmt.Errorf("%w (nothing answers on %s)", ErrNotRunning, c.path)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("control: %s %s: %w", method, path, ctx.Err())
		}
		return fmt.Errorf("control: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return readError(resp)
	}
	return decodeJSON(resp.Body, limit, out)
}

// notRunning reports whether a dial error means nothing listens: no
// socket file, or a socket nobody accepts on.
func notRunning(err error) bool {
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "dial" {
		return false
	}
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, fs.ErrNotExist)
}

// readError turns a non-2xx response into an *Error.
func readError(resp *http.Response) error {
	var e Error
	if err := decodeJSON(resp.Body, maxSmallResponse, &e); err != nil || e.Message == "" {
		return &Error{Code: resp.StatusCode, Message: fmt.Sprintf("the node answered %s", resp.Status),
			Hint: "use the same dsep version for `dsep run` and the command line"}
	}
	e.Code = resp.StatusCode
	return &e
}

// decodeJSON decodes exactly one JSON value of at most limit bytes.
func decodeJSON(r io.Reader, limit int64, out any) error {
	lr := &io.LimitedReader{R: r, N: limit + 1}
	dec := json.NewDecoder(lr)
	if err := dec.Decode(out); err != nil {
		if lr.N <= 0 {
			return fmt.Errorf("control: response larger than %d bytes", limit)
		}
		return fmt.Errorf("control: bad response: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("control: bad response: data after the JSON value")
	}
	return nil
}
