// Package twilio is the SMS, MMS and WhatsApp provider: it sends through
// Twilio's Messages API (twilio-go), receives the number's inbound webhook
// and the per-message status callbacks, checks X-Twilio-Signature against
// the configured public URL, and keeps opt-outs and quick-reply options.
package twilio

import (
	"regexp"
	"time"

	"github.com/bonychat/bonychat-adapter/providers"
)

// Kind is the provider name in configuration and routes.
const Kind = "twilio"

// Config is a channel's twilio: section. The keys are part of the contract.
type Config struct {
	AccountSID        string           `yaml:"account_sid"`
	AuthToken         providers.Secret `yaml:"auth_token"`
	PreviousAuthToken providers.Secret `yaml:"previous_auth_token"` // also accepted for signatures during rotation
	// PreviousAuthTokenUntil ends the rotation: signatures made with
	// previous_auth_token are refused from then on.
	PreviousAuthTokenUntil providers.Until `yaml:"previous_auth_token_until"`
	From                   string          `yaml:"from"`
	MessagingServiceSID    string          `yaml:"messaging_service_sid"`
	APIURL                 string          `yaml:"api_url"` // default https://api.twilio.com
	MMS                    *bool           `yaml:"mms"`     // default true: media as MMS; false: as links
	WhatsApp               bool            `yaml:"whatsapp"`
	// ReconcileWait is how long a message whose create may have reached
	// Twilio unseen (cut off by a crash, its answer lost) is given to show
	// up in Twilio's message list before it is taken as never made and sent
	// again. Default DefaultReconcileWait.
	ReconcileWait time.Duration `yaml:"reconcile_wait"`
}

// DefaultReconcileWait is reconcile_wait when it is not set: a create on
// its way when the doubt arose may still be processed meanwhile.
const DefaultReconcileWait = 30 * time.Second

// minReconcileWait keeps a typo (1ms) from sending a message twice;
// maxReconcileWait keeps the wait well within the life of the mark it runs
// from (providers.MessageRecordTTL).
const (
	minReconcileWait = time.Second
	maxReconcileWait = 24 * time.Hour
)

// DefaultAPIURL is Twilio's REST API root.
const DefaultAPIURL = "https://api.twilio.com"

var (
	accountSIDPattern = regexp.MustCompile(`^AC[0-9a-fA-F]{32}$`)
	serviceSIDPattern = regexp.MustCompile(`^MG[0-9a-fA-F]{32}$`)
	// twilio-go refuses non-alphanumeric credentials before any request.
	alphanumeric = regexp.MustCompile(`^[A-Za-z0-9]+$`)
	e164         = regexp.MustCompile(`^\+[1-9][0-9]{1,14}$`)
)

// Problems lists what is wrong, each as "key: problem" relative to the
// twilio: section.
func (c *Config) Problems() []string {
	var out []string
	add := func(ok bool, msg string) {
		if !ok {
			out = append(out, msg)
		}
	}
	add(accountSIDPattern.MatchString(c.AccountSID), "account_sid: must be AC followed by 32 hex characters")
	add(c.AuthToken != "", "auth_token: required")
	add(c.AuthToken == "" || alphanumeric.MatchString(c.AuthToken.Reveal()), "auth_token: must be letters and digits only")
	add(c.PreviousAuthToken == "" || alphanumeric.MatchString(c.PreviousAuthToken.Reveal()),
		"previous_auth_token: must be letters and digits only")
	add(c.PreviousAuthTokenUntil.Problem() == "", "previous_auth_token_until: "+c.PreviousAuthTokenUntil.Problem())
	add(c.From != "" || c.MessagingServiceSID != "", "from: one of from or messaging_service_sid is required")
	add(c.From == "" || e164.MatchString(c.From), "from: must be an E.164 number such as +15550001111")
	add(c.MessagingServiceSID == "" || serviceSIDPattern.MatchString(c.MessagingServiceSID),
		"messaging_service_sid: must be MG followed by 32 hex characters")
	add(c.APIURL == "" || providers.IsHTTPURL(c.APIURL), "api_url: must be an absolute http(s) URL")
	add(c.ReconcileWait == 0 || c.ReconcileWait >= minReconcileWait, "reconcile_wait: must be at least 1s")
	add(c.ReconcileWait <= maxReconcileWait, "reconcile_wait: must be at most 24h")
	return out
}

// Secrets lists the values that must never be logged.
func (c *Config) Secrets() []string {
	return []string{c.AuthToken.Reveal(), c.PreviousAuthToken.Reveal()}
}

func (c *Config) mms() bool { return c.MMS == nil || *c.MMS }

// EffectiveReconcileWait is reconcile_wait, or its default when the key is
// left out.
func (c *Config) EffectiveReconcileWait() time.Duration {
	if c.ReconcileWait == 0 {
		return DefaultReconcileWait
	}
	return c.ReconcileWait
}

func (c *Config) apiURL() string {
	if c.APIURL == "" {
		return DefaultAPIURL
	}
	return c.APIURL
}

// address is how Twilio names a number on this channel: WhatsApp senders
// carry the "whatsapp:" prefix on From and To.
func (c *Config) address(number string) string {
	if c.WhatsApp {
		return "whatsapp:" + number
	}
	return number
}

// sender identifies the sending side for opt-outs, which Twilio keeps per
// sender–recipient pair (per Messaging Service when one is used). A
// WhatsApp sender is whatsapp:+number, another pair than the same number's
// SMS: a STOP by SMS must not silence the WhatsApp channel on that number,
// nor the reverse.
func (c *Config) sender() string {
	if c.MessagingServiceSID != "" {
		return c.address(c.MessagingServiceSID)
	}
	return c.address(c.From)
}
