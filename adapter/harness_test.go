package adapter

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/bonychat/bonychat-adapter/internal/testkit"
	"github.com/bonychat/bonychat-adapter/providers"
	"github.com/bonychat/bonychat-adapter/providers/mailgun"
	"github.com/bonychat/bonychat-adapter/providers/twilio"
	"github.com/bonychat/bonychat-adapter/schema"
	"github.com/bonychat/bonychat-adapter/store"
)

func TestMain(m *testing.M) {
	testkit.LockDefaultTransport()
	os.Exit(m.Run())
}

const (
	demoToken     = "test-token-demo-000000000001"
	demoPrevToken = "test-token-demo-previous-0001"
	customToken   = "test-token-custom-0000000001"
	smsToken      = "test-token-sms01-0000000001"
	twilioSID     = "AC0123456789abcdef0123456789abcdef"
	twilioToken   = "twilioauthtoken0001"
	mailToken     = "test-token-mail01-000000001"
	mailgunKey    = "key-api-test-0000000000001"
	mailgunSign   = "key-sign-test-000000000001"
	phoneContact  = "+60177872890"
)

// fakePlatform stands in for BonyChat's webhook: it records every payload,
// checks each against openapi.yaml, and answers what the test scripts.
type fakePlatform struct {
	t       testing.TB
	srv     *httptest.Server
	mu      sync.Mutex
	got     []receivedPost
	answers []int // status per post, in order; 200 once exhausted
	header  http.Header
	// refuse, when set, answers 400 to a post it returns true for (once
	// the scripted answers are used up).
	refuse func(schema.WebhookPayload) bool
}

type receivedPost struct {
	Auth    string
	Status  int // what the fake answered
	Payload schema.WebhookPayload
}

func newFakePlatform(t testing.TB) *fakePlatform {
	f := &fakePlatform{t: t}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakePlatform) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	validateSchema(f.t, "WebhookPayload", body)
	var p schema.WebhookPayload
	if err := json.Unmarshal(body, &p); err != nil {
		f.t.Errorf("platform got non-JSON: %v", err)
	}
	f.mu.Lock()
	status := http.StatusOK
	if len(f.answers) > 0 {
		status, f.answers = f.answers[0], f.answers[1:]
	} else if f.refuse != nil && f.refuse(p) {
		status = http.StatusBadRequest
	}
	f.got = append(f.got, receivedPost{Auth: r.Header.Get("Authorization"), Status: status, Payload: p})
	for k, v := range f.header {
		w.Header()[k] = v
	}
	f.mu.Unlock()
	w.WriteHeader(status)
}

func (f *fakePlatform) script(statuses ...int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answers = statuses
}

func (f *fakePlatform) posts() []receivedPost {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]receivedPost{}, f.got...)
}

// fakeProvider records sends and answers with sendErr (nil: accepted), or
// with what script says for the n-th attempt (0-based) when script is set.
type fakeProvider struct {
	mu       sync.Mutex
	sent     []schema.Message
	sentTo   []string
	attempts int
	sendErr  error
	script   func(n int, to providers.Recipient, m schema.Message) error
	block    chan struct{}
	panics   bool
}

func (p *fakeProvider) Kind() string { return "console" }

func (p *fakeProvider) Send(ctx context.Context, to providers.Recipient, m schema.Message, mID string) (providers.Sent, error) {
	if p.panics {
		panic("provider exploded with secret " + demoToken)
	}
	if p.block != nil {
		<-p.block
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	n := p.attempts
	p.attempts++
	err := p.sendErr
	if p.script != nil {
		err = p.script(n, to, m)
	}
	if err != nil {
		return providers.Sent{}, err
	}
	p.sent = append(p.sent, m)
	p.sentTo = append(p.sentTo, to.ContactID)
	return providers.Sent{ProviderIDs: []string{"fake-" + mID}}, nil
}

// sentTexts lists the texts sent to one contact, in send order.
func (p *fakeProvider) sentTexts(contact string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for i, m := range p.sent {
		if p.sentTo[i] == contact && m.Text != nil {
			out = append(out, *m.Text)
		}
	}
	return out
}

func (p *fakeProvider) attemptCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.attempts
}

func (p *fakeProvider) sentCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.sent)
}

type harness struct {
	t        *testing.T
	srv      *Server
	st       store.Store
	cfg      *Config
	platform *fakePlatform
	logs     *testkit.LogBuffer
	fake     *fakeProvider // when set, every channel sends through it
}

func testConfig(platformURL string) *Config {
	cfg := defaultConfig()
	cfg.Log = LogConfig{Level: "debug", Format: "json"}
	cfg.Platform.WebhookURL = platformURL
	cfg.Platform.RetryMin = 5 * time.Millisecond
	cfg.Platform.RetryMax = 20 * time.Millisecond
	cfg.Platform.Timeout = 2 * time.Second
	cfg.Platform.RateLimit = 1000
	cfg.Store = "memory:"
	cfg.Outbound.RetryMin = 5 * time.Millisecond
	cfg.Outbound.RetryMax = 50 * time.Millisecond
	cfg.Channels = []ChannelConfig{
		{ID: "demo", Token: demoToken, PreviousToken: demoPrevToken, IDType: schema.IDTypePhone, Provider: "console"},
		{ID: "custom01", Token: customToken, IDType: schema.IDTypeCustom, Provider: "console"},
		{ID: "sms01", Token: smsToken, IDType: schema.IDTypePhone, Provider: "twilio", Twilio: &twilio.Config{
			AccountSID: twilioSID, AuthToken: twilioToken, From: "+15550001111", APIURL: "http://127.0.0.1:1"}},
		{ID: "mail01", Token: mailToken, IDType: schema.IDTypeCustom, Provider: "mailgun", Mailgun: &mailgun.Config{
			Domain: "mg.example.com", APIKey: mailgunKey, WebhookSigningKey: mailgunSign, APIURL: "http://127.0.0.1:1",
			From: "Acme Support <support@mg.example.com>", Subject: "Your conversation with Acme", SignatureMaxAge: 24 * time.Hour}},
	}
	return &cfg
}

// newHarness builds a server on a fake platform; mutate adjusts the config.
func newHarness(t *testing.T, mutate func(*Config)) *harness {
	return newHarnessWith(t, mutate, nil)
}

func newHarnessWith(t *testing.T, mutate func(*Config), fake *fakeProvider) *harness {
	return newHarnessOn(t, store.NewMemory(), mutate, fake)
}

// newHarnessOn builds a server on st with its workers running.
func newHarnessOn(t *testing.T, st store.Store, mutate func(*Config), fake *fakeProvider) *harness {
	t.Helper()
	h := buildHarness(t, st, mutate, fake)
	stop, err := h.srv.StartWorkers()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return h
}

// buildHarness builds the server without starting it (tests that call Serve).
func buildHarness(t *testing.T, st store.Store, mutate func(*Config), fake *fakeProvider) *harness {
	t.Helper()
	var prov providers.Provider
	if fake != nil {
		prov = fake
	}
	h := buildHarnessFor(t, st, mutate, prov)
	h.fake = fake
	return h
}

// buildHarnessFor builds the server with prov for every channel (nil: the
// configured providers).
func buildHarnessFor(t *testing.T, st store.Store, mutate func(*Config), prov providers.Provider) *harness {
	t.Helper()
	h := &harness{t: t, platform: newFakePlatform(t), st: st}
	h.cfg = testConfig(h.platform.srv.URL)
	if mutate != nil {
		mutate(h.cfg)
	}
	if problems := h.cfg.validate(); len(problems) > 0 {
		t.Fatalf("test config invalid: %v", problems)
	}
	var log *slog.Logger
	log, h.logs = testkit.NewLogger()
	opts := Options{Version: "test", Logger: log, Transport: testkit.NewLocalOnlyTransport(), Store: st}
	if prov != nil {
		opts.NewProvider = func(ChannelConfig, providers.Deps) (providers.Provider, error) { return prov, nil }
	}
	srv, err := New(h.cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	h.srv = srv
	return h
}

// do runs one request through the handler and checks it against the contract.
func (h *harness) do(method, path, token, contentType string, body []byte) *httptest.ResponseRecorder {
	h.t.Helper()
	req := httptest.NewRequest(method, specHost+path, bytes.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return h.doRequest(req, body)
}

func (h *harness) doRequest(req *http.Request, body []byte) *httptest.ResponseRecorder {
	h.t.Helper()
	header := req.Header.Clone()
	rec := httptest.NewRecorder()
	h.srv.Handler().ServeHTTP(rec, req)
	checkExchange(h.t, h.cfg.BasePath, req.Method, req.URL.RequestURI(), header, body, rec)
	return rec
}

func (h *harness) postJSON(path, token string, v any) *httptest.ResponseRecorder {
	h.t.Helper()
	body, err := json.Marshal(v)
	if err != nil {
		h.t.Fatal(err)
	}
	return h.do(http.MethodPost, path, token, "application/json", body)
}

// errorBody decodes the JSON error shape.
func errorBody(t testing.TB, rec *httptest.ResponseRecorder) providers.ErrorBody {
	t.Helper()
	var e providers.ErrorBody
	if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
		t.Fatalf("error body is not JSON: %v: %s", err, rec.Body.String())
	}
	if e.Error.Message == "" {
		t.Fatalf("error body has no message: %s", rec.Body.String())
	}
	return e
}

func textRequest(channel, contact, text string) map[string]any {
	return map[string]any{"channelId": channel, "contactId": contact, "message": map[string]any{"type": "text", "text": text}}
}

// waitPosts waits until BonyChat received at least n posts and returns them.
func (h *harness) waitPosts(n int) []receivedPost {
	h.t.Helper()
	waitFor(h.t, func() bool { return len(h.platform.posts()) >= n })
	return h.platform.posts()
}

func (h *harness) jobCount(s store.State) int {
	counts, err := h.st.Count(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	return counts[s]
}

// failingStore refuses every enqueue, like a full disk.
type failingStore struct{ store.Store }

func (f *failingStore) Enqueue(context.Context, []store.NewJob, []store.Key) ([]int64, error) {
	return nil, errors.New("disk full")
}
