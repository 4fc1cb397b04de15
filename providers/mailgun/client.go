package mailgun

import (
	"net/http"
	"time"

	"github.com/hashicorp/go-cleanhttp"
	mailgungo "github.com/mailgun/mailgun-go/v4"

	"github.com/bonychat/bonychat-adapter/providers"
)

// Bounds of one send. mailgun-go has no timeout of its own (it uses
// http.DefaultClient unless told otherwise); the whole call is also bound
// by the caller's context.
const (
	attemptTimeout = 30 * time.Second // one POST: the body is a multipart with attachments
	callTimeout    = 60 * time.Second // all attempts and back-off sleeps
	sendRetries    = 2
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
	return providers.NewAPIClient(rt, providers.APIClientConfig{Retries: sendRetries,
		AttemptTimeout: attemptTimeout, CallTimeout: callTimeout, Policy: providers.SendRetryPolicy})
}
