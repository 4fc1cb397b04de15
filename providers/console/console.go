// Package console is the zero-credential provider: it writes each outbound
// message to the log as a contact would see it, and accepts simulated
// contact messages on POST /console/{channelId}/inbound, turning them into
// BonyChat events exactly as a real provider's webhook would.
package console

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/bonychat/bonychat-adapter/providers"
	"github.com/bonychat/bonychat-adapter/schema"
)

// Kind is the provider name in configuration.
const Kind = "console"

// Provider is one console channel.
type Provider struct {
	channelID string
	idType    schema.IDType
	log       *slog.Logger
	ingest    providers.Ingester
}

// New builds the console provider for one channel.
func New(d providers.Deps) *Provider {
	return &Provider{channelID: d.ChannelID, idType: d.IDType, log: d.Log, ingest: d.Ingest}
}

// Kind implements providers.Provider.
func (p *Provider) Kind() string { return Kind }

// Send renders the message to the log and "delivers" it at once.
func (p *Provider) Send(_ context.Context, to providers.Recipient, m schema.Message, mID string) (providers.Sent, error) {
	p.log.Info("console delivery", "contact", to.ContactID,
		"mId", mID, "type", m.Type, "rendered", Render(m))
	return providers.Sent{ProviderIDs: []string{"console-" + mID}}, nil
}

// Render writes a message as plain text, as an SMS-only contact would see it.
func Render(m schema.Message) string {
	switch m.Type {
	case schema.TypeText:
		return providers.Deref(m.Text)
	case schema.TypeAttachment:
		return renderAttachment(m.Attachment)
	case schema.TypeLocation:
		return providers.LocationText(m)
	case schema.TypeQuickReply:
		return providers.QuickReplyText(m)
	}
	return ""
}

func renderAttachment(a *schema.Attachment) string {
	if a == nil {
		return ""
	}
	label := a.FileName
	if label == "" {
		label = a.Type
	}
	s := fmt.Sprintf("[%s] %s", label, a.URL)
	if a.Description != "" {
		s = a.Description + "\n" + s
	}
	return s
}
