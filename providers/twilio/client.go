package twilio

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-cleanhttp"
	"github.com/hashicorp/go-retryablehttp"
	"github.com/twilio/twilio-go/client"
	api "github.com/twilio/twilio-go/rest/api/v2010"

	"github.com/bonychat/bonychat-adapter/providers"
)

// Bounds of one API call: each attempt, and all attempts with the sleeps
// between them. A send is also bounded by its caller's context.
const (
	attemptTimeout = 15 * time.Second
	callTimeout    = 30 * time.Second
)

// apiClient is twilio-go pointed at api_url, with two HTTP clients: sends
// retry only what Twilio never processed (429, failed dial), because a
// message create is not idempotent; reads (reconciliation) retry freely.
type apiClient struct {
	cfg   Config
	send  *http.Client
	read  *api.ApiService
	clock *twilioClock
}

func newAPIClient(cfg Config, transport http.RoundTripper) (*apiClient, error) {
	base, err := url.Parse(cfg.apiURL())
	if err != nil {
		return nil, fmt.Errorf("twilio api_url: %w", err)
	}
	if transport == nil {
		transport = cleanhttp.DefaultPooledTransport()
	}
	clock := &twilioClock{}
	rt := recordAttempts{clock: clock, next: rewriteHost{target: base, next: transport}}
	return &apiClient{
		cfg:   cfg,
		clock: clock,
		send: providers.NewAPIClient(rt, providers.APIClientConfig{Retries: 2,
			AttemptTimeout: attemptTimeout, CallTimeout: callTimeout, Policy: sendRetryPolicy}),
		read: service(cfg, providers.NewAPIClient(rt, providers.APIClientConfig{Retries: 3,
			AttemptTimeout: attemptTimeout, CallTimeout: callTimeout, Policy: retryablehttp.DefaultRetryPolicy})),
	}, nil
}

func service(cfg Config, hc *http.Client) *api.ApiService {
	c := &client.Client{Credentials: client.NewCredentials(cfg.AccountSID, cfg.AuthToken.Reveal()), HTTPClient: hc}
	c.SetAccountSid(cfg.AccountSID)
	return api.NewApiServiceWithClient(c)
}

// sendService is twilio-go for one send under ctx, and the log its
// attempts fill. twilio-go builds every request on context.Background(),
// so ctx reaches the request through this call's own HTTP client; the
// pooled connections and the retry policy stay shared.
func (a *apiClient) sendService(ctx context.Context) (*api.ApiService, *callLog) {
	log := &callLog{}
	hc := &http.Client{
		Transport:     callTransport{ctx: ctx, log: log, next: a.send.Transport},
		Timeout:       a.send.Timeout,
		CheckRedirect: a.send.CheckRedirect,
	}
	return service(a.cfg, hc), log
}

// sendRetryPolicy is providers.SendRetryPolicy, except that a 429 asking
// for a longer wait than the client sleeps between attempts ends the call:
// retrying sooner would ignore Twilio's request, so the outbound queue
// waits it instead (the Retry-After travels on the SendError).
func sendRetryPolicy(ctx context.Context, resp *http.Response, err error) (bool, error) {
	retry, perr := providers.SendRetryPolicy(ctx, resp, err)
	if retry && providers.ResponseRetryAfter(resp, time.Now()) > providers.APIRetryWaitMax {
		return false, nil
	}
	return retry, perr
}

// callLog is what the attempts of one send showed. twilio-go turns
// Twilio's answer into an error without its headers, and an error alone
// cannot tell "stopped before sending" from "cut off after sending", so
// the transport under the retrying client notes each attempt here.
type callLog struct {
	mu         sync.Mutex
	attempts   int
	reached    bool          // an attempt may have reached Twilio
	lastStatus int           // the last attempt's answer; 0 when it had none
	retryAfter time.Duration // the last answer's Retry-After (429, 503)
}

// callSummary is a callLog read once the call is over.
type callSummary struct {
	attempts   int
	reached    bool
	lastStatus int
	retryAfter time.Duration
}

// record notes one attempt. Only two outcomes prove Twilio did not act:
// a 429 (Twilio documents it as never processed) and a failed dial.
// Anything else, a cut-off attempt included, may have sent the message (a
// 408 or 409 in Twilio's own body says otherwise: restError).
func (l *callLog) record(resp *http.Response, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.attempts++
	l.lastStatus, l.retryAfter = 0, 0
	if err != nil {
		l.reached = l.reached || !providers.NeverSent(err)
		return
	}
	l.lastStatus = resp.StatusCode
	l.retryAfter = providers.ResponseRetryAfter(resp, time.Now())
	l.reached = l.reached || resp.StatusCode != http.StatusTooManyRequests
}

func (l *callLog) summary() callSummary {
	l.mu.Lock()
	defer l.mu.Unlock()
	return callSummary{attempts: l.attempts, reached: l.reached, lastStatus: l.lastStatus, retryAfter: l.retryAfter}
}

type callLogKey struct{}

func callLogFrom(ctx context.Context) *callLog {
	log, _ := ctx.Value(callLogKey{}).(*callLog)
	return log
}

// callTransport runs one send's request under the caller's context as
// well as the client's own deadline: a caller that is gone stops the send
// before it is made, the dial, the wait for the answer, and the sleep
// between retries (go-retryablehttp sleeps on the request's context).
type callTransport struct {
	ctx  context.Context
	log  *callLog
	next http.RoundTripper // the retrying client's
}

func (t callTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if err := t.ctx.Err(); err != nil {
		closeRequestBody(r)
		return nil, fmt.Errorf("not sent: %w", err)
	}
	ctx, cancel := context.WithCancelCause(context.WithValue(r.Context(), callLogKey{}, t.log))
	stop := context.AfterFunc(t.ctx, func() { cancel(context.Cause(t.ctx)) })
	release := func() { stop(); cancel(nil) }
	resp, err := t.next.RoundTrip(r.WithContext(ctx))
	if err != nil {
		if resp != nil { // go-retryablehttp hands back both when its policy stops on ctx
			_ = resp.Body.Close()
		}
		release()
		return nil, err
	}
	// The body is read under ctx; twilio-go does not close an error body,
	// so the caller's context ending releases it too.
	resp.Body = &releaseOnClose{ReadCloser: resp.Body, release: release}
	return resp, nil
}

type releaseOnClose struct {
	io.ReadCloser
	release func()
}

func (b *releaseOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.release()
	return err
}

// recordAttempts sits under the retrying client and notes every attempt of
// a send in the callLog its context carries (reads carry none), and the
// clock of every answer. An attempt whose context is already over is not
// made: it would fail anyway, and noted as cut off it would make a send
// that never left look ambiguous.
type recordAttempts struct {
	clock *twilioClock
	next  http.RoundTripper
}

func (t recordAttempts) RoundTrip(r *http.Request) (*http.Response, error) {
	log := callLogFrom(r.Context())
	if log != nil {
		if err := r.Context().Err(); err != nil {
			closeRequestBody(r)
			return nil, fmt.Errorf("not sent: %w", err)
		}
	}
	resp, err := t.next.RoundTrip(r)
	if err == nil {
		t.clock.observe(resp, time.Now())
	}
	if log != nil {
		log.record(resp, err)
	}
	return resp, err
}

// twilioClock tracks how far our clock runs ahead of Twilio's, from the
// Date header of its answers. A look-up for a message in doubt compares
// our time of the attempt with Twilio's date_created; with our clock ahead
// by more than reconcileSkew it would miss the message and send it again.
type twilioClock struct{ ahead atomic.Int64 } // ns, ≥ 0; 0 until an answer says otherwise

// maxClockAhead bounds what the Date header can widen a look-up by: a
// wrong header (a proxy's) must not make it reach far back, where an
// identical older message could pass for the one in doubt.
const maxClockAhead = 10 * time.Minute

// observe takes the latest answer's Date (whole seconds, made before the
// answer arrived: the estimate errs towards "ahead", which only widens a
// look-up).
func (c *twilioClock) observe(resp *http.Response, received time.Time) {
	date, err := http.ParseTime(resp.Header.Get("Date"))
	if err != nil {
		return
	}
	c.ahead.Store(int64(min(max(received.Sub(date), 0), maxClockAhead)))
}

// twilioTime is our time t on Twilio's clock, as far as it is behind ours.
func (c *twilioClock) twilioTime(t time.Time) time.Time {
	return t.Add(-time.Duration(c.ahead.Load()))
}

// closeRequestBody: a RoundTripper closes the body even when it sends nothing.
func closeRequestBody(r *http.Request) {
	if r.Body != nil {
		_ = r.Body.Close()
	}
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
