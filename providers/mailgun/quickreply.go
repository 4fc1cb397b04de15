package mailgun

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/bonychat/bonychat-adapter/providers"
	"github.com/bonychat/bonychat-adapter/schema"
)

// Quick replies offered by e-mail are remembered per contact, so that an
// answer of just the number ("2", "2.", "2)") or of an option's exact text
// (any case) reaches BonyChat as that option's text, as for SMS.
const (
	nsQuickReply  = "mailgun-quickreply"
	quickReplyTTL = 24 * time.Hour
)

type quickReplyMemo struct {
	Options []string  `json:"options"`
	Expires time.Time `json:"expires"`
}

func (p *Provider) quickReplyKey(contactID string) string { return p.deps.ChannelID + "|" + contactID }

// rememberOptions records the options just offered to a contact.
// (undo puts back the options offered before: see providers.OfferRecord.)
func (p *Provider) rememberOptions(ctx context.Context, contactID, mID string, options []string) (undo func(), err error) {
	raw, err := json.Marshal(quickReplyMemo{Options: options, Expires: p.now().Add(quickReplyTTL)})
	if err != nil {
		return nil, err
	}
	return providers.OfferRecord(ctx, p.deps.Records, nsQuickReply, p.quickReplyKey(contactID), mID, raw)
}

// mapQuickReplyAnswers replaces a text event that answers the options last
// offered to the contact by the option's text.
func (p *Provider) mapQuickReplyAnswers(ctx context.Context, contactID string, events []schema.Event) {
	raw, found, err := p.deps.Records.Get(ctx, nsQuickReply, p.quickReplyKey(contactID))
	var memo quickReplyMemo
	if err != nil || !found || len(raw) == 0 || json.Unmarshal(raw, &memo) != nil || !p.now().Before(memo.Expires) {
		return
	}
	for i, e := range events {
		if e.Message == nil || e.Message.Type != schema.TypeText || e.Message.Text == nil {
			continue
		}
		if option, ok := chosenOption(*e.Message.Text, memo.Options); ok {
			events[i].Message = schema.TextMessage(option)
		}
	}
}

// chosenOption reads an answer as an option: its number or its text.
func chosenOption(answer string, options []string) (string, bool) {
	a := strings.TrimSpace(answer)
	if n, err := strconv.Atoi(strings.TrimRight(a, ".)")); err == nil && n >= 1 && n <= len(options) {
		return options[n-1], true
	}
	for _, o := range options {
		if strings.EqualFold(a, strings.TrimSpace(o)) {
			return o, true
		}
	}
	return "", false
}
