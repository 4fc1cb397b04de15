package twilio

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hashicorp/go-cleanhttp"
	"github.com/hashicorp/go-retryablehttp"
	twiliogo "github.com/twilio/twilio-go"
	"github.com/twilio/twilio-go/client"
	api "github.com/twilio/twilio-go/rest/api/v2010"
)

// Bounds of one API call. twilio-go takes no context, so the client's
// timeout is the only bound.
const (
	attemptTimeout = 15 * time.Second
	callTimeout    = 30 * time.Second
)

// apiClient is twilio-go pointed at api_url, with two HTTP clients: sends
// retry only what Twilio never processed (429, failed dial), because a
// message create is not idempotent; reads (reconciliation) retry freely.
type apiClient struct {
	send *api.ApiService
	read *api.ApiService
}

func newAPIClient(cfg Config, transport http.RoundTripper) (*apiClient, error) {
	base, err := url.Parse(cfg.apiURL())
	if err != nil {
		return nil, fmt.Errorf("twilio api_url: %w", err)
	}
	if transport == nil {
		transport = cleanhttp.DefaultPooledTransport()
	}
	rt := rewriteHost{target: base, next: transport}
	return &apiClient{
		send: service(cfg, retryingClient(rt, sendRetryPolicy, 2)),
		read: service(cfg, retryingClient(rt, retryablehttp.DefaultRetryPolicy, 3)),
	}, nil
}

func service(cfg Config, hc *http.Client) *api.ApiService {
	c := &client.Client{Credentials: client.NewCredentials(cfg.AccountSID, cfg.AuthToken.Reveal()), HTTPClient: hc}
	c.SetAccountSid(cfg.AccountSID)
	return twiliogo.NewRestClientWithParams(twiliogo.ClientParams{Client: c}).Api
}

func retryingClient(rt http.RoundTripper, policy retryablehttp.CheckRetry, retries int) *http.Client {
	rc := retryablehttp.NewClient()
	// Never follow a redirect: a 3xx to a create is not a sent message (and
	// a followed POST becomes a GET). The inner client is the one that would.
	rc.HTTPClient = &http.Client{Transport: rt, Timeout: attemptTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	rc.Logger = nil
	rc.RetryMax = retries
	rc.RetryWaitMin, rc.RetryWaitMax = 200*time.Millisecond, 2*time.Second
	rc.CheckRetry = policy
	rc.Backoff = func(lo, hi time.Duration, n int, resp *http.Response) time.Duration {
		return min(retryablehttp.DefaultBackoff(lo, hi, n, resp), hi) // Retry-After, capped
	}
	// Keep Twilio's error body: without this twilio-go sees a generic
	// "giving up" error instead of its TwilioRestError code.
	rc.ErrorHandler = retryablehttp.PassthroughErrorHandler
	hc := rc.StandardClient()
	hc.Timeout = callTimeout
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return hc
}

// sendRetryPolicy retries a message create only when Twilio certainly did
// not process it: a 429, or a connection that never opened.
func sendRetryPolicy(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	if err != nil {
		return neverSent(err), nil
	}
	return resp.StatusCode == http.StatusTooManyRequests, nil
}

// neverSent: a failed dial or DNS lookup means no byte reached Twilio.
func neverSent(err error) bool {
	var op *net.OpError
	var dns *net.DNSError
	return (errors.As(err, &op) && op.Op == "dial") || errors.As(err, &dns)
}

// rewriteHost sends every request to api_url: twilio-go has no base-URL
// setting (its host is hard-coded), and tests and proxies need one.
type rewriteHost struct {
	target *url.URL
	next   http.RoundTripper
}

func (t rewriteHost) RoundTrip(r *http.Request) (*http.Response, error) {
	r2 := r.Clone(r.Context())
	r2.URL.Scheme, r2.URL.Host, r2.Host = t.target.Scheme, t.target.Host, t.target.Host
	if prefix := strings.TrimSuffix(t.target.Path, "/"); prefix != "" {
		r2.URL.Path = prefix + r2.URL.Path
	}
	return t.next.RoundTrip(r2)
}
