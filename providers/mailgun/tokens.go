package mailgun

import (
	"context"
	"errors"

	"github.com/bonychat/bonychat-adapter/providers"
)

// Mailgun's signature covers only timestamp and token, never the body, so
// a captured signature could be replayed with another body for as long as
// the timestamp is accepted. Every signed token is therefore registered
// with what it signed ("inbound:<message>", "event:<event id>"), on both
// routes: the same token with the same subject is a Mailgun retry; with
// anything else it is a replay. (The inbound route also records its token
// in the same transaction as the events, see handleInbound.) Single
// process: the check and the record are not one atomic step. Tokens are
// registered per channel (key channel ID "|" token): Mailgun posts a
// domain's events to every URL set for it, so channels sharing a domain
// each get the same webhook, and each must take it.
const nsTokens = "mailgun-token"

// errTokenReplayed: a signed token came back with something else.
var errTokenReplayed = errors.New("mailgun: webhook token already used for another message or event")

// checkToken reports whether token was seen with subject before (a retry),
// and errTokenReplayed when it was seen with something else.
func (p *Provider) checkToken(ctx context.Context, token, subject string) (seen bool, err error) {
	v, found, err := p.deps.Records.Get(ctx, nsTokens, p.tokenKey(token))
	switch {
	case err != nil:
		return false, err
	case !found || len(v) == 0:
		return false, nil
	case string(v) != subject:
		return false, errTokenReplayed
	}
	return true, nil
}

// recordToken registers what token signed, for as long as anything about
// one message is kept (far longer than Mailgun retries a webhook).
func (p *Provider) recordToken(ctx context.Context, token, subject string) error {
	return p.deps.Records.PutUntil(ctx, nsTokens, p.tokenKey(token), []byte(subject), providers.MessageRecordExpiry())
}

// tokenKey names a token's record on this channel.
func (p *Provider) tokenKey(token string) string { return p.deps.ChannelID + "|" + token }
