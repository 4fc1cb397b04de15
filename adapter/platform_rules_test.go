package adapter

import (
	"context"
	"errors"
	"fmt"
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

// BonyChat's Retry-After is honoured (PROTOCOL: 408, 429 and 5xx are
// retried "honouring Retry-After"): one longer than the quick retries may
// wait is waited by the durable queue, not cut short inside the request,
// with or without quick retries.
func TestPlatformRetryAfterIsWaited(t *testing.T) {
	for _, retries := range []int{0, 2} {
		t.Run(fmt.Sprintf("%d quick retries", retries), func(t *testing.T) {
			h := newHarness(t, func(c *Config) {
				c.Platform.Retries = retries
				c.Platform.RetryMin = 5 * time.Millisecond
				c.Platform.RetryMax = 5 * time.Minute // well above the Retry-After below
				c.Platform.Timeout = 2 * time.Second
			})
			h.platform.header = http.Header{"Retry-After": {"30"}}
			h.platform.script(429)
			rec := h.postJSON("/console/demo/inbound", demoToken, map[string]any{"from": phoneContact, "text": "hi"})
			if rec.Code != http.StatusOK {
				t.Fatalf("inbound: %d %s", rec.Code, rec.Body)
			}
			h.waitPosts(1)
			time.Sleep(2600 * time.Millisecond) // past the quick retries' 2 s cap
			if n := len(h.platform.posts()); n > 1 {
				t.Fatalf("BonyChat answered 429 with Retry-After: 30, but the events were posted again %d time(s) within 2.6 s", n-1)
			}
		})
	}
}

// The channel's rate limit paces every request, quick retries included
// (PROTOCOL: "20 requests per second ... the server must stay under it").
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

// Only a 2xx is delivery (PROTOCOL): a redirect from the webhook URL is not
// followed (Go would re-send it as a GET without the events, whose 2xx
// would count as delivered); it is the answer, naming where it points.
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

// The contact profile is "used when BonyChat creates the contact"
// (PROTOCOL): with more than 20 events, the first post (which creates it)
// carries the profile too.
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
