package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Server serves a Backend on the control API.
type Server struct {
	// MaxMailBytes is the largest mail /v1/send accepts. Default
	// DefaultMaxMailBytes; set it before Serve.
	MaxMailBytes int64

	b    Backend
	log  *slog.Logger
	http *http.Server
}

// NewServer returns a server for b. A nil logger is silent. Nothing is
// logged but the method, path and status of requests (at debug level) and
// the backend's internal errors; never a message's content.
func NewServer(b Backend, logger *slog.Logger) *Server {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{MaxMailBytes: DefaultMaxMailBytes, b: b, log: logger}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", s.status)
	mux.HandleFunc("POST /v1/send", s.send)
	mux.HandleFunc("GET /v1/messages", s.list)
	mux.HandleFunc("GET /v1/messages/{id}", s.message)
	mux.HandleFunc("GET /v1/outbox", s.outbox)
	s.registerContacts(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, Errorf(http.StatusNotFound, "use the same dsep version for `dsep run` and the command line",
			"the node has no control API call %s %s", r.Method, r.URL.Path))
	})
	s.http = &http.Server{
		Handler:           s.recoverer(mux),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       5 * time.Minute, // a 32 MiB mail over a local socket takes well under a second
		WriteTimeout:      5 * time.Minute,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
	}
	return s
}

// Serve accepts connections on l (normally from Listen) until Shutdown or
// Close, and then returns ErrServerClosed. It closes l.
func (s *Server) Serve(l net.Listener) error {
	err := s.http.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return ErrServerClosed
	}
	return err
}

// Shutdown stops accepting connections and waits, until ctx ends, for the
// requests in progress to finish.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.http.Shutdown(ctx)
}

// Close stops the server at once, closing every connection.
func (s *Server) Close() error {
	return s.http.Close()
}

// recoverer turns a panic in a handler into a 500 for that request only.
func (s *Server) recoverer(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rw := &statusWriter{ResponseWriter: w}
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("control: panic serving request", "method", r.Method, "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
				if rw.status == 0 {
					s.writeError(rw, r, internalError())
				}
			}
			s.log.Debug("control: request", "method", r.Method, "path", r.URL.Path, "status", rw.status, "duration", time.Since(start))
		}()
		h.ServeHTTP(rw, r)
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func internalError() *Error {
	return &Error{Code: http.StatusInternalServerError, Message: "internal error in the node", Hint: "the node's log has the details"}
}

// query checks that r carries only the allowed query parameters, each at
// most once unless listed in multi.
func query(r *http.Request, allowed []string, multi string) (url.Values, *Error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, Errorf(http.StatusBadRequest, "", "bad query string: %v", err)
	}
	for k, v := range q {
		ok := false
		for _, a := range allowed {
			ok = ok || k == a
		}
		if !ok {
			return nil, Errorf(http.StatusBadRequest, "use the same dsep version for `dsep run` and the command line", "unknown parameter %q", k)
		}
		if len(v) > 1 && k != multi {
			return nil, Errorf(http.StatusBadRequest, "", "parameter %q given %d times", k, len(v))
		}
	}
	return q, nil
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	if _, e := query(r, nil, ""); e != nil {
		s.writeError(w, r, e)
		return
	}
	st, err := s.b.Status(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, r, st)
}

func (s *Server) send(w http.ResponseWriter, r *http.Request) {
	q, e := query(r, []string{"to"}, "to")
	if e != nil {
		s.writeError(w, r, e)
		return
	}
	to := q["to"]
	switch {
	case len(to) == 0:
		s.writeError(w, r, Errorf(http.StatusBadRequest, "name at least one recipient", "no recipient"))
		return
	case len(to) > MaxRecipients:
		s.writeError(w, r, Errorf(http.StatusBadRequest, "send to fewer recipients at a time", "%d recipients (at most %d)", len(to), MaxRecipients))
		return
	}
	for _, a := range to {
		if a == "" || len(a) > MaxAddressBytes || !utf8.ValidString(a) || strings.ContainsFunc(a, isControl) {
			s.writeError(w, r, Errorf(http.StatusBadRequest, "give addresses like bob@example.org", "bad recipient address %q", a))
			return
		}
	}
	if ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || ct != "message/rfc822" {
		s.writeError(w, r, Errorf(http.StatusUnsupportedMediaType, "", "the mail must be sent as message/rfc822"))
		return
	}
	max := s.MaxMailBytes
	if max <= 0 {
		max = DefaultMaxMailBytes
	}
	tooLarge := Errorf(http.StatusRequestEntityTooLarge, "send large files another way, or raise max_message_size in the node's config.toml",
		"the message is larger than %d bytes", max)
	if r.ContentLength > max {
		// Refused before reading: the client sent Expect: 100-continue
		// and has not sent the body.
		s.writeError(w, r, tooLarge)
		return
	}
	mail, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		s.writeError(w, r, tooLarge)
		return
	case err != nil:
		s.writeError(w, r, Errorf(http.StatusBadRequest, "", "reading the message: %v", err))
		return
	case len(mail) == 0:
		s.writeError(w, r, Errorf(http.StatusBadRequest, "", "empty message"))
		return
	}
	res, err := s.b.Send(r.Context(), &SendRequest{To: to, Mail: mail})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, r, res)
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	q, e := query(r, []string{"folder", "limit"}, "")
	if e != nil {
		s.writeError(w, r, e)
		return
	}
	folder := q.Get("folder")
	if len(folder) > MaxFolderBytes || !utf8.ValidString(folder) || strings.ContainsFunc(folder, isControl) {
		s.writeError(w, r, Errorf(http.StatusBadRequest, "", "bad folder name %q", folder))
		return
	}
	limit := 0
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 0 {
			s.writeError(w, r, Errorf(http.StatusBadRequest, "give a number of messages, 0 for all", "bad limit %q", l))
			return
		}
		limit = n
	}
	msgs, err := s.b.List(r.Context(), folder, limit)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if msgs == nil {
		msgs = []Summary{}
	}
	s.writeJSON(w, r, listResponse{Messages: msgs})
}

type listResponse struct {
	Messages []Summary `json:"messages"`
}

type outboxResponse struct {
	Entries []OutboxEntry `json:"entries"`
}

// CheckID checks the form of a message ID or ID prefix (MinIDPrefix to
// IDLength hex digits) and returns it lower-cased.
func CheckID(id string) (string, error) {
	if len(id) < MinIDPrefix || len(id) > IDLength {
		return "", Errorf(http.StatusBadRequest, fmt.Sprintf("give the message ID, or at least its first %d hex digits, as `dsep inbox` shows it", MinIDPrefix),
			"bad message ID %q: %d to %d hex digits expected", trunc(id, 80), MinIDPrefix, IDLength)
	}
	for _, c := range id {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return "", Errorf(http.StatusBadRequest, "message IDs are hex digits, as `dsep inbox` shows them", "bad message ID %q", trunc(id, 80))
		}
	}
	return strings.ToLower(id), nil
}

func trunc(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func (s *Server) message(w http.ResponseWriter, r *http.Request) {
	q, e := query(r, []string{"raw"}, "")
	if e != nil {
		s.writeError(w, r, e)
		return
	}
	raw := false
	if v := q.Get("raw"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			s.writeError(w, r, Errorf(http.StatusBadRequest, "", "bad raw %q", v))
			return
		}
		raw = b
	}
	id, err := CheckID(r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	m, err := s.b.Message(r.Context(), id, raw)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, r, m)
}

func (s *Server) outbox(w http.ResponseWriter, r *http.Request) {
	if _, e := query(r, nil, ""); e != nil {
		s.writeError(w, r, e)
		return
	}
	es, err := s.b.Outbox(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if es == nil {
		es = []OutboxEntry{}
	}
	s.writeJSON(w, r, outboxResponse{Entries: es})
}

func (s *Server) writeJSON(w http.ResponseWriter, r *http.Request, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		s.log.Error("control: encoding response", "path", r.URL.Path, "err", err)
		s.writeError(w, r, internalError())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(http.StatusOK)
	w.Write(append(b, '\n'))
}

// writeError sends err: an *Error as it is, anything else as an internal
// error whose details only the log sees.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var e *Error
	if !errors.As(err, &e) {
		if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
			// The client went away; nobody reads the answer.
			e = &Error{Code: http.StatusServiceUnavailable, Message: "request canceled"}
		} else {
			s.log.Error("control: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
			e = internalError()
		}
	}
	out := *e
	if out.Code < 400 || out.Code > 599 {
		out.Code = http.StatusBadRequest
	}
	b, _ := json.Marshal(&out)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(out.Code)
	w.Write(append(b, '\n'))
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }
