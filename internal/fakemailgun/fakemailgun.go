// Package fakemailgun is a fake Mailgun for tests: an httptest server that
// speaks the sending API's wire format (POST /v3/{domain}/messages as
// multipart/form-data with attachments and h:/v: fields, HTTP Basic auth
// api:<key>, JSON answers and JSON error bodies) and records every message.
//
// Failures are scripted as a queue of behaviours consumed one per send, in
// order: an error status with Mailgun's {"message": …} body, a dropped
// connection after the message was recorded (the ambiguous case), a dropped
// connection before it was (nothing sent), or a stall until the client goes
// away, after or before recording it (a sender timed out, or killed).
//
// The events API (GET /v3/{domain}/events) lists an "accepted" event per
// recorded message, filtered by message-id (without angle brackets) and
// event, paged by limit; SetEventsDown makes it fail.
//
// Everything is safe for concurrent use.
package fakemailgun

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// MaxBody is the largest request the fake reads (Mailgun's limit is 25 MB).
const MaxBody = 25 << 20

// Attachment is one file of a recorded message.
type Attachment struct {
	Field       string // "attachment" or "inline"
	FileName    string
	ContentType string // as the part declared it
	Data        []byte
}

// Message is one send as the fake received it.
type Message struct {
	ID          string              // with angle brackets, as answered
	Fields      map[string][]string // every form field: from, to, subject, text, html, h:…, v:…, o:…
	Attachments []Attachment
	Status      int // what the fake answered (0: the connection was dropped)
	Time        time.Time
}

// Get is the first value of a field, "" when absent.
func (m Message) Get(field string) string {
	if v := m.Fields[field]; len(v) > 0 {
		return v[0]
	}
	return ""
}

type behaviourKind int

const (
	kindError behaviourKind = iota + 1
	kindRecordThenDrop
	kindDrop
	kindRecordThenStall
	kindStall
)

// Behaviour is what the fake does with one send.
type Behaviour struct {
	kind       behaviourKind
	status     int
	message    string
	retryAfter string
	delay      time.Duration
}

// Error answers status with Mailgun's JSON error body {"message": message};
// nothing is recorded as sent.
func Error(status int, message string) Behaviour {
	return Behaviour{kind: kindError, status: status, message: message}
}

// TooManyRequests answers 429 with a Retry-After header (seconds; "" for none).
func TooManyRequests(retryAfter string) Behaviour {
	return Behaviour{kind: kindError, status: http.StatusTooManyRequests,
		message: "Too many requests", retryAfter: retryAfter}
}

// RecordThenDrop accepts the message (it is sent) and then drops the
// connection without an answer.
func RecordThenDrop() Behaviour { return Behaviour{kind: kindRecordThenDrop} }

// Drop drops the connection without an answer and without recording the
// message: Mailgun never took it.
func Drop() Behaviour { return Behaviour{kind: kindDrop} }

// RecordThenStall accepts the message (it is sent) and then waits d (or
// until the client goes away, or the test ends) before answering as usual:
// a timeout after Mailgun took it.
func RecordThenStall(d time.Duration) Behaviour {
	return Behaviour{kind: kindRecordThenStall, delay: d}
}

// Stall waits d (or until the client goes away, or the test ends) and then
// answers 503, without recording the message: Mailgun never took it.
func Stall(d time.Duration) Behaviour { return Behaviour{kind: kindStall, delay: d} }

// Server is a fake Mailgun for one domain and API key.
type Server struct {
	URL    string // the API root without version, for api_url
	Domain string
	APIKey string

	srv      *httptest.Server
	closing  chan struct{} // closed as the test ends: stalls give up
	mu       sync.Mutex
	script   []Behaviour
	sent     []Message // accepted messages
	attempts []Message // every well-formed, authenticated send, whatever the answer
	requests int

	eventsDown    int // status the events API answers (0: it works)
	eventsQueries []time.Time
}

// SetEventsDown makes the events API answer status (0: work again).
func (s *Server) SetEventsDown(status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.eventsDown = status
}

// EventQueries counts the requests to the events API.
func (s *Server) EventQueries() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.eventsQueries)
}

// EventQueryTimes says when each request to the events API came, in order.
func (s *Server) EventQueryTimes() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.eventsQueries...)
}

// New starts a fake for domain and apiKey, stopped when the test ends.
func New(t testing.TB, domain, apiKey string) *Server {
	s := &Server{Domain: domain, APIKey: apiKey, closing: make(chan struct{})}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	t.Cleanup(s.srv.Close)
	t.Cleanup(func() { close(s.closing) }) // before Close, which waits for stalled requests
	return s
}

// Script queues behaviours for the next sends, in order; a send with no
// behaviour queued is accepted.
func (s *Server) Script(b ...Behaviour) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.script = append(s.script, b...)
}

// Sent returns the accepted messages (a dropped connection's included).
func (s *Server) Sent() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.sent...)
}

// Attempts returns every authenticated, well-formed send in order, refused
// ones included, with the status each was answered.
func (s *Server) Attempts() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.attempts...)
}

// Requests counts every request that reached the fake.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests++
	s.mu.Unlock()

	user, pass, ok := r.BasicAuth()
	if !ok || user != "api" || subtle.ConstantTimeCompare([]byte(pass), []byte(s.APIKey)) != 1 {
		// Mailgun answers a bad key with a plain-text body.
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, "Forbidden")
		return
	}
	rest, found := strings.CutPrefix(r.URL.Path, "/v3/")
	domain, action, _ := strings.Cut(rest, "/")
	if found && action == "events" && domain == s.Domain {
		s.events(w, r)
		return
	}
	if !found || action != "messages" {
		writeJSON(w, http.StatusNotFound, map[string]string{"message": "Not Found"})
		return
	}
	if r.Method != http.MethodPost {
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"message": "Method Not Allowed"})
		return
	}
	if domain != s.Domain {
		writeJSON(w, http.StatusNotFound, map[string]string{"message": "Domain not found: " + domain})
		return
	}
	m, problem := parse(r)
	if problem != "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"message": problem})
		return
	}
	m.ID = m.Get("h:Message-Id")
	if m.ID == "" {
		m.ID = "<" + time.Now().UTC().Format("20060102150405") + "." + randomHex(8) + "@" + s.Domain + ">"
	}

	s.mu.Lock()
	var b Behaviour
	if len(s.script) > 0 {
		b, s.script = s.script[0], s.script[1:]
	}
	m.Time = time.Now()
	switch b.kind {
	case kindError:
		m.Status = b.status
	case kindDrop:
		m.Status = 0
	case kindRecordThenDrop:
		m.Status = 0
		s.sent = append(s.sent, m)
	case kindStall:
		m.Status = http.StatusServiceUnavailable
	default: // OK, RecordThenStall
		m.Status = http.StatusOK
		s.sent = append(s.sent, m)
	}
	s.attempts = append(s.attempts, m)
	s.mu.Unlock()

	switch b.kind {
	case kindError:
		if b.retryAfter != "" {
			w.Header().Set("Retry-After", b.retryAfter)
		}
		writeJSON(w, b.status, map[string]string{"message": b.message})
	case kindRecordThenDrop, kindDrop:
		drop(w)
	case kindStall:
		s.stall(r, b.delay)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"message": "Service Unavailable"})
	case kindRecordThenStall:
		s.stall(r, b.delay)
		writeJSON(w, http.StatusOK, map[string]string{"id": m.ID, "message": "Queued. Thank you."})
	default:
		writeJSON(w, http.StatusOK, map[string]string{"id": m.ID, "message": "Queued. Thank you."})
	}
}

// parse reads a send as Mailgun does: multipart/form-data (or urlencoded),
// with from, to and text or html required.
func parse(r *http.Request) (Message, string) {
	r.Body = http.MaxBytesReader(nil, r.Body, MaxBody)
	m := Message{Fields: map[string][]string{}}
	ctype, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ctype {
	case "multipart/form-data":
		if err := r.ParseMultipartForm(MaxBody); err != nil {
			return m, "invalid multipart body: " + err.Error()
		}
		for k, v := range r.MultipartForm.Value {
			m.Fields[k] = v
		}
		for _, field := range []string{"attachment", "inline"} {
			for _, fh := range r.MultipartForm.File[field] {
				f, err := fh.Open()
				if err != nil {
					return m, "unreadable attachment"
				}
				data, err := io.ReadAll(f)
				_ = f.Close()
				if err != nil {
					return m, "unreadable attachment"
				}
				m.Attachments = append(m.Attachments, Attachment{Field: field, FileName: fh.Filename,
					ContentType: fh.Header.Get("Content-Type"), Data: data})
			}
		}
	case "application/x-www-form-urlencoded":
		if err := r.ParseForm(); err != nil {
			return m, "invalid form body"
		}
		for k, v := range r.PostForm {
			m.Fields[k] = v
		}
	default:
		return m, "unsupported content type " + ctype
	}
	switch {
	case m.Get("from") == "":
		return m, "'from' parameter is missing"
	case m.Get("to") == "":
		return m, "'to' parameter is missing"
	case m.Get("text") == "" && m.Get("html") == "" && m.Get("template") == "":
		return m, "Need at least one of 'text', 'html' or 'template' parameters specified"
	}
	return m, ""
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// drop closes the connection without writing an answer.
func drop(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("fakemailgun: the server cannot hijack connections")
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(fmt.Sprintf("fakemailgun: hijack: %v", err))
	}
	_ = conn.Close()
}

// stall waits d, or until the client goes away or the test ends.
func (s *Server) stall(r *http.Request, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
	case <-s.closing:
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// events serves GET /v3/{domain}/events: one "accepted" event per recorded
// message, newest last, filtered by "message-id" (without angle brackets)
// and "event", paged by "limit" (default 100) and "page" (from 1).
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"message": "Method Not Allowed"})
		return
	}
	q := r.URL.Query()
	s.mu.Lock()
	s.eventsQueries = append(s.eventsQueries, time.Now())
	down := s.eventsDown
	sent := append([]Message(nil), s.sent...)
	s.mu.Unlock()
	if down != 0 {
		writeJSON(w, down, map[string]string{"message": "events are unavailable"})
		return
	}
	wantID := strings.Trim(q.Get("message-id"), "<>")
	wantEvent := q.Get("event")
	limit, err := strconv.Atoi(q.Get("limit"))
	if err != nil || limit <= 0 || limit > 300 {
		limit = 100
	}
	page, err := strconv.Atoi(q.Get("page"))
	if err != nil || page < 1 {
		page = 1
	}
	var items []map[string]any
	for i, m := range sent {
		id := strings.Trim(m.ID, "<>")
		if (wantID != "" && id != wantID) || (wantEvent != "" && wantEvent != "accepted") {
			continue
		}
		items = append(items, acceptedEvent(i, id, m))
	}
	from := min((page-1)*limit, len(items))
	to := min(from+limit, len(items))
	pageURL := func(n int) string {
		v := url.Values{}
		for k, vs := range q {
			v[k] = vs
		}
		v.Set("page", strconv.Itoa(n))
		return s.URL + r.URL.Path + "?" + v.Encode()
	}
	paging := map[string]string{"first": pageURL(1), "next": pageURL(page + 1)}
	if page > 1 {
		paging["previous"] = pageURL(page - 1)
	}
	out := items[from:to]
	if out == nil {
		out = []map[string]any{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": out, "paging": paging})
}

// acceptedEvent is the events API's record of one taken message. Empty
// user variables are [], as Mailgun sends them.
func acceptedEvent(i int, id string, m Message) map[string]any {
	var vars any = []any{}
	v := map[string]string{}
	for k := range m.Fields {
		if name, ok := strings.CutPrefix(k, "v:"); ok {
			v[name] = m.Get(k)
		}
	}
	if len(v) > 0 {
		vars = v
	}
	return map[string]any{
		"event":     "accepted",
		"id":        fmt.Sprintf("ev%06d%s", i, randomHex(4)),
		"timestamp": float64(m.Time.UnixMicro()) / 1e6,
		"recipient": m.Get("to"),
		"message": map[string]any{"headers": map[string]string{
			"message-id": id, "from": m.Get("from"), "to": m.Get("to"), "subject": m.Get("subject"),
		}},
		"user-variables": vars,
	}
}
