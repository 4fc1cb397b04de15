package adapter

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/bonychat/bonychat-adapter/internal/testkit"
	"github.com/bonychat/bonychat-adapter/providers"
	"github.com/bonychat/bonychat-adapter/schema"
)

// PROTOCOL.md l.158-159: "408, 429 and 5xx are retried with backoff
// (honouring Retry-After)". The durable queue's retry ignores BonyChat's
// Retry-After (retryPlatform passes 0 to backoff).
func TestPlatformDurableRetryWaitsBonyChatsRetryAfter(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Platform.Retries = 0 // no in-request retry: only the durable queue
		c.Platform.RetryMin = 5 * time.Millisecond
		c.Platform.RetryMax = 5 * time.Minute // well above the Retry-After below
	})
	h.platform.header = http.Header{"Retry-After": {"30"}}
	h.platform.script(429)
	rec := h.postJSON("/console/demo/inbound", demoToken, map[string]any{"from": phoneContact, "id": "SMra1", "text": "hi"})
	if rec.Code != http.StatusOK {
		t.Fatalf("inbound: %d %s", rec.Code, rec.Body)
	}
	h.waitPosts(1)
	time.Sleep(1500 * time.Millisecond)
	if n := len(h.platform.posts()); n > 1 {
		t.Fatalf("BonyChat answered 429 with Retry-After: 30, but the events were posted again %d time(s) within 1.5 s", n-1)
	}
}

// Same rule, in-request retries: retryablehttp's wait is capped at
// min(retry_max, 2s), so Retry-After: 30 is cut to 2 s.
func TestPlatformLongRetryAfterIsLeftToTheDurableQueue(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Platform.Retries = 2
		c.Platform.RetryMin = 5 * time.Millisecond
		c.Platform.RetryMax = 5 * time.Minute
		c.Platform.Timeout = 2 * time.Second
	})
	h.platform.header = http.Header{"Retry-After": {"30"}}
	h.platform.script(429)
	rec := h.postJSON("/console/demo/inbound", demoToken, map[string]any{"from": phoneContact, "id": "SMra2", "text": "hi"})
	if rec.Code != http.StatusOK {
		t.Fatalf("inbound: %d %s", rec.Code, rec.Body)
	}
	h.waitPosts(1)
	time.Sleep(2600 * time.Millisecond)
	if n := len(h.platform.posts()); n > 1 {
		t.Fatalf("BonyChat answered 429 with Retry-After: 30, but the events were posted again %d time(s) within 2.6 s", n-1)
	}
}

// PROTOCOL.md l.91: "20 requests per second (per channel; the server must
// stay under it)". The limiter is taken once per Post; retryablehttp's
// in-request retries (platform.retries) are extra requests it never sees.
func TestPlatformQuickRetriesStayUnderTheRateLimit(t *testing.T) {
	var mu sync.Mutex
	var times []time.Time
	answers := []int{500, 500}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		times = append(times, time.Now())
		status := http.StatusOK
		if len(answers) > 0 {
			status, answers = answers[0], answers[1:]
		}
		mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	h := newHarness(t, func(c *Config) {
		c.Platform.WebhookURL = srv.URL
		c.Platform.RateLimit = 2 // requests per second per channel
		c.Platform.Retries = 2
	})
	rec := h.postJSON("/console/demo/inbound", demoToken, map[string]any{"from": phoneContact, "id": "SMrl1", "text": "hi"})
	if rec.Code != http.StatusOK {
		t.Fatalf("inbound: %d %s", rec.Code, rec.Body)
	}
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(times) >= 3 })
	mu.Lock()
	defer mu.Unlock()
	if span := times[2].Sub(times[0]); span < 900*time.Millisecond {
		t.Fatalf("rate_limit is 2 requests/s, but 3 requests reached BonyChat within %s", span)
	}
}

// PROTOCOL.md l.158: "A 2xx is delivered". A 301/302/303 from the webhook
// URL makes Go's client re-send as a GET without the events; a 2xx to that
// GET is counted as delivery though BonyChat never received a payload.
func TestPlatformRedirectIsNotDelivery(t *testing.T) {
	var mu sync.Mutex
	posted := 0
	mux := http.NewServeMux()
	mux.HandleFunc("/webhook", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/webhook/", http.StatusMovedPermanently) // the usual trailing-slash redirect
	})
	mux.HandleFunc("/webhook/", func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			mu.Lock()
			posted++
			mu.Unlock()
		}
		w.WriteHeader(http.StatusOK)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	log, _ := testkit.NewLogger()
	c := NewPlatformClient(testConfig(srv.URL).Platform, testkit.NewLocalOnlyTransport(), log)
	target := PlatformTarget{ChannelID: "demo", WebhookURL: srv.URL + "/webhook", Token: demoToken, IDType: schema.IDTypePhone}
	err := c.Post(context.Background(), target, schema.WebhookPayload{ChannelID: "demo", ContactID: phoneContact, Events: textEvents(1, "rd")})
	mu.Lock()
	defer mu.Unlock()
	pe, ok := errors.AsType[*PlatformError](err)
	if !ok || pe.Status != http.StatusMovedPermanently || !strings.Contains(pe.Body, "/webhook/") || posted != 0 {
		t.Fatalf("Post = %v, %d posts: want the redirect as the answer, naming where it points, and nothing posted", err, posted)
	}
}

// PROTOCOL.md l.105: "contact | optional; used when BonyChat creates the
// contact". ingest attaches the profile to the last event only, so a
// webhook of more than 20 events reaches BonyChat first without it: the
// post that creates the contact has no profile.
func TestPlatformFirstPostCarriesTheContact(t *testing.T) {
	h := newHarness(t, nil)
	events := textEvents(25, "ct")
	in := providers.Inbound{DedupeKey: "ct-webhook", ContactID: phoneContact, Events: events,
		Contact: &schema.Contact{FirstName: "Jane", LastName: "Doe"}}
	if _, err := h.srv.pipe.ingest(context.Background(), h.srv.channels["demo"], in); err != nil {
		t.Fatal(err)
	}
	posts := h.waitPosts(2)
	if posts[0].Payload.Contact == nil {
		t.Fatalf("the first post (%d events, which creates the contact) carries no contact profile; it came only in post 2",
			len(posts[0].Payload.Events))
	}
}

// The channel's limiter never lets rate_limit+1 requests into a closed
// one-second window (at exactly 1/rate apart, the 21st of 20/s would land
// on the window's last instant).
func TestPlatformSpacingStaysUnderTheRateInAnyWindow(t *testing.T) {
	for _, perSecond := range []float64{20, 7, 1} {
		interval := time.Duration(float64(time.Second) / float64(platformSpacing(perSecond)))
		if n := int(time.Second/interval) + 1; float64(n) > perSecond {
			t.Errorf("rate %v/s: requests %v apart put %d into one second", perSecond, interval, n)
		}
	}
	// A tiny rate must not overflow into no limit at all.
	for _, perSecond := range []float64{1e-11, 1e-12} {
		if got := platformSpacing(perSecond); got == rate.Inf || float64(got) > 1 {
			t.Errorf("rate_limit %g/s: the limiter allows %v/s", perSecond, got)
		}
	}
}
