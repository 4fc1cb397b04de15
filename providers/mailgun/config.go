package mailgun

import (
	"net/mail"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/bonychat/bonychat-adapter/providers"
)

// Kind is the provider name in configuration and routes.
const Kind = "mailgun"

// Config is a channel's mailgun: section. The keys are part of the contract.
type Config struct {
	Domain string           `yaml:"domain"`
	APIKey providers.Secret `yaml:"api_key"`
	// WebhookSigningKey is Mailgun's "HTTP webhook signing key". It is
	// required and never falls back to APIKey (mailgun-go's does).
	WebhookSigningKey providers.Secret `yaml:"webhook_signing_key"`
	// APIURL is the API root without a version (default
	// https://api.mailgun.net; EU: https://api.eu.mailgun.net).
	APIURL  string `yaml:"api_url"`
	From    string `yaml:"from"`
	Subject string `yaml:"subject"` // subject of a new thread
	// SignatureMaxAge is the accepted age of a webhook timestamp; Mailgun's
	// retries reuse the original one for hours (default 24h).
	SignatureMaxAge time.Duration `yaml:"signature_max_age"`
	// BusinessAddresses are the business's own addresses or domains
	// ("agent@acme.com", "acme.com"): mail from them, copied to the channel
	// address, is posted as message_echo for the contact it went to, when
	// Mailgun verified its sender (Forward.SenderVerified).
	BusinessAddresses []string `yaml:"business_addresses"`
	// ReconcileWait is how long an e-mail Mailgun may have taken unseen
	// (a send cut off by a crash, its answer lost) is given to show in its
	// events before it is taken as never taken and sent again. Default
	// DefaultReconcileWait.
	ReconcileWait time.Duration `yaml:"reconcile_wait"`
}

// Defaults of the optional keys.
const (
	DefaultAPIURL          = "https://api.mailgun.net"
	DefaultSignatureMaxAge = 24 * time.Hour
	// DefaultReconcileWait: Mailgun's events can show minutes late.
	DefaultReconcileWait = 5 * time.Minute
	// minReconcileWait keeps a typo (1ms) from sending an e-mail twice;
	// maxReconcileWait keeps the wait well within the life of the mark it
	// runs from (providers.MessageRecordTTL).
	minReconcileWait = time.Second
	maxReconcileWait = 24 * time.Hour
)

var (
	// domainPattern: a DNS name of at least two labels. mailgun-go refuses
	// any of :&'@(),!?#;%+=<> in it before sending.
	domainPattern = regexp.MustCompile(`^(?i)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$`)
	// versionSuffix: api_url is the root; mailgun-go appends /v3 itself.
	versionSuffix = regexp.MustCompile(`/v[0-9]+/?$`)
)

// Problems lists what is wrong, each as "key: problem" relative to the
// mailgun: section.
func (c *Config) Problems() []string {
	var out []string
	add := func(ok bool, msg string) {
		if !ok {
			out = append(out, msg)
		}
	}
	add(c.Domain != "", "domain: required")
	add(c.Domain == "" || domainPattern.MatchString(c.Domain), "domain: must be a domain name such as mg.example.com")
	add(c.APIKey != "", "api_key: required")
	add(c.WebhookSigningKey != "", "webhook_signing_key: required (Mailgun's HTTP webhook signing key)")
	add(c.WebhookSigningKey == "" || c.WebhookSigningKey != c.APIKey,
		"webhook_signing_key: must be the HTTP webhook signing key, not the API key")
	add(c.APIURL == "" || validAPIURL(c.APIURL),
		"api_url: must be an absolute http(s) URL of the API root, without /v3 (such as https://api.eu.mailgun.net)")
	add(c.From != "", "from: required")
	add(c.From == "" || c.fromAddress() != "", "from: must be an e-mail address, optionally with a display name")
	add(strings.TrimSpace(c.Subject) != "", "subject: required")
	add(!strings.ContainsAny(c.Subject, "\r\n"), "subject: must be one line")
	add(c.SignatureMaxAge >= 0, "signature_max_age: must not be negative")
	add(c.ReconcileWait == 0 || c.ReconcileWait >= minReconcileWait, "reconcile_wait: must be at least 1s")
	add(c.ReconcileWait <= maxReconcileWait, "reconcile_wait: must be at most 24h")
	return out
}

// Secrets lists the values that must never be logged.
func (c *Config) Secrets() []string {
	return []string{c.APIKey.Reveal(), c.WebhookSigningKey.Reveal()}
}

func validAPIURL(s string) bool {
	if !providers.IsHTTPURL(s) {
		return false
	}
	u, err := url.Parse(s)
	return err == nil && u.RawQuery == "" && u.Fragment == "" && u.User == nil && !versionSuffix.MatchString(u.Path)
}

// apiBase is what mailgun-go's SetAPIBase takes: the root and "/v3".
func (c *Config) apiBase() string {
	root := c.APIURL
	if root == "" {
		root = DefaultAPIURL
	}
	return strings.TrimRight(root, "/") + "/v3"
}

// EffectiveReconcileWait is reconcile_wait, or its default when the key is
// left out.
func (c *Config) EffectiveReconcileWait() time.Duration {
	if c.ReconcileWait == 0 {
		return DefaultReconcileWait
	}
	return c.ReconcileWait
}

// EffectiveSignatureMaxAge is signature_max_age, or its default when the
// key is left out: how long a signed webhook is accepted.
func (c *Config) EffectiveSignatureMaxAge() time.Duration {
	if c.SignatureMaxAge == 0 {
		return DefaultSignatureMaxAge
	}
	return c.SignatureMaxAge
}

// fromAddress is the bare address of From ("" when it is not one).
func (c *Config) fromAddress() string {
	a, err := mail.ParseAddress(c.From)
	if err != nil {
		return ""
	}
	return a.Address
}
