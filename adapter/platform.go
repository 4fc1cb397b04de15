package adapter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/hashicorp/go-cleanhttp"
	"github.com/hashicorp/go-retryablehttp"

	"github.com/bonychat/bonychat-adapter/providers"
	"github.com/bonychat/bonychat-adapter/schema"
)

// PlatformTarget is where and how one channel's events are posted.
type PlatformTarget struct {
	ChannelID  string
	WebhookURL string
	Token      Secret
	IDType     schema.IDType
	// Pace, when set, is waited for before every request of a Post after
	// its first (which its caller paces): quick retries and further
	// batches stay under the channel's rate limit too.
	Pace func(context.Context) error
	// Stop, when closed (the server is stopping), ends a Post's quick
	// retries: the request in flight is not cut (BonyChat may be taking
	// it), but no other starts, so the drain is not held for them; the
	// durable queue posts the events again.
	Stop <-chan struct{}
}

// PlatformPoster posts one payload to BonyChat. The durable queue of the
// pipeline sits in front of it.
type PlatformPoster interface {
	Post(ctx context.Context, t PlatformTarget, p schema.WebhookPayload) error
}

// PlatformError is BonyChat's refusal of a post.
type PlatformError struct {
	Status     int
	Body       string        // the start of BonyChat's answer, for the log
	Permanent  bool          // a 4xx other than 408/429: retrying will not help
	RetryAfter time.Duration // BonyChat's Retry-After, for the durable retry
}

func (e *PlatformError) Error() string {
	return fmt.Sprintf("BonyChat webhook answered %d: %s", e.Status, e.Body)
}

// PlatformClient posts webhook payloads through go-retryablehttp: it retries
// connection errors, 408, 429 and 5xx a few times quickly (waiting any
// short Retry-After, paced by the channel's rate limit), never other 4xx,
// and never a redirect (the first answer counts).
type PlatformClient struct {
	http *retryablehttp.Client
	log  *slog.Logger
}

// NewPlatformClient builds the client; transport nil means a pooled default.
func NewPlatformClient(cfg PlatformConfig, transport http.RoundTripper, log *slog.Logger) *PlatformClient {
	if transport == nil {
		transport = cleanhttp.DefaultPooledTransport()
	}
	rc := retryablehttp.NewClient()
	// A redirect would be followed as a GET without the events, and its
	// 2xx taken for delivery: the first answer is the answer.
	rc.HTTPClient = &http.Client{Transport: transport, Timeout: cfg.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	rc.Logger = nil
	rc.RetryMax = cfg.Retries
	// Quick in-request retries ride out a blip; longer outages are the
	// durable queue's job, with retry_min/retry_max backoff.
	rc.RetryWaitMin = min(cfg.RetryMin, 250*time.Millisecond)
	rc.RetryWaitMax = min(cfg.RetryMax, 2*time.Second)
	rc.CheckRetry = quickRetryPolicy(rc.RetryWaitMax)
	rc.Backoff = retryAfterBackoff
	rc.PrepareRetry = func(r *http.Request) error {
		if stopped(r.Context()) {
			return errStopped
		}
		return pace(r.Context())
	}
	rc.ErrorHandler = retryablehttp.PassthroughErrorHandler
	rc.RequestLogHook = func(_ retryablehttp.Logger, r *http.Request, attempt int) {
		if attempt > 0 {
			log.Warn("retrying BonyChat webhook post", "attempt", attempt+1, "host", r.URL.Host)
		}
	}
	return &PlatformClient{http: rc, log: log}
}

// quickRetryPolicy retries within the request what may succeed later.
// Events carry stable mIds, so a retry after an unclear failure cannot
// create a new message. An answer asking to wait longer than the quick
// retries may is not retried here: the durable queue waits as asked.
func quickRetryPolicy(maxWait time.Duration) retryablehttp.CheckRetry {
	return func(ctx context.Context, resp *http.Response, err error) (bool, error) {
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		if stopped(ctx) {
			return false, nil // the answer so far is the answer
		}
		if err != nil {
			return true, nil
		}
		return retryableStatus(resp.StatusCode) && retryAfter(resp) <= maxWait, nil
	}
}

func retryableStatus(code int) bool {
	return code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500
}

// retryAfterBackoff is retryablehttp's exponential backoff, or BonyChat's
// Retry-After on any retried answer (the policy keeps it within max).
// DefaultBackoff gets no response: it would read a Retry-After our parser
// refused (a signed number, a date in another zone than GMT) and sleep it
// uncapped, inside a request the stop cannot end and past the lease.
func retryAfterBackoff(lo, hi time.Duration, attempt int, resp *http.Response) time.Duration {
	if ra := retryAfter(resp); ra > 0 {
		return min(ra, hi)
	}
	return min(retryablehttp.DefaultBackoff(lo, hi, attempt, nil), hi)
}

// retryAfter is BonyChat's Retry-After on an answer worth retrying
// (PROTOCOL: 408, 429 and 5xx honour it), 0 when there is none.
func retryAfter(resp *http.Response) time.Duration {
	if resp == nil || !retryableStatus(resp.StatusCode) {
		return 0
	}
	d, _ := providers.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	return d
}

// paceKey carries a Post's PlatformTarget.Pace to its retries, stopKey
// its Stop.
type (
	paceKey struct{}
	stopKey struct{}
)

// errStopped ends a Post whose quick retry would start after its Stop.
var errStopped = errors.New("not retried now: the server is stopping")

func stopped(ctx context.Context) bool {
	stop, _ := ctx.Value(stopKey{}).(<-chan struct{})
	select {
	case <-stop:
		return true
	default:
		return false
	}
}

func pace(ctx context.Context) error {
	if wait, ok := ctx.Value(paceKey{}).(func(context.Context) error); ok && wait != nil {
		return wait(ctx)
	}
	return nil
}

// Post makes the payload fit the protocol, validates it, and posts it in
// batches of at most 20 events, in order.
func (c *PlatformClient) Post(ctx context.Context, t PlatformTarget, p schema.WebhookPayload) error {
	batches := Batches(FitPayload(p))
	for i := range batches { // all or nothing: never post half a payload
		if err := schema.ValidatePayload(&batches[i], t.IDType); err != nil {
			return fmt.Errorf("payload for channel %s would be refused: %w", t.ChannelID, err)
		}
	}
	ctx = context.WithValue(context.WithValue(ctx, paceKey{}, t.Pace), stopKey{}, t.Stop)
	for i, batch := range batches {
		if i > 0 {
			if err := pace(ctx); err != nil {
				return err
			}
		}
		if err := c.post(ctx, t, batch); err != nil {
			return err
		}
	}
	return nil
}

// FitPayload applies the protocol's output rules to a whole payload.
func FitPayload(p schema.WebhookPayload) schema.WebhookPayload {
	p.Events = schema.FitEvents(p.Events)
	p.Contact = schema.FitContact(p.Contact)
	return p
}

// Batches splits a payload into payloads of at most schema.MaxEvents events.
func Batches(p schema.WebhookPayload) []schema.WebhookPayload {
	var out []schema.WebhookPayload
	for start := 0; start < len(p.Events); start += schema.MaxEvents {
		b := p
		b.Events = p.Events[start:min(start+schema.MaxEvents, len(p.Events))]
		out = append(out, b)
	}
	return out
}

func (c *PlatformClient) post(ctx context.Context, t PlatformTarget, p schema.WebhookPayload) error {
	body, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("encode payload: %w", err)
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPost, t.WebhookURL, body)
	if err != nil {
		return fmt.Errorf("build webhook request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+t.Token.Reveal())
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("post to BonyChat webhook: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil
	}
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if loc := resp.Header.Get("Location"); resp.StatusCode/100 == 3 && loc != "" {
		snippet = []byte("a redirect to " + loc + " (not followed: set webhook_url to where it points)")
	}
	return &PlatformError{Status: resp.StatusCode, Body: string(snippet), Permanent: !retryableStatus(resp.StatusCode),
		RetryAfter: retryAfter(resp)}
}
