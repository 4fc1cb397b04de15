package providers

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// Waits between the attempts of one API call. A longer Retry-After is cut
// to APIRetryWaitMax inside the call; a caller that must honour it in full
// stops retrying within the call and leaves the wait to its own queue.
const (
	APIRetryWaitMin = 200 * time.Millisecond
	APIRetryWaitMax = 2 * time.Second
)

// APIClientConfig bounds a provider API client.
type APIClientConfig struct {
	Retries        int           // retries after the first attempt
	AttemptTimeout time.Duration // one request
	CallTimeout    time.Duration // all attempts and back-off sleeps
	Policy         retryablehttp.CheckRetry
}

// NewAPIClient is the HTTP client of a provider SDK: go-retryablehttp with
// the given policy, Retry-After honoured but capped, never following a
// redirect (a followed POST becomes a GET, and a 3xx is not a sent
// message), and the provider's last error answer kept so the SDK can
// decode it (the default error handler would drop it).
func NewAPIClient(rt http.RoundTripper, c APIClientConfig) *http.Client {
	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	rc := retryablehttp.NewClient()
	rc.HTTPClient = &http.Client{Transport: rt, Timeout: c.AttemptTimeout, CheckRedirect: noRedirect}
	rc.Logger = nil
	rc.RetryMax = c.Retries
	rc.RetryWaitMin, rc.RetryWaitMax = APIRetryWaitMin, APIRetryWaitMax
	rc.CheckRetry = c.Policy
	rc.Backoff = func(lo, hi time.Duration, n int, resp *http.Response) time.Duration {
		return min(retryablehttp.DefaultBackoff(lo, hi, n, resp), hi)
	}
	rc.ErrorHandler = retryablehttp.PassthroughErrorHandler
	hc := rc.StandardClient()
	hc.Timeout = c.CallTimeout
	hc.CheckRedirect = noRedirect
	return hc
}

// SendRetryPolicy retries a non-idempotent send only when the provider
// certainly did not process it: a 429, or a connection that never opened.
// A 5xx, a reset or a timeout after the request was written may have sent
// the message: those are reconciled, never blindly retried.
func SendRetryPolicy(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	if err != nil {
		return NeverSent(err), nil
	}
	return resp.StatusCode == http.StatusTooManyRequests, nil
}

// NeverSent: a failed dial or DNS lookup means no byte reached the provider.
func NeverSent(err error) bool {
	var op *net.OpError
	var dns *net.DNSError
	return (errors.As(err, &op) && op.Op == "dial") || errors.As(err, &dns)
}
