package control

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

// FuzzServe feeds arbitrary HTTP requests to the control API's handler:
// no panic escapes, every answer is a known status with a JSON body, and
// an error answer is an Error.
func FuzzServe(f *testing.F) {
	for _, seed := range []string{
		"GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /v1/messages?folder=INBOX&limit=3 HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /v1/messages/0123456789abcdef?raw=true HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /v1/send?to=bob@example.org HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\nFrom: a\r\n",
		"POST /v1/send?to=a&to=a&to= HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
		"GET /v1/contacts/bob@example.org HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /v1/contacts/bob@example.org/block?reason=%00 HTTP/1.1\r\nHost: x\r\n\r\n",
		"DELETE /v1/outbox?x=1 HTTP/1.1\r\nHost: x\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	s := NewServer(&fakeBackend{}, nil)
	f.Fuzz(func(t *testing.T, raw []byte) {
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
		if err != nil {
			return
		}
		rec := httptest.NewRecorder()
		s.http.Handler.ServeHTTP(rec, req)
		if rec.Code < 200 || rec.Code > 599 {
			t.Fatalf("status %d", rec.Code)
		}
		// Request targets not in origin form ("*") are net/http's own
		// business: it answers them before the API's routes.
		if rec.Code >= 400 && len(req.URL.Path) > 0 && req.URL.Path[0] == '/' {
			var e Error
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Message == "" {
				t.Fatalf("error answer %d is not an Error: %q", rec.Code, rec.Body.Bytes())
			}
		}
	})
}

// FuzzDecodeJSON: the client's response decoder takes any bytes without
// panicking and never accepts more than its limit.
func FuzzDecodeJSON(f *testing.F) {
	f.Add([]byte(`{"version":"1","fingerprint":"ab"}`))
	f.Add([]byte(`{"message":"x","hint":"y","code":404}{}`))
	f.Add([]byte(`[1,2,3]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var st Status
		err := decodeJSON(bytes.NewReader(b), 64, &st)
		if err == nil && len(bytes.TrimSpace(b)) > 64 {
			t.Fatalf("accepted %d bytes over a 64-byte limit", len(b))
		}
	})
}
