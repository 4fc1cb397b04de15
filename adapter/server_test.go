package adapter

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bonychat/bonychat-adapter/internal/testkit"
	"github.com/bonychat/bonychat-adapter/providers"
	"github.com/bonychat/bonychat-adapter/schema"
	"github.com/bonychat/bonychat-adapter/store"
)

func TestHealthAndReadiness(t *testing.T) {
	h := newHarness(t, nil)
	if rec := h.do(http.MethodGet, "/healthz", "", "", nil); rec.Code != 200 || !strings.Contains(rec.Body.String(), `"ok"`) {
		t.Fatalf("healthz: %d %s", rec.Code, rec.Body)
	}
	if rec := h.do(http.MethodGet, "/readyz", "", "", nil); rec.Code != 200 || !strings.Contains(rec.Body.String(), `"ready"`) {
		t.Fatalf("readyz: %d %s", rec.Code, rec.Body)
	}
	h.srv.draining.Store(true)
	if rec := h.do(http.MethodGet, "/readyz", "", "", nil); rec.Code != 503 || !strings.Contains(rec.Body.String(), `"not_ready"`) {
		t.Fatalf("readyz while draining: %d %s", rec.Code, rec.Body)
	}
}

func TestDemoPlatformChecksWhatItReceives(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Demo.Platform = true })
	valid := map[string]any{"channelId": "demo", "contactId": phoneContact,
		"events": []map[string]any{{"type": "message", "mId": "m1", "timestamp": 1732262400000, "message": map[string]any{"type": "text", "text": "hi"}}}}
	if rec := h.postJSON("/_demo/platform", demoToken, valid); rec.Code != 200 {
		t.Fatalf("valid payload: %d %s", rec.Code, rec.Body)
	}
	if rec := h.postJSON("/_demo/platform", customToken, valid); rec.Code != 401 {
		t.Fatalf("another channel's token: want 401, got %d", rec.Code)
	}
	invalid := map[string]any{"channelId": "demo", "contactId": phoneContact, "events": []map[string]any{{"type": "message_status", "mId": "m1", "timestamp": 1}}}
	rec := h.postJSON("/_demo/platform", demoToken, invalid)
	if rec.Code != 400 || len(errorBody(t, rec).Error.Details) == 0 {
		t.Fatalf("invalid payload: want 400 with details, got %d %s", rec.Code, rec.Body)
	}
	if rec := h.do(http.MethodGet, "/_demo/platform", "", "", nil); rec.Code != 401 {
		t.Fatalf("the list needs a channel token: %d", rec.Code)
	}
	rec = h.do(http.MethodGet, "/_demo/platform", demoToken, "", nil)
	var list struct{ Received []demoDelivery }
	if err := json.Unmarshal(rec.Body.Bytes(), &list); err != nil || len(list.Received) != 1 {
		t.Fatalf("want the one accepted delivery listed, got %s", rec.Body)
	}
}

// startServer serves h's server on a loopback port until the test ends.
func startServer(t *testing.T, srv *Server) (string, context.CancelFunc, <-chan error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(cancel)
	return "http://" + ln.Addr().String(), cancel, done
}

func TestDemoRoundTripThroughTheRealListener(t *testing.T) {
	// The make-run scenario: the console channel's webhook is this server's own stand-in.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	h := buildHarness(t, store.NewMemory(), func(c *Config) { c.Demo.Platform = true; c.Platform.WebhookURL = base + "/_demo/platform" }, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = h.srv.Serve(ctx, ln) }()
	client := &http.Client{Transport: testkit.NewLocalOnlyTransport(), Timeout: 5 * time.Second}
	req, _ := http.NewRequest(http.MethodPost, base+"/console/demo/inbound", strings.NewReader(`{"from":"+60177872890","text":"hello"}`))
	req.Header.Set("Authorization", "Bearer "+demoToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("inbound: %d", resp.StatusCode)
	}
	waitFor(t, func() bool { return strings.Contains(h.logs.String(), "demo platform received") })
}

func TestGracefulShutdownFinishesInFlightRequests(t *testing.T) {
	fake := &fakeProvider{block: make(chan struct{})}
	h := buildHarness(t, store.NewMemory(), nil, fake)
	base, cancel, done := startServer(t, h.srv)
	client := &http.Client{Transport: testkit.NewLocalOnlyTransport(), Timeout: 10 * time.Second}
	result := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, base+"/message", strings.NewReader(`{"channelId":"demo","contactId":"+60177872890","message":{"type":"text","text":"hi"}}`))
		req.Header.Set("Authorization", "Bearer "+demoToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			result <- -1
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		result <- resp.StatusCode
	}()
	waitFor(t, func() bool { return strings.Contains(h.logs.String(), `"serving"`) })
	time.Sleep(50 * time.Millisecond) // let the request reach the provider
	cancel()
	waitFor(t, func() bool { return h.srv.draining.Load() })
	close(fake.block)
	if got := <-result; got != 200 {
		t.Fatalf("the in-flight request should finish with 200, got %d", got)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve should return nil after a clean shutdown, got %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after shutdown")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestLogsNeverCarrySecrets(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Demo.Platform = true })
	h.platform.script(500, 401)
	wrong := "wrong-secret-token-offered-1234"
	h.postJSON("/message", demoToken, textRequest("demo", phoneContact, "hi"))
	h.postJSON("/message", wrong, textRequest("demo", phoneContact, "hi"))
	h.postJSON("/message", demoPrevToken, textRequest("demo", phoneContact, "hi"))
	h.postJSON("/console/demo/inbound", demoToken, map[string]any{"from": phoneContact, "text": "hi"})
	h.postJSON("/console/custom01/inbound", customToken, map[string]any{"from": "jane", "text": "hi"})
	h.srv.log.Error("a provider quoted a secret", "error", fmt.Errorf("auth failed for %s", demoToken), "cfg", h.cfg.Channels[0])
	logs := h.logs.String()
	if !strings.Contains(logs, `"msg":"request"`) {
		t.Fatal("expected request log lines")
	}
	for _, secret := range []string{demoToken, demoPrevToken, customToken, wrong} {
		if strings.Contains(logs, secret) {
			t.Errorf("secret %q reached the log", secret[:8]+"…")
		}
	}
}

func TestRequestLogLineHasIDRouteStatusLatency(t *testing.T) {
	h := newHarness(t, nil)
	rec := h.do(http.MethodGet, "/healthz", "", "", nil)
	id := rec.Header().Get("X-Request-ID")
	if id == "" {
		t.Fatal("every answer should carry X-Request-ID")
	}
	for _, line := range strings.Split(h.logs.String(), "\n") {
		if strings.Contains(line, `"msg":"request"`) {
			for _, want := range []string{`"request_id":"` + id + `"`, `"route":"/healthz"`, `"status":200`, `"latency_ms":`} {
				if !strings.Contains(line, want) {
					t.Errorf("request log line lacks %s: %s", want, line)
				}
			}
			return
		}
	}
	t.Fatal("no request log line")
}

// A loopback public_url (the default) with a provider that must call back
// is said at start-up: its callbacks and BonyChat's media downloads would
// never arrive. Console channels alone need no public address.
func TestStartUpWarnsOfALoopbackPublicURL(t *testing.T) {
	const warning = "public_url is a loopback address"
	cases := []struct {
		name, publicURL string
		consoleOnly     bool
		warned          bool
	}{
		{"loopback with provider channels", "http://127.0.0.1:8080", false, true},
		{"localhost with provider channels", "http://localhost:8080/bony", false, true},
		{"public with provider channels", "https://adapter.example.test", false, false},
		{"loopback with console channels only", "http://127.0.0.1:8080", true, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := buildHarness(t, store.NewMemory(), func(c *Config) {
				c.PublicURL = tc.publicURL
				if tc.consoleOnly {
					c.Channels = c.Channels[:1]
				}
			}, nil)
			if got := strings.Contains(h.logs.String(), warning); got != tc.warned {
				t.Fatalf("warned = %v, want %v; logs:\n%s", got, tc.warned, h.logs.String())
			}
		})
	}
}

// slowSender takes 600 ms per send and counts the sends in flight.
type slowSender struct{ started, inFlight atomic.Int32 }

func (p *slowSender) Kind() string { return "console" }

func (p *slowSender) Send(ctx context.Context, to providers.Recipient, m schema.Message, mID string) (providers.Sent, error) {
	p.started.Add(1)
	p.inFlight.Add(1)
	defer p.inFlight.Add(-1)
	time.Sleep(600 * time.Millisecond)
	return providers.Sent{ProviderIDs: []string{"x-" + mID}}, nil
}

// Once the drain starts nothing new is leased: a job queued behind a send
// in flight is not started while a slow request keeps the HTTP drain busy
// (it could not finish in what is left of the timeout), and Serve returns
// with no send in flight; the queued job stays in the store for start-up.
func TestServeStartsNoSendDuringTheDrain(t *testing.T) {
	prov := &slowSender{}
	h := buildHarnessFor(t, store.NewMemory(), func(c *Config) {
		c.Outbound.Wait = 50 * time.Millisecond
		c.Outbound.Workers = 1
		c.HTTP.ShutdownTimeout = time.Second
	}, prov)
	base, cancel, done := startServer(t, h.srv)
	addr := strings.TrimPrefix(base, "http://")
	client := &http.Client{Transport: testkit.NewLocalOnlyTransport(), Timeout: 5 * time.Second}
	post := func(contact string) {
		body := fmt.Sprintf(`{"channelId":"demo","contactId":%q,"message":{"type":"text","text":"hi"}}`, contact)
		req, _ := http.NewRequest(http.MethodPost, base+"/message", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+demoToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	post("+60177872890") // leased at once: sends until ~600 ms
	post("+60177872891") // queued behind it (one worker)
	// A request still uploading its body keeps the HTTP drain busy ~900 ms.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"channelId":"demo","contactId":"+60177872892","message":{"type":"text","text":"hi"}}`
	fmt.Fprintf(conn, "POST /message HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		addr, demoToken, len(body), body[:10])
	time.Sleep(50 * time.Millisecond)
	cancel()
	waitFor(t, func() bool { return h.srv.draining.Load() })
	go func() {
		time.Sleep(850 * time.Millisecond)
		_, _ = io.WriteString(conn, body[10:])
		_, _ = io.Copy(io.Discard, conn)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
	if n := prov.inFlight.Load(); n != 0 {
		t.Fatalf("Serve returned with %d send(s) in flight (%d started)", n, prov.started.Load())
	}
}

// gatedEnqueue holds EnqueueLeased until gate returns: a write queued
// behind the SQLite writer's batch (its fsync) when the stop came.
type gatedEnqueue struct {
	store.Store
	gate func()
}

func (s *gatedEnqueue) EnqueueLeased(ctx context.Context, j store.NewJob, keys []store.Key, now time.Time, leaseFor time.Duration) (int64, *store.Lease, error) {
	if s.gate != nil {
		s.gate()
	}
	return s.Store.EnqueueLeased(ctx, j, keys, now, leaseFor)
}

// gatedLease holds an outbound Lease, once armed, until the drain began.
type gatedLease struct {
	store.Store
	armed   atomic.Bool
	entered chan struct{}
	srv     *Server
}

func (s *gatedLease) Lease(ctx context.Context, req store.LeaseRequest) ([]store.Lease, error) {
	if req.Queue == store.Outbound && s.armed.CompareAndSwap(true, false) {
		close(s.entered)
		for !s.srv.draining.Load() {
			time.Sleep(time.Millisecond)
		}
		return s.Store.Lease(context.WithoutCancel(ctx), req) // handed to the writer before the stop
	}
	return s.Store.Lease(ctx, req)
}

// drainWatcher takes 3 s per send and counts the sends started during the
// drain.
type drainWatcher struct {
	srv                   *Server
	inFlight, duringDrain atomic.Int32
}

func (p *drainWatcher) Kind() string { return "console" }

func (p *drainWatcher) Send(ctx context.Context, to providers.Recipient, m schema.Message, mID string) (providers.Sent, error) {
	if p.srv.draining.Load() {
		p.duringDrain.Add(1)
	}
	p.inFlight.Add(1)
	defer p.inFlight.Add(-1)
	time.Sleep(3 * time.Second)
	return providers.Sent{ProviderIDs: []string{"x-" + mID}}, nil
}

// postMessage posts a text /message for contact to the demo channel.
func postMessage(t *testing.T, base, contact string) {
	client := &http.Client{Transport: testkit.NewLocalOnlyTransport(), Timeout: 10 * time.Second}
	body := fmt.Sprintf(`{"channelId":"demo","contactId":%q,"message":{"type":"text","text":"hi"}}`, contact)
	req, _ := http.NewRequest(http.MethodPost, base+"/message", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+demoToken)
	req.Header.Set("Content-Type", "application/json")
	if resp, err := client.Do(req); err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// A lease a store write hands back after the drain began (the request's
// own, or a worker's) is not sent: the job goes back to pending for
// start-up, and Serve returns with no send in flight and nothing leased.
func TestServeStartsNoSendFromALeaseThatArrivesDuringTheDrain(t *testing.T) {
	for _, via := range []string{"the request", "a worker"} {
		t.Run(via, func(t *testing.T) {
			enq := &gatedEnqueue{Store: store.NewMemory()}
			lease := &gatedLease{Store: enq, entered: make(chan struct{})}
			prov := &drainWatcher{}
			h := buildHarnessFor(t, lease, func(c *Config) {
				c.Outbound.Wait = 50 * time.Millisecond
				c.Outbound.Workers = 1
				c.HTTP.ShutdownTimeout = time.Second
			}, prov)
			prov.srv, lease.srv = h.srv, h.srv
			base, cancel, done := startServer(t, h.srv)
			if via == "the request" {
				entered := make(chan struct{})
				enq.gate = func() {
					close(entered)
					for !h.srv.draining.Load() {
						time.Sleep(time.Millisecond)
					}
				}
				go postMessage(t, base, phoneContact)
				<-entered
			} else {
				postMessage(t, base, "+60177872890") // leased at once, sends 3 s
				postMessage(t, base, "+60177872891") // queued (one worker)
				lease.armed.Store(true)              // the worker's next lease is on its way when the stop comes
				<-lease.entered
			}
			cancel()
			select {
			case <-done:
			case <-time.After(8 * time.Second):
				t.Fatal("Serve did not return")
			}
			if n := prov.duringDrain.Load(); n != 0 {
				t.Fatalf("%d send(s) started during the drain", n)
			}
			jobs, err := h.st.Jobs(t.Context(), store.JobFilter{Queue: store.Outbound, State: store.Pending})
			if err != nil || len(jobs) != 1 {
				t.Fatalf("%d pending outbound jobs (%v), want the one not started", len(jobs), err)
			}
		})
	}
}
