package twilio

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hashicorp/go-cleanhttp"
	"github.com/hashicorp/go-retryablehttp"
	twiliogo "github.com/twilio/twilio-go"
	"github.com/twilio/twilio-go/client"
	api "github.com/twilio/twilio-go/rest/api/v2010"

	"github.com/bonychat/bonychat-adapter/providers"
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
		send: service(cfg, providers.NewAPIClient(rt, providers.APIClientConfig{Retries: 2,
			AttemptTimeout: attemptTimeout, CallTimeout: callTimeout, Policy: providers.SendRetryPolicy})),
		read: service(cfg, providers.NewAPIClient(rt, providers.APIClientConfig{Retries: 3,
			AttemptTimeout: attemptTimeout, CallTimeout: callTimeout, Policy: retryablehttp.DefaultRetryPolicy})),
	}, nil
}

func service(cfg Config, hc *http.Client) *api.ApiService {
	c := &client.Client{Credentials: client.NewCredentials(cfg.AccountSID, cfg.AuthToken.Reveal()), HTTPClient: hc}
	c.SetAccountSid(cfg.AccountSID)
	return twiliogo.NewRestClientWithParams(twiliogo.ClientParams{Client: c}).Api
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
