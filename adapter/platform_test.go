package adapter

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/bonychat/bonychat-adapter/internal/testkit"
	"github.com/bonychat/bonychat-adapter/schema"
)

func testPlatformClient(t *testing.T) (*PlatformClient, *fakePlatform, PlatformTarget) {
	f := newFakePlatform(t)
	log, _ := testkit.NewLogger()
	cfg := testConfig(f.srv.URL).Platform
	c := NewPlatformClient(cfg, testkit.NewLocalOnlyTransport(), log)
	return c, f, PlatformTarget{ChannelID: "demo", WebhookURL: f.srv.URL, Token: demoToken, IDType: schema.IDTypePhone}
}

func textEvents(n int, prefix string) []schema.Event {
	out := make([]schema.Event, n)
	for i := range out {
		out[i] = schema.Event{Type: "message", MID: fmt.Sprintf("%s%03d", prefix, i), Timestamp: 1732262400000 + int64(i),
			Message: schema.TextMessage(fmt.Sprint("message ", i))}
	}
	return out
}

func TestPlatformPostBatchesAtMost20EventsInOrder(t *testing.T) {
	c, f, target := testPlatformClient(t)
	err := c.Post(context.Background(), target, schema.WebhookPayload{ChannelID: "demo", ContactID: phoneContact, Events: textEvents(45, "m")})
	if err != nil {
		t.Fatal(err)
	}
	posts := f.posts()
	if len(posts) != 3 || len(posts[0].Payload.Events) != 20 || len(posts[2].Payload.Events) != 5 {
		t.Fatalf("want batches of 20, 20, 5; got %d posts", len(posts))
	}
	i := 0
	for _, p := range posts {
		for _, e := range p.Payload.Events {
			if want := fmt.Sprintf("m%03d", i); e.MID != want {
				t.Fatalf("event %d: want %s, got %s (order lost)", i, want, e.MID)
			}
			i++
		}
	}
}

// A Retry-After longer than the quick retries may wait is not waited
// inside the request: the answer goes to the durable queue with it, which
// waits as asked (capped by retry_max).
func TestPlatformLongRetryAfterGoesToTheQueue(t *testing.T) {
	c, f, target := testPlatformClient(t)
	f.header = http.Header{"Retry-After": {"3600"}}
	f.script(429, 200)
	start := time.Now()
	err := c.Post(context.Background(), target, schema.WebhookPayload{ChannelID: "demo", ContactID: phoneContact, Events: textEvents(1, "r")})
	pe, ok := errors.AsType[*PlatformError](err)
	if !ok || pe.Permanent || pe.RetryAfter != time.Hour || len(f.posts()) != 1 || time.Since(start) > 2*time.Second {
		t.Fatalf("Post = %v after %v, %d posts: want one 429 handed back at once with Retry-After 1h",
			err, time.Since(start), len(f.posts()))
	}
}

// Once the server is stopping (Stop closed), a post is not retried in the
// request: its answer goes to the durable queue, so the drain is not held
// by quick retries. The request itself still goes (BonyChat may take it).
func TestPlatformPostIsNotRetriedOnceStopping(t *testing.T) {
	c, f, target := testPlatformClient(t)
	f.script(503, 503, 200)
	stop := make(chan struct{})
	close(stop)
	target.Stop = stop
	err := c.Post(context.Background(), target, schema.WebhookPayload{ChannelID: "demo", ContactID: phoneContact, Events: textEvents(1, "s")})
	if pe, ok := errors.AsType[*PlatformError](err); !ok || pe.Status != http.StatusServiceUnavailable || len(f.posts()) != 1 {
		t.Fatalf("Post = %v with %d posts; want the one 503, not retried", err, len(f.posts()))
	}
}

func TestPlatformPermanentRefusalIsTypedAndNotRetried(t *testing.T) {
	c, f, target := testPlatformClient(t)
	f.script(422)
	err := c.Post(context.Background(), target, schema.WebhookPayload{ChannelID: "demo", ContactID: phoneContact, Events: textEvents(1, "p")})
	var pe *PlatformError
	if !errors.As(err, &pe) || !pe.Permanent || pe.Status != 422 {
		t.Fatalf("want a permanent PlatformError 422, got %v", err)
	}
	if len(f.posts()) != 1 {
		t.Fatalf("a 4xx must not be retried; got %d attempts", len(f.posts()))
	}
}

func TestPlatformRefusesToPostAnInvalidPayload(t *testing.T) {
	c, f, target := testPlatformClient(t)
	bad := schema.WebhookPayload{ChannelID: "demo", ContactID: "not-a-phone", Events: textEvents(1, "x")}
	if err := c.Post(context.Background(), target, bad); err == nil {
		t.Fatal("an invalid contact ID must not be posted")
	}
	if len(f.posts()) != 0 {
		t.Fatal("nothing should reach BonyChat")
	}
}

func TestPlatformPostFitsBeforeValidating(t *testing.T) {
	c, f, target := testPlatformClient(t)
	p := schema.WebhookPayload{ChannelID: "demo", ContactID: phoneContact, Events: textEvents(1, "f"),
		Contact: &schema.Contact{FirstName: "😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀", Email: "far.too.long.address.for.bonychat@subdomain.example.com"}}
	if err := c.Post(context.Background(), target, p); err != nil {
		t.Fatal(err)
	}
	got := f.posts()[0].Payload.Contact
	if schema.Length(got.FirstName) > 50 || got.Email != "" {
		t.Errorf("contact not fitted: %+v", got)
	}
}
