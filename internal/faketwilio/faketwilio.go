// Package faketwilio is a fake Twilio for tests: an httptest server that
// speaks the Messages API's real wire format (form posts with HTTP Basic
// auth, snake_case JSON answers, Twilio's JSON error bodies, the paged
// message list), serves media behind Basic auth that redirects to a second
// host (the "CDN"), and signs webhooks exactly as Twilio does.
//
// Failures are scripted per endpoint as a queue of behaviours consumed one
// per request, in order: a Twilio error, a 429, an HTML 503 from a proxy
// (each with any Retry-After, see WithRetryAfter), a stall, or a dropped
// connection with or without the message recorded (the ambiguous case a
// sender must reconcile).
//
// Everything is safe for concurrent use.
package faketwilio

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// APIVersion is the Messages API version in every path and payload.
const APIVersion = "2010-04-01"

// Endpoint names what a request was for, to script behaviours and count.
type Endpoint int

const (
	// Create is POST /2010-04-01/Accounts/{sid}/Messages.json.
	Create Endpoint = iota + 1
	// List is GET /2010-04-01/Accounts/{sid}/Messages.json.
	List
	// Fetch is GET /2010-04-01/Accounts/{sid}/Messages/{MessageSid}.json.
	Fetch
	// Media is GET /media/{name} on the API host (before the redirect).
	Media
	// Other is any request to a path the fake does not serve (404 20404).
	Other
)

func (e Endpoint) String() string {
	switch e {
	case Create:
		return "create"
	case List:
		return "list"
	case Fetch:
		return "fetch"
	case Media:
		return "media"
	case Other:
		return "other"
	}
	return "Endpoint(" + strconv.Itoa(int(e)) + ")"
}

type behaviourKind int

const (
	kindOK behaviourKind = iota
	kindError
	kindRaw
	kindRecordThenDrop
	kindDrop
	kindRecordThenStall
	kindStall
)

// Behaviour is what the fake does with one request. The zero value (and
// OK()) is Twilio's normal behaviour.
type Behaviour struct {
	kind        behaviourKind
	status      int
	code        int
	message     string
	body        string
	contentType string
	delay       time.Duration
	// retryAfter replaces the Retry-After header of the answer when
	// retryAfterSet ("" sends none).
	retryAfter    string
	retryAfterSet bool
}

// WithRetryAfter makes the answer of an Error, Raw or Stall behaviour carry
// "Retry-After: value" as given (seconds, an HTTP-date, or garbage to test
// a client's parsing); "" sends no Retry-After at all. Without it only a
// 429 carries one, "1".
func (b Behaviour) WithRetryAfter(value string) Behaviour {
	b.retryAfter, b.retryAfterSet = value, true
	return b
}

// Name describes the behaviour (it is kept in the request log).
func (b Behaviour) Name() string {
	name := b.baseName()
	if b.retryAfterSet {
		name += " retry-after=" + strconv.Quote(b.retryAfter)
	}
	return name
}

func (b Behaviour) baseName() string {
	switch b.kind {
	case kindOK:
		return "ok"
	case kindError:
		return fmt.Sprintf("error %d/%d", b.status, b.code)
	case kindRaw:
		return fmt.Sprintf("raw %d %s", b.status, b.contentType)
	case kindRecordThenDrop:
		return "record-then-drop"
	case kindDrop:
		return "drop"
	case kindRecordThenStall:
		return "record-then-stall " + b.delay.String()
	case kindStall:
		return "stall " + b.delay.String()
	}
	return "unknown"
}

// OK answers as Twilio normally does.
func OK() Behaviour { return Behaviour{} }

// Error answers with Twilio's JSON error body
// {"code":…,"message":…,"more_info":…,"status":…}. A zero status or an
// empty message takes Twilio's usual one for the code (see ErrorStatus).
func Error(code int, status int, message string) Behaviour {
	if status == 0 {
		status = ErrorStatus(code)
	}
	if message == "" {
		message = errorMessages[code]
	}
	if message == "" {
		message = "Error " + strconv.Itoa(code)
	}
	return Behaviour{kind: kindError, status: status, code: code, message: message}
}

// Code answers with Twilio's error for code, with its usual status and message.
func Code(code int) Behaviour { return Error(code, 0, "") }

// Throttled is a 429 with code 20429 ("Too Many Requests"), which Twilio
// documents as never processed.
func Throttled() Behaviour { return Code(20429) }

// HTML answers status with an HTML page, as a proxy or load balancer in
// front of Twilio does: not JSON, so no Twilio error code.
func HTML(status int) Behaviour {
	text := strconv.Itoa(status) + " " + http.StatusText(status)
	return Raw(status, "text/html; charset=utf-8",
		"<html><head><title>"+text+"</title></head><body><center><h1>"+text+"</h1></center></body></html>\n")
}

// ServiceUnavailableHTML is a 503 with an HTML body.
func ServiceUnavailableHTML() Behaviour { return HTML(http.StatusServiceUnavailable) }

// Raw answers status with body as it is.
func Raw(status int, contentType, body string) Behaviour {
	return Behaviour{kind: kindRaw, status: status, contentType: contentType, body: body}
}

// RecordThenDrop processes the request as usual (the message is created)
// and then closes the connection without answering: the sender cannot know
// whether its message was sent.
func RecordThenDrop() Behaviour { return Behaviour{kind: kindRecordThenDrop} }

// Drop reads the request and closes the connection without answering and
// without creating anything.
func Drop() Behaviour { return Behaviour{kind: kindDrop} }

// RecordThenStall creates the message and then waits d (or until the
// client goes away) before answering: a timeout after Twilio acted.
func RecordThenStall(d time.Duration) Behaviour {
	return Behaviour{kind: kindRecordThenStall, delay: d}
}

// Stall waits d (or until the client goes away) and then answers 503 HTML,
// without creating anything.
func Stall(d time.Duration) Behaviour { return Behaviour{kind: kindStall, delay: d} }

// ErrorStatus is the HTTP status Twilio answers with for an error code.
func ErrorStatus(code int) int {
	switch code {
	case 20003:
		return http.StatusUnauthorized
	case 20404:
		return http.StatusNotFound
	case 20429:
		return http.StatusTooManyRequests
	case 20500:
		return http.StatusInternalServerError
	case 20503:
		return http.StatusServiceUnavailable
	}
	return http.StatusBadRequest
}

// errorMessages are Twilio's wordings for the codes a sender meets.
var errorMessages = map[int]string{
	20003: "Authenticate",
	20404: "The requested resource was not found",
	20429: "Too Many Requests",
	20500: "Internal Server Error",
	20503: "Service Unavailable",
	21211: "Invalid 'To' Phone Number",
	21408: "Permission to send an SMS has not been enabled for the region indicated by the 'To' number",
	21602: "Message body is required.",
	21603: "A 'From' or 'MessagingServiceSid' parameter is required to send a message.",
	21604: "A 'To' phone number is required.",
	21606: "The 'From' phone number provided is not a valid message-capable Twilio phone number for this destination/account",
	21608: "The number is unverified. Trial accounts may only send messages to verified numbers.",
	21609: "Invalid StatusCallback",
	21610: "Attempt to send to unsubscribed recipient",
	21611: "This 'From' number has exceeded the maximum number of queued messages",
	21612: "The 'To' phone number is not currently reachable via SMS",
	21614: "'To' number is not a valid mobile number",
	21617: "The concatenated message body exceeds the 1600 character limit.",
	21620: "Invalid media URL(s)",
	21623: "Number of media files exceeds allowed limit",
	21635: "The 'To' number is a landline and cannot receive SMS",
	21910: "Invalid From and To pair. From and To should be of the same channel",
	63016: "Failed to send freeform message because you are outside the allowed window. If you are using WhatsApp, please use a Message Template.",
}

// MoreInfo is the documentation link Twilio puts in an error body.
func MoreInfo(code int) string { return "https://www.twilio.com/docs/errors/" + strconv.Itoa(code) }

// ErrorBody is Twilio's JSON error, in Twilio's field order.
type ErrorBody struct {
	Code     int    `json:"code"`
	Message  string `json:"message"`
	MoreInfo string `json:"more_info"`
	Status   int    `json:"status"`
}

// Message is one message the fake created.
type Message struct {
	SID                 string
	AccountSID          string
	To                  string
	From                string // as posted; empty for a Messaging Service send
	MessagingServiceSID string
	Body                string
	MediaURLs           []string
	PersistentActions   []string
	StatusCallback      string
	Status              string
	ErrorCode           int // 0: none
	DateCreated         time.Time
	DateUpdated         time.Time
	DateSent            time.Time // zero until the status moves past queued
	Form                url.Values
}

func (m Message) clone() Message {
	m.MediaURLs = slices.Clone(m.MediaURLs)
	m.PersistentActions = slices.Clone(m.PersistentActions)
	c := url.Values{}
	for k, v := range m.Form {
		c[k] = slices.Clone(v)
	}
	m.Form = c
	return m
}

// Request is one request the fake received on the API host.
type Request struct {
	Endpoint   Endpoint
	Method     string
	Path       string
	Query      url.Values
	Form       url.Values // posted fields (create)
	Authorized bool       // Basic auth matched the account
	UserAgent  string
	Behaviour  string // what the fake did (Behaviour.Name)
}

// CDNRequest is one request the media CDN (the redirect target) received.
type CDNRequest struct {
	Path string
	// Authorization is the header as received: it must be empty, because a
	// client must not carry Twilio credentials to another host.
	Authorization string
}

type mediaFile struct {
	contentType string
	body        []byte
}

// Server is the fake. URL is the API root to give a client as its base URL
// (http://127.0.0.1:port); CDNURL is the second host media redirects to
// (http://localhost:port, a different host name).
type Server struct {
	AccountSID string
	AuthToken  string
	URL        string
	CDNURL     string
	// ServiceFrom is the number Twilio picks for a Messaging Service send;
	// it shows in the message list (the create answer has "from": null).
	ServiceFrom string

	api *httptest.Server
	cdn *httptest.Server

	mu       sync.Mutex
	now      func() time.Time
	messages []Message
	requests []Request
	scripts  map[Endpoint][]Behaviour
	fallback map[Endpoint]Behaviour
	media    map[string]mediaFile
	cdnLog   []CDNRequest
	optedOut map[string]bool
	rewrite  func(body string) string
}

// New starts a fake for one account; it is closed when tb ends. accountSID
// and authToken must be letters and digits (twilio-go refuses anything
// else before sending).
func New(tb testing.TB, accountSID, authToken string) *Server {
	tb.Helper()
	s := Start(accountSID, authToken)
	tb.Cleanup(s.Close)
	return s
}

// Start starts a fake; the caller closes it.
func Start(accountSID, authToken string) *Server {
	s := &Server{
		AccountSID:  accountSID,
		AuthToken:   authToken,
		ServiceFrom: "+15550009999",
		now:         time.Now,
		scripts:     map[Endpoint][]Behaviour{},
		fallback:    map[Endpoint]Behaviour{},
		media:       map[string]mediaFile{},
		optedOut:    map[string]bool{},
	}
	s.cdn = httptest.NewServer(http.HandlerFunc(s.serveCDN))
	s.CDNURL = strings.Replace(s.cdn.URL, "127.0.0.1", "localhost", 1)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /2010-04-01/Accounts/{account}/Messages.json", s.serveCreate)
	mux.HandleFunc("GET /2010-04-01/Accounts/{account}/Messages.json", s.serveList)
	mux.HandleFunc("GET /2010-04-01/Accounts/{account}/Messages/{file}", s.serveFetch)
	mux.HandleFunc("GET /media/{name}", s.serveMedia)
	mux.HandleFunc("/", s.serveOther)
	s.api = httptest.NewServer(s.datedByItsClock(mux))
	s.URL = s.api.URL
	return s
}

// Close shuts both servers down.
func (s *Server) Close() {
	s.api.CloseClientConnections()
	s.cdn.CloseClientConnections()
	s.api.Close()
	s.cdn.Close()
}

// SetNow sets the fake's clock (date_created and friends).
func (s *Server) SetNow(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

// SetBodyRewrite makes the fake keep rewrite(body) for each message, as
// Twilio does: a trial account prefixes its notice, a Messaging Service's
// Smart Encoding swaps curly quotes and dashes for GSM-7 look-alikes.
func (s *Server) SetBodyRewrite(rewrite func(body string) string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rewrite = rewrite
}

// Script queues behaviours for the next requests to ep, one per request.
func (s *Server) Script(ep Endpoint, bs ...Behaviour) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.scripts[ep] = append(s.scripts[ep], bs...)
}

// Always sets what ep does once its queue is empty (OK() restores Twilio's
// normal behaviour).
func (s *Server) Always(ep Endpoint, b Behaviour) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fallback[ep] = b
}

// Pending is the number of scripted behaviours not yet consumed for ep.
func (s *Server) Pending(ep Endpoint) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.scripts[ep])
}

// OptOut makes creates to number (as posted in To) fail with 21610, as
// Twilio does after the contact replied STOP.
func (s *Server) OptOut(number string, out bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.optedOut[number] = out
}

// Messages returns copies of the messages created, oldest first.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Message, len(s.messages))
	for i, m := range s.messages {
		out[i] = m.clone()
	}
	return out
}

// Message returns a copy of the message with sid.
func (s *Server) Message(sid string) (Message, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.messages {
		if m.SID == sid {
			return m.clone(), true
		}
	}
	return Message{}, false
}

// SetStatus moves a message to status (as Twilio does when the carrier
// reports), with an error code for failed/undelivered (0 for none).
func (s *Server) SetStatus(sid, status string, errorCode int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.messages {
		m := &s.messages[i]
		if m.SID != sid {
			continue
		}
		now := s.now()
		m.Status, m.ErrorCode, m.DateUpdated = status, errorCode, now
		if m.DateSent.IsZero() && status != "queued" && status != "accepted" && status != "scheduled" {
			m.DateSent = now
		}
		return true
	}
	return false
}

// Requests is the number of requests the API host received.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.requests)
}

// Count is the number of requests the API host received for ep.
func (s *Server) Count(ep Endpoint) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.requests {
		if r.Endpoint == ep {
			n++
		}
	}
	return n
}

// RequestLog returns copies of the requests the API host received.
func (s *Server) RequestLog() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// CDNRequests returns the requests the media CDN received.
func (s *Server) CDNRequests() []CDNRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.cdnLog)
}

// CDNSawAuthorization reports whether any request to the CDN carried an
// Authorization header (it must not: the credentials are Twilio's).
func (s *Server) CDNSawAuthorization() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.cdnLog {
		if r.Authorization != "" {
			return true
		}
	}
	return false
}

// Reset forgets messages, requests, scripts, media and opt-outs.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.messages, s.requests, s.cdnLog = nil, nil, nil
	s.scripts = map[Endpoint][]Behaviour{}
	s.fallback = map[Endpoint]Behaviour{}
	s.media = map[string]mediaFile{}
	s.optedOut = map[string]bool{}
}

// AddMedia stores a media file and returns its Twilio URL (on the API
// host, behind Basic auth, redirecting to the CDN).
func (s *Server) AddMedia(name, contentType string, body []byte) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.media[name] = mediaFile{contentType: contentType, body: slices.Clone(body)}
	return s.URL + "/media/" + url.PathEscape(name)
}

// NewSID returns a new SID: prefix and 32 lower-case hex digits.
func NewSID(prefix string) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// FormatDate formats t as Twilio does in JSON: RFC 1123 with a numeric
// zone, in UTC ("Mon, 22 Nov 2026 03:00:00 +0000").
func FormatDate(t time.Time) string { return t.UTC().Format(time.RFC1123Z) }

// ---- API host ----

// next pops the behaviour for one request to ep and logs the request.
func (s *Server) next(ep Endpoint, r *http.Request, form url.Values, authorized bool) Behaviour {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.fallback[ep]
	if q := s.scripts[ep]; len(q) > 0 {
		b, s.scripts[ep] = q[0], q[1:]
	}
	s.requests = append(s.requests, Request{
		Endpoint: ep, Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Form: form,
		Authorized: authorized, UserAgent: r.UserAgent(), Behaviour: b.Name(),
	})
	return b
}

func (s *Server) authorized(r *http.Request) bool {
	user, pass, ok := r.BasicAuth()
	return ok && subtle.ConstantTimeCompare([]byte(user), []byte(s.AccountSID)) == 1 &&
		subtle.ConstantTimeCompare([]byte(pass), []byte(s.AuthToken)) == 1
}

// WriteError writes Twilio's JSON error body; a 429 carries "Retry-After: 1".
func WriteError(w http.ResponseWriter, status, code int, message string) {
	if status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "1")
	}
	writeErrorBody(w, status, code, message)
}

func writeErrorBody(w http.ResponseWriter, status, code int, message string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Twilio-Request-Id", NewSID("RQ"))
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(ErrorBody{Code: code, Message: message, MoreInfo: MoreInfo(code), Status: status})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Twilio-Request-Id", NewSID("RQ"))
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// apply carries out a failure behaviour; it reports false for behaviours
// that let the request be processed (OK, RecordThen…).
func apply(w http.ResponseWriter, r *http.Request, b Behaviour) bool {
	switch b.kind {
	case kindError:
		if !b.retryAfterSet {
			WriteError(w, b.status, b.code, b.message)
			break
		}
		b.setRetryAfter(w.Header())
		writeErrorBody(w, b.status, b.code, b.message)
	case kindRaw:
		b.setRetryAfter(w.Header())
		w.Header().Set("Content-Type", b.contentType)
		w.WriteHeader(b.status)
		_, _ = io.WriteString(w, b.body)
	case kindDrop:
		drop(w)
	case kindStall:
		stall(r, b.delay)
		raw := HTML(http.StatusServiceUnavailable)
		b.setRetryAfter(w.Header())
		w.Header().Set("Content-Type", raw.contentType)
		w.WriteHeader(raw.status)
		_, _ = io.WriteString(w, raw.body)
	default:
		return false
	}
	return true
}

// setRetryAfter puts the scripted Retry-After on h, if one was scripted.
func (b Behaviour) setRetryAfter(h http.Header) {
	switch {
	case !b.retryAfterSet:
	case b.retryAfter == "":
		h.Del("Retry-After")
	default:
		h.Set("Retry-After", b.retryAfter)
	}
}

// applyRead is apply for endpoints that create nothing: RecordThenDrop
// drops, RecordThenStall stalls and then answers normally.
func applyRead(w http.ResponseWriter, r *http.Request, b Behaviour) bool {
	switch b.kind {
	case kindRecordThenDrop:
		drop(w)
		return true
	case kindRecordThenStall:
		stall(r, b.delay)
		return false
	}
	return apply(w, r, b)
}

// drop closes the connection without an answer.
func drop(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("faketwilio: connection cannot be hijacked")
	}
	conn, _, err := hj.Hijack()
	if err == nil {
		_ = conn.Close()
	}
}

func stall(r *http.Request, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
	}
}

var (
	e164Pattern    = regexp.MustCompile(`^\+[1-9][0-9]{1,14}$`)
	channelPattern = regexp.MustCompile(`^[a-z]+:`)
)

const maxForm = 1 << 20

func (s *Server) serveCreate(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	parseErr := r.ParseForm()
	form := r.PostForm
	ok := s.authorized(r)
	b := s.next(Create, r, form, ok)
	if apply(w, r, b) {
		return
	}
	if !ok {
		unauthorized(w)
		return
	}
	if r.PathValue("account") != s.AccountSID {
		notFound(w, r)
		return
	}
	if parseErr != nil || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		WriteError(w, http.StatusBadRequest, 20001, "Invalid request body")
		return
	}
	if code, msg := s.validate(form); code != 0 {
		WriteError(w, ErrorStatus(code), code, msg)
		return
	}
	m := s.record(form)
	switch b.kind {
	case kindRecordThenDrop:
		drop(w)
		return
	case kindRecordThenStall:
		stall(r, b.delay)
	}
	writeJSON(w, http.StatusCreated, s.wire(m))
}

// validate checks a create as Twilio does; it returns an error code and
// message, or 0.
func (s *Server) validate(f url.Values) (int, string) {
	to, from, svc := f.Get("To"), f.Get("From"), f.Get("MessagingServiceSid")
	switch {
	case to == "":
		return 21604, errorMessages[21604]
	case from == "" && svc == "":
		return 21603, errorMessages[21603]
	case !e164Pattern.MatchString(channelPattern.ReplaceAllString(to, "")):
		return 21211, "Invalid 'To' Phone Number: " + to
	case from != "" && channelPattern.FindString(from) != channelPattern.FindString(to):
		return 21910, errorMessages[21910]
	case f.Get("Body") == "" && len(f["MediaUrl"]) == 0 && f.Get("ContentSid") == "":
		return 21602, errorMessages[21602]
	case utf8.RuneCountInString(f.Get("Body")) > 1600:
		return 21617, errorMessages[21617]
	case len(f["MediaUrl"]) > 10:
		return 21623, errorMessages[21623]
	}
	for _, u := range f["MediaUrl"] {
		if !absoluteHTTP(u) {
			return 21620, errorMessages[21620]
		}
	}
	if cb := f.Get("StatusCallback"); cb != "" && !absoluteHTTP(cb) {
		return 21609, errorMessages[21609]
	}
	s.mu.Lock()
	out := s.optedOut[to]
	s.mu.Unlock()
	if out {
		return 21610, errorMessages[21610]
	}
	return 0, ""
}

func absoluteHTTP(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

func (s *Server) record(f url.Values) Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	prefix := "SM"
	if len(f["MediaUrl"]) > 0 {
		prefix = "MM"
	}
	status := "queued"
	if f.Get("From") == "" {
		status = "accepted"
	}
	body := f.Get("Body")
	if s.rewrite != nil {
		body = s.rewrite(body)
	}
	m := Message{
		SID: NewSID(prefix), AccountSID: s.AccountSID,
		To: f.Get("To"), From: f.Get("From"), MessagingServiceSID: f.Get("MessagingServiceSid"),
		Body: body, MediaURLs: f["MediaUrl"], PersistentActions: f["PersistentAction"],
		StatusCallback: f.Get("StatusCallback"), Status: status,
		DateCreated: now, DateUpdated: now,
	}
	m.Form = url.Values{}
	for k, v := range f {
		m.Form[k] = slices.Clone(v)
	}
	m = m.clone()
	s.messages = append(s.messages, m)
	return m.clone()
}

// WireMessage is a message as Twilio's JSON shows it (snake_case, nulls).
type WireMessage struct {
	AccountSID          string            `json:"account_sid"`
	APIVersion          string            `json:"api_version"`
	Body                string            `json:"body"`
	DateCreated         string            `json:"date_created"`
	DateSent            *string           `json:"date_sent"`
	DateUpdated         string            `json:"date_updated"`
	Direction           string            `json:"direction"`
	ErrorCode           *int              `json:"error_code"`
	ErrorMessage        *string           `json:"error_message"`
	From                *string           `json:"from"`
	MessagingServiceSID *string           `json:"messaging_service_sid"`
	NumMedia            string            `json:"num_media"`
	NumSegments         string            `json:"num_segments"`
	Price               *string           `json:"price"`
	PriceUnit           string            `json:"price_unit"`
	SID                 string            `json:"sid"`
	Status              string            `json:"status"`
	SubresourceURIs     map[string]string `json:"subresource_uris"`
	To                  string            `json:"to"`
	URI                 string            `json:"uri"`
}

// wire renders m. A Messaging Service send shows "from": null until
// Twilio picks a sender (status accepted), then ServiceFrom.
func (s *Server) wire(m Message) WireMessage {
	base := "/" + APIVersion + "/Accounts/" + m.AccountSID + "/Messages/" + m.SID
	w := WireMessage{
		AccountSID: m.AccountSID, APIVersion: APIVersion, Body: m.Body,
		DateCreated: FormatDate(m.DateCreated), DateUpdated: FormatDate(m.DateUpdated),
		Direction: "outbound-api", NumMedia: strconv.Itoa(len(m.MediaURLs)),
		NumSegments: strconv.Itoa(segments(m.Body)), PriceUnit: "USD",
		SID: m.SID, Status: m.Status, To: m.To, URI: base + ".json",
		SubresourceURIs: map[string]string{"media": base + "/Media.json", "feedback": base + "/Feedback.json"},
	}
	if !m.DateSent.IsZero() {
		d := FormatDate(m.DateSent)
		w.DateSent = &d
	}
	if m.ErrorCode != 0 {
		c := m.ErrorCode
		w.ErrorCode = &c
	}
	switch {
	case m.From != "":
		f := m.From
		w.From = &f
	case m.Status != "accepted":
		f := s.ServiceFrom
		w.From = &f
	}
	if m.MessagingServiceSID != "" {
		v := m.MessagingServiceSID
		w.MessagingServiceSID = &v
		if m.From == "" {
			w.NumSegments = "0" // no sender chosen yet
		}
	}
	return w
}

// segments estimates the SMS segments of body (GSM-7 160/153, else UCS-2 70/67).
func segments(body string) int {
	n := utf8.RuneCountInString(body)
	single, multi := 160, 153
	for _, r := range body {
		if r > 0x7e || (r < 0x20 && r != '\n' && r != '\r') {
			single, multi = 70, 67
			break
		}
	}
	if n <= single {
		return 1
	}
	return (n + multi - 1) / multi
}

// ListPage is Twilio's paged message list.
type ListPage struct {
	End             int           `json:"end"`
	FirstPageURI    string        `json:"first_page_uri"`
	Messages        []WireMessage `json:"messages"`
	NextPageURI     *string       `json:"next_page_uri"`
	Page            int           `json:"page"`
	PageSize        int           `json:"page_size"`
	PreviousPageURI *string       `json:"previous_page_uri"`
	Start           int           `json:"start"`
	URI             string        `json:"uri"`
}

func (s *Server) serveList(w http.ResponseWriter, r *http.Request) {
	if s.refusedRead(w, r, List) {
		return
	}
	if r.PathValue("account") != s.AccountSID {
		notFound(w, r)
		return
	}
	q := r.URL.Query()
	size := 50
	if v := q.Get("PageSize"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			WriteError(w, http.StatusBadRequest, 20001, "Invalid PageSize")
			return
		}
		size = n
	}
	page := 0
	if v := q.Get("Page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			WriteError(w, http.StatusBadRequest, 20001, "Invalid Page")
			return
		}
		page = n
	}
	sentOn, errOn := dateFilter(q.Get("DateSent"))
	sentAfter, errAfter := dateFilter(q.Get("DateSent>"))
	sentBefore, errBefore := dateFilter(q.Get("DateSent<"))
	if errOn != nil || errAfter != nil || errBefore != nil {
		WriteError(w, http.StatusBadRequest, 20001, "Invalid DateSent")
		return
	}

	s.mu.Lock()
	var all []WireMessage
	for i := len(s.messages) - 1; i >= 0; i-- { // newest first
		m := s.messages[i]
		wm := s.wire(m)
		if to := q.Get("To"); to != "" && m.To != to {
			continue
		}
		if from := q.Get("From"); from != "" && (wm.From == nil || *wm.From != from) {
			continue
		}
		if !sentOn.IsZero() || !sentAfter.IsZero() || !sentBefore.IsZero() {
			if m.DateSent.IsZero() { // not sent yet: no date_sent to match
				continue
			}
			day := m.DateSent.UTC().Truncate(24 * time.Hour)
			if (!sentOn.IsZero() && !day.Equal(sentOn.Truncate(24*time.Hour))) ||
				(!sentAfter.IsZero() && m.DateSent.Before(sentAfter)) ||
				(!sentBefore.IsZero() && m.DateSent.After(sentBefore)) {
				continue
			}
		}
		all = append(all, wm)
	}
	s.mu.Unlock()

	pageURI := func(p int) string {
		v := url.Values{}
		for _, k := range []string{"To", "From", "DateSent", "DateSent>", "DateSent<"} {
			if q.Get(k) != "" {
				v.Set(k, q.Get(k))
			}
		}
		v.Set("PageSize", strconv.Itoa(size))
		v.Set("Page", strconv.Itoa(p))
		if p > 0 {
			v.Set("PageToken", "PASM"+strconv.Itoa(p*size))
		}
		return "/" + APIVersion + "/Accounts/" + s.AccountSID + "/Messages.json?" + v.Encode()
	}
	start := min(page*size, len(all))
	end := min(start+size, len(all))
	out := ListPage{
		Messages: all[start:end], Page: page, PageSize: size, Start: start, End: max(end-1, start),
		FirstPageURI: pageURI(0), URI: pageURI(page),
	}
	if out.Messages == nil {
		out.Messages = []WireMessage{}
	}
	if end < len(all) {
		n := pageURI(page + 1)
		out.NextPageURI = &n
	}
	if page > 0 {
		p := pageURI(page - 1)
		out.PreviousPageURI = &p
	}
	writeJSON(w, http.StatusOK, out)
}

// dateFilter parses a DateSent filter: a date (YYYY-MM-DD) or, as
// twilio-go sends it, RFC 3339.
func dateFilter(v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t, nil
	}
	return time.Parse(time.RFC3339, v)
}

// refusedRead reports whether a read request was answered already: by the
// script of its kind, or with 401 for bad credentials.
func (s *Server) refusedRead(w http.ResponseWriter, r *http.Request, ep Endpoint) bool {
	ok := s.authorized(r)
	if applyRead(w, r, s.next(ep, r, nil, ok)) {
		return true
	}
	if !ok {
		unauthorized(w)
	}
	return !ok
}

func unauthorized(w http.ResponseWriter) {
	WriteError(w, http.StatusUnauthorized, 20003, errorMessages[20003])
}

func notFound(w http.ResponseWriter, r *http.Request) {
	WriteError(w, http.StatusNotFound, 20404, "The requested resource "+r.URL.Path+" was not found")
}

func (s *Server) serveFetch(w http.ResponseWriter, r *http.Request) {
	if s.refusedRead(w, r, Fetch) {
		return
	}
	sid, isJSON := strings.CutSuffix(r.PathValue("file"), ".json")
	m, found := s.Message(sid)
	if !isJSON || !found || r.PathValue("account") != s.AccountSID {
		notFound(w, r)
		return
	}
	s.mu.Lock()
	wm := s.wire(m)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, wm)
}

func (s *Server) serveMedia(w http.ResponseWriter, r *http.Request) {
	if s.refusedRead(w, r, Media) {
		return
	}
	name := r.PathValue("name")
	s.mu.Lock()
	_, found := s.media[name]
	s.mu.Unlock()
	if !found {
		notFound(w, r)
		return
	}
	expires := strconv.FormatInt(s.clock().Add(4*time.Hour).Unix(), 10)
	sig := hex.EncodeToString(hmacSHA1(s.AuthToken, name+expires))[:16]
	http.Redirect(w, r, s.CDNURL+"/cdn/"+url.PathEscape(name)+"?Expires="+expires+"&Signature="+sig, http.StatusFound)
}

// datedByItsClock sets each answer's Date header from the fake's clock,
// as Twilio's come from the clock that sets date_created.
func (s *Server) datedByItsClock(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Date", s.clock().UTC().Format(http.TimeFormat))
		next.ServeHTTP(w, r)
	})
}

func (s *Server) clock() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.now()
}

func (s *Server) serveOther(w http.ResponseWriter, r *http.Request) {
	if applyRead(w, r, s.next(Other, r, nil, s.authorized(r))) {
		return
	}
	notFound(w, r)
}

// ---- CDN host ----

func (s *Server) serveCDN(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.cdnLog = append(s.cdnLog, CDNRequest{Path: r.URL.Path, Authorization: r.Header.Get("Authorization")})
	name, isCDN := strings.CutPrefix(r.URL.Path, "/cdn/")
	f, found := s.media[name]
	s.mu.Unlock()
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if !isCDN || !found || r.URL.Query().Get("Signature") == "" {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusForbidden)
		_, _ = io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>`)
		return
	}
	w.Header().Set("Content-Type", f.contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(f.body)))
	w.Header().Set("Cache-Control", "max-age=14400")
	if r.Method == http.MethodGet {
		_, _ = w.Write(f.body)
	}
}

// ---- signatures and webhooks ----

func hmacSHA1(key, data string) []byte {
	mac := hmac.New(sha1.New, []byte(key))
	mac.Write([]byte(data))
	return mac.Sum(nil)
}

// Signature is X-Twilio-Signature for a form POST to fullURL (scheme, host,
// port if any, path and query exactly as configured at Twilio): base64 of
// HMAC-SHA1, keyed with the auth token, over the URL followed by each
// parameter's name and value, names sorted (and a repeated name's values
// sorted, as Twilio's helper libraries do).
func Signature(authToken, fullURL string, params url.Values) string {
	var b strings.Builder
	b.WriteString(fullURL)
	names := make([]string, 0, len(params))
	for k := range params {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		vs := slices.Clone(params[k])
		sort.Strings(vs)
		for _, v := range vs {
			b.WriteString(k)
			b.WriteString(v)
		}
	}
	return base64.StdEncoding.EncodeToString(hmacSHA1(authToken, b.String()))
}

// SignedRequest builds a server-side request (for a handler's ServeHTTP)
// that Twilio would send to fullURL with params, signed with authToken.
func SignedRequest(authToken, fullURL string, params url.Values) *http.Request {
	r := httptest.NewRequest(http.MethodPost, fullURL, strings.NewReader(params.Encode()))
	setWebhookHeaders(r.Header, Signature(authToken, fullURL, params))
	return r
}

// SignedRequest is SignedRequest with the fake's auth token.
func (s *Server) SignedRequest(fullURL string, params url.Values) *http.Request {
	return SignedRequest(s.AuthToken, fullURL, params)
}

// NewSignedClientRequest builds a client request (for http.Client.Do) that
// goes to target but is signed for signedURL, the public URL Twilio was
// given (the server behind a proxy sees another host).
func NewSignedClientRequest(authToken, signedURL, target string, params url.Values) (*http.Request, error) {
	r, err := http.NewRequest(http.MethodPost, target, strings.NewReader(params.Encode()))
	if err != nil {
		return nil, err
	}
	setWebhookHeaders(r.Header, Signature(authToken, signedURL, params))
	return r, nil
}

func setWebhookHeaders(h http.Header, sig string) {
	h.Set("Content-Type", "application/x-www-form-urlencoded")
	h.Set("X-Twilio-Signature", sig)
	h.Set("I-Twilio-Idempotency-Token", NewSID("")[:32])
	h.Set("User-Agent", "TwilioProxy/1.1")
	h.Set("Accept", "*/*")
}

// InboundMedia is one media item of an inbound message.
type InboundMedia struct {
	URL         string
	ContentType string
}

// Inbound describes a message a contact sends; InboundForm turns it into
// the fields Twilio posts to the number's "A message comes in" URL.
type Inbound struct {
	MessageSID  string // default: a new SM… (MM… with media)
	From, To    string // E.164; WhatsApp adds the "whatsapp:" prefix
	WhatsApp    bool
	Body        string
	Media       []InboundMedia
	ProfileName string // WhatsApp
	FromCountry string // default "US" for SMS
	// WhatsApp location share.
	Latitude, Longitude, Address, Label string
	// WhatsApp button reply.
	ButtonText, ButtonPayload string
	// OptOutType is set by Advanced Opt-Out: STOP, START or HELP.
	OptOutType string
	// Extra fields are added (or replace the built ones).
	Extra url.Values
}

// InboundForm is the form Twilio posts for an inbound message.
func InboundForm(accountSID string, in Inbound) url.Values {
	sid := in.MessageSID
	if sid == "" {
		prefix := "SM"
		if len(in.Media) > 0 {
			prefix = "MM"
		}
		sid = NewSID(prefix)
	}
	from, to := in.From, in.To
	if in.WhatsApp {
		from, to = "whatsapp:"+from, "whatsapp:"+to
	}
	f := url.Values{
		"ToCountry": {"US"}, "ToState": {"CA"}, "SmsMessageSid": {sid}, "NumMedia": {strconv.Itoa(len(in.Media))},
		"ToCity": {""}, "FromZip": {""}, "SmsSid": {sid}, "FromState": {""}, "SmsStatus": {"received"},
		"FromCity": {""}, "Body": {in.Body}, "FromCountry": {""}, "To": {to}, "ToZip": {""},
		"NumSegments": {"1"}, "MessageSid": {sid}, "AccountSid": {accountSID}, "From": {from},
		"ApiVersion": {APIVersion},
	}
	if in.WhatsApp {
		for _, k := range []string{"ToCountry", "ToState", "ToCity", "FromZip", "FromState", "FromCity", "FromCountry", "ToZip"} {
			delete(f, k)
		}
		f.Set("WaId", strings.TrimPrefix(in.From, "+"))
		f.Set("ProfileName", in.ProfileName)
		f.Set("MessageType", whatsAppType(in))
		f.Set("ChannelMetadata", `{"type":"whatsapp","data":{"context":{"ProfileName":`+strconv.Quote(in.ProfileName)+`,"WaId":`+strconv.Quote(strings.TrimPrefix(in.From, "+"))+`}}}`)
	} else {
		country := in.FromCountry
		if country == "" {
			country = "US"
		}
		f.Set("FromCountry", country)
		f.Set("NumSegments", strconv.Itoa(segments(in.Body)))
	}
	for i, m := range in.Media {
		f.Set("MediaUrl"+strconv.Itoa(i), m.URL)
		f.Set("MediaContentType"+strconv.Itoa(i), m.ContentType)
	}
	if in.Latitude != "" || in.Longitude != "" {
		f.Set("Latitude", in.Latitude)
		f.Set("Longitude", in.Longitude)
		if in.Address != "" {
			f.Set("Address", in.Address)
		}
		if in.Label != "" {
			f.Set("Label", in.Label)
		}
	}
	if in.ButtonText != "" || in.ButtonPayload != "" {
		f.Set("ButtonText", in.ButtonText)
		f.Set("ButtonPayload", in.ButtonPayload)
		f.Set("ButtonType", "REPLY")
	}
	if in.OptOutType != "" {
		f.Set("OptOutType", in.OptOutType)
	}
	for k, v := range in.Extra {
		f[k] = slices.Clone(v)
	}
	return f
}

func whatsAppType(in Inbound) string {
	switch {
	case in.Latitude != "":
		return "location"
	case in.ButtonText != "" || in.ButtonPayload != "":
		return "button"
	case len(in.Media) > 0:
		t, _, _ := strings.Cut(in.Media[0].ContentType, "/")
		switch t {
		case "image", "video", "audio":
			return t
		}
		return "document"
	}
	return "text"
}

// InboundForm is InboundForm for the fake's account.
func (s *Server) InboundForm(in Inbound) url.Values { return InboundForm(s.AccountSID, in) }

// StatusCallback describes one status callback; StatusForm turns it into
// the fields Twilio posts to a message's StatusCallback URL.
type StatusCallback struct {
	MessageSID          string
	From, To            string // as on the message (with any "whatsapp:" prefix)
	MessagingServiceSID string
	Status              string // queued, sent, delivered, read, failed, undelivered, …
	ErrorCode           string // for failed/undelivered
	Extra               url.Values
}

// StatusForm is the form Twilio posts for a status callback.
func StatusForm(accountSID string, st StatusCallback) url.Values {
	f := url.Values{
		"SmsSid": {st.MessageSID}, "SmsStatus": {st.Status}, "MessageStatus": {st.Status},
		"To": {st.To}, "MessageSid": {st.MessageSID}, "AccountSid": {accountSID},
		"From": {st.From}, "ApiVersion": {APIVersion},
	}
	if st.MessagingServiceSID != "" {
		f.Set("MessagingServiceSid", st.MessagingServiceSID)
	}
	if st.ErrorCode != "" || st.Status == "failed" || st.Status == "undelivered" {
		f.Set("ErrorCode", st.ErrorCode)
	}
	if strings.HasPrefix(st.To, "whatsapp:") {
		f.Set("ChannelPrefix", "whatsapp")
		f.Set("ChannelInstallSid", "XE"+strings.Repeat("0", 32))
		f.Set("ChannelToAddress", strings.TrimPrefix(st.To, "whatsapp:"))
		if st.Status == "read" {
			f.Set("EventType", "READ")
		}
		if st.Status == "failed" || st.Status == "undelivered" {
			f.Set("ChannelStatusMessage", "Message failed to send")
		}
	} else if st.Status == "delivered" || st.Status == "undelivered" {
		f.Set("RawDlrDoneDate", time.Now().UTC().Format("0601021504"))
	}
	for k, v := range st.Extra {
		f[k] = slices.Clone(v)
	}
	return f
}

// StatusForm is StatusForm for the fake's account.
func (s *Server) StatusForm(st StatusCallback) url.Values { return StatusForm(s.AccountSID, st) }

// StatusFor is the status callback of a message the fake created.
func (s *Server) StatusFor(m Message, status, errorCode string) url.Values {
	from := m.From
	if from == "" {
		from = s.ServiceFrom
	}
	return s.StatusForm(StatusCallback{
		MessageSID: m.SID, From: from, To: m.To, MessagingServiceSID: m.MessagingServiceSID,
		Status: status, ErrorCode: errorCode,
	})
}

// StatusCallbackRequest is the signed status callback Twilio would post to
// the StatusCallback URL the sender gave for m (query included).
func (s *Server) StatusCallbackRequest(m Message, status, errorCode string) *http.Request {
	return s.SignedRequest(m.StatusCallback, s.StatusFor(m, status, errorCode))
}
