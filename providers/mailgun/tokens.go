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
// process: the check and the record are not one atomic step.
//
// The registry is global (channels of one Mailgun account share the signing
// key, so a token used on one channel must not sign anything else on
// another), and each channel also notes the tokens it took: Mailgun posts a
// domain's events to every URL set for it, so channels sharing a domain get
// the same webhook with the same token, and each must take it once.
const (
	nsTokens      = "mailgun-token"       // token → what it signed
	nsTokensTaken = "mailgun-token-taken" // channel|token → what it signed, taken by that channel
)

// errTokenReplayed: a signed token came back with something else.
var errTokenReplayed = errors.New("mailgun: webhook token already used for another message or event")

// checkToken reports whether this channel took token with subject before
// (a retry), and errTokenReplayed when token signed something else, on any
// channel.
func (p *Provider) checkToken(ctx context.Context, token, subject string) (seen bool, err error) {
	signed, found, err := p.deps.Records.Get(ctx, nsTokens, token)
	switch {
	case err != nil:
		return false, err
	case !found || len(signed) == 0:
		return false, nil
	case string(signed) != subject:
		return false, errTokenReplayed
	}
	_, taken, err := p.deps.Records.Get(ctx, nsTokensTaken, p.takenKey(token))
	return taken, err
}

// recordToken registers what token signed, and that this channel took it,
// for as long as anything about one message is kept (far longer than
// Mailgun retries a webhook).
func (p *Provider) recordToken(ctx context.Context, token, subject string) error {
	expires := providers.MessageRecordExpiry()
	if err := p.deps.Records.PutUntil(ctx, nsTokens, token, []byte(subject), expires); err != nil {
		return err
	}
	return p.deps.Records.PutUntil(ctx, nsTokensTaken, p.takenKey(token), []byte(subject), expires)
}

// takenKey names a token taken by this channel.
func (p *Provider) takenKey(token string) string { return p.deps.ChannelID + "|" + token }
