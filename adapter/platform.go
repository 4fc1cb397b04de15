package adapter

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/hashicorp/go-cleanhttp"
	"github.com/hashicorp/go-retryablehttp"

	"github.com/bonychat/bonychat-adapter/schema"
)

// PlatformTarget is where and how one channel's events are posted.
type PlatformTarget struct {
	ChannelID  string
	WebhookURL string
	Token      Secret
	IDType     schema.IDType
}

// PlatformPoster posts one payload to BonyChat. The durable queue of the
// pipeline sits in front of it.
type PlatformPoster interface {
	Post(ctx context.Context, t PlatformTarget, p schema.WebhookPayload) error
}

// PlatformError is BonyChat's refusal of a post.
type PlatformError struct {
	Status    int
	Body      string // the start of BonyChat's answer, for the log
	Permanent bool   // a 4xx other than 408/429: retrying will not help
}

func (e *PlatformError) Error() string {
	return fmt.Sprintf("BonyChat webhook answered %d: %s", e.Status, e.Body)
}

// PlatformClient posts webhook payloads through go-retryablehttp: it retries
// connection errors, 408, 429 (honouring Retry-After, capped) and 5xx, and
// never other 4xx.
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
	rc.HTTPClient = &http.Client{Transport: transport, Timeout: cfg.Timeout}
	rc.Logger = nil
	rc.RetryMax = cfg.Retries
	// Quick in-request retries ride out a blip; longer outages are the
	// durable queue's job, with retry_min/retry_max backoff.
	rc.RetryWaitMin = min(cfg.RetryMin, 250*time.Millisecond)
	rc.RetryWaitMax = min(cfg.RetryMax, 2*time.Second)
	rc.CheckRetry = platformRetryPolicy
	rc.Backoff = cappedBackoff
	rc.ErrorHandler = retryablehttp.PassthroughErrorHandler
	rc.RequestLogHook = func(_ retryablehttp.Logger, r *http.Request, attempt int) {
		if attempt > 0 {
			log.Warn("retrying BonyChat webhook post", "attempt", attempt+1, "host", r.URL.Host)
		}
	}
	return &PlatformClient{http: rc, log: log}
}

// platformRetryPolicy retries what may succeed later. Events carry stable
// mIds, so a retry after an unclear failure cannot create a new message.
func platformRetryPolicy(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	if err != nil {
		return true, nil
	}
	return retryableStatus(resp.StatusCode), nil
}

func retryableStatus(code int) bool {
	return code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500
}

// cappedBackoff is retryablehttp's exponential backoff (which follows
// Retry-After) with Retry-After capped at max: a server asking for an hour
// must not stall a request.
func cappedBackoff(lo, hi time.Duration, attempt int, resp *http.Response) time.Duration {
	return min(retryablehttp.DefaultBackoff(lo, hi, attempt, resp), hi)
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
	for _, batch := range batches {
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
	return &PlatformError{Status: resp.StatusCode, Body: string(snippet), Permanent: !retryableStatus(resp.StatusCode)}
}
