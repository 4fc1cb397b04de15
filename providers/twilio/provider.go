package twilio

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/bonychat/bonychat-adapter/providers"
)

// Provider is one Twilio channel.
type Provider struct {
	cfg      Config
	deps     providers.Deps
	api      *apiClient
	now      func() time.Time
	arrivals providers.ArrivalOrder // per contact: inbound messages stored in the order they arrived
}

// New builds the provider for one channel from a validated Config.
func New(cfg Config, deps providers.Deps) (*Provider, error) {
	api, err := newAPIClient(cfg, deps.Transport)
	if err != nil {
		return nil, err
	}
	warnOfRotationEnd(cfg, deps)
	return &Provider{cfg: cfg, deps: deps, api: api, now: time.Now}, nil
}

// Kind implements providers.Provider.
func (p *Provider) Kind() string { return Kind }

// Routes implements providers.WebhookProvider: the number's "A message
// comes in" URL and the per-message status callback. Both are verified by
// signature, not bearer token.
func (p *Provider) Routes() []providers.Route {
	return []providers.Route{
		{Method: http.MethodPost, Action: "inbound", Handler: p.handleInbound},
		{Method: http.MethodPost, Action: "status", Handler: p.handleStatus},
	}
}

// Record namespaces of this provider (kept through deps.Records).
const (
	nsOptOut     = "twilio-optout"     // sender|contact → "1" while opted out
	nsQuickReply = "twilio-quickreply" // channel|contact → quickReplyMemo
	nsParts      = "twilio-parts"      // mId → partsMemo: the SIDs of the parts sent so far
	nsPartStatus = "twilio-partstatus" // channel|mId → map part → status, to report the message as a whole
	nsRecentSIDs = "twilio-recent"     // contact → recentSIDs, excluded when reconciling
	// mId → unix ms: a part Resume did not find yet; Send looks again first.
	nsUnconfirmed = "twilio-unconfirmed"
)

func optOutKey(sender, contact string) string { return sender + "|" + contact }

// quickReplyMemo remembers the options last offered to a contact, so that a
// reply of "2" reaches BonyChat as the second option's text.
type quickReplyMemo struct {
	Options []string  `json:"options"`
	Expires time.Time `json:"expires"`
}

// quickReplyTTL is how long offered options are remembered.
const quickReplyTTL = 24 * time.Hour

func (p *Provider) quickReplyKey(contact string) string { return p.deps.ChannelID + "|" + contact }

// optedOut: the contact replied STOP to this sender (and not START since).
// Records has no delete, so an empty value stands for "not opted out".
func (p *Provider) optedOut(ctx context.Context, contact string) (bool, error) {
	v, found, err := p.deps.Records.Get(ctx, nsOptOut, optOutKey(p.cfg.sender(), contact))
	return found && len(v) > 0, err
}

// setOptOut records a STOP (true) or clears it on START (false).
func (p *Provider) setOptOut(ctx context.Context, contact string, out bool) error {
	var value []byte
	if out {
		value = []byte("1")
	}
	return p.deps.Records.Put(ctx, nsOptOut, optOutKey(p.cfg.sender(), contact), value)
}

func (p *Provider) getJSON(ctx context.Context, ns, key string, v any) (bool, error) {
	raw, found, err := p.deps.Records.Get(ctx, ns, key)
	if err != nil || !found || len(raw) == 0 {
		return false, err
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return false, fmt.Errorf("twilio: record %s/%s: %w", ns, key, err)
	}
	return true, nil
}

// putJSON keeps a record for good (zero expires) or until expires.
func (p *Provider) putJSON(ctx context.Context, ns, key string, v any, expires time.Time) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return p.deps.Records.PutUntil(ctx, ns, key, raw, expires)
}

// warnOfRotationEnd says at start-up that previous_auth_token (or its end
// date, left behind) should go.
func warnOfRotationEnd(cfg Config, deps providers.Deps) {
	switch {
	case deps.Log == nil:
	case cfg.PreviousAuthToken != "" && cfg.PreviousAuthTokenUntil.Passed(time.Now()):
		deps.Log.Warn("twilio.previous_auth_token_until has passed: signatures made with previous_auth_token "+
			"are refused; remove it", "channel", deps.ChannelID)
	case cfg.PreviousAuthToken == "" && cfg.PreviousAuthTokenUntil != "":
		deps.Log.Warn("twilio.previous_auth_token_until is set but previous_auth_token is not; remove it",
			"channel", deps.ChannelID)
	}
}
