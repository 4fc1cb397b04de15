package mailgun

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/hashicorp/go-cleanhttp"
	"github.com/hashicorp/go-retryablehttp"
	mailgungo "github.com/mailgun/mailgun-go/v4"
)

// Bounds of one send. mailgun-go has no timeout of its own (it uses
// http.DefaultClient unless told otherwise); the whole call is also bound
// by the caller's context.
const (
	attemptTimeout = 30 * time.Second // one POST: the body is a multipart with attachments
	callTimeout    = 60 * time.Second // all attempts and back-off sleeps
	sendRetries    = 2
	retryWaitMin   = 200 * time.Millisecond
	retryWaitMax   = 2 * time.Second
)

// newSender is mailgun-go pointed at api_url, on an HTTP client with
// explicit timeouts that retries a send only when Mailgun certainly did not
// process it: a message send is not idempotent.
func newSender(cfg Config, transport http.RoundTripper) *mailgungo.MailgunImpl {
	if transport == nil {
		transport = cleanhttp.DefaultPooledTransport()
	}
	mg := mailgungo.NewMailgun(cfg.Domain, cfg.APIKey.Reveal())
	mg.SetAPIBase(cfg.apiBase())
	mg.SetClient(sendClient(transport))
	return mg
}

func sendClient(rt http.RoundTripper) *http.Client {
	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	rc := retryablehttp.NewClient()
	// A followed redirect would turn the POST into a GET: never follow.
	rc.HTTPClient = &http.Client{Transport: rt, Timeout: attemptTimeout, CheckRedirect: noRedirect}
	rc.Logger = nil
	rc.RetryMax = sendRetries
	rc.RetryWaitMin, rc.RetryWaitMax = retryWaitMin, retryWaitMax
	rc.CheckRetry = sendRetryPolicy
	rc.Backoff = func(lo, hi time.Duration, n int, resp *http.Response) time.Duration {
		return min(retryablehttp.DefaultBackoff(lo, hi, n, resp), hi) // Retry-After, capped
	}
	// Keep Mailgun's answer: without this mailgun-go sees a generic "giving
	// up" error instead of an UnexpectedResponseError with the status.
	rc.ErrorHandler = retryablehttp.PassthroughErrorHandler
	hc := rc.StandardClient()
	hc.Timeout = callTimeout
	hc.CheckRedirect = noRedirect
	return hc
}

// sendRetryPolicy retries only what Mailgun never processed: a 429, or a
// connection that never opened. A 5xx, a reset or a timeout after the
// request was written may have sent the e-mail.
func sendRetryPolicy(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	if err != nil {
		return neverSent(err), nil
	}
	return resp.StatusCode == http.StatusTooManyRequests, nil
}

// neverSent: a failed dial or DNS lookup means no byte reached Mailgun.
func neverSent(err error) bool {
	var op *net.OpError
	var dns *net.DNSError
	return (errors.As(err, &op) && op.Op == "dial") || errors.As(err, &dns)
}
