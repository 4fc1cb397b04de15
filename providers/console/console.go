// Package console is the zero-credential provider: it writes each outbound
// message to the log as a contact would see it, and accepts simulated
// contact messages on POST /console/{channelId}/inbound, turning them into
// BonyChat events exactly as a real provider's webhook would.
package console

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

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
		return deref(m.Text)
	case schema.TypeAttachment:
		return renderAttachment(m.Attachment)
	case schema.TypeLocation:
		return renderLocation(m)
	case schema.TypeQuickReply:
		return renderQuickReply(m)
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

func renderLocation(m schema.Message) string {
	lat, lng := deref64(m.Latitude), deref64(m.Longitude)
	link := fmt.Sprintf("https://maps.google.com/?q=%g,%g", lat, lng)
	if addr := deref(m.Address); addr != "" {
		return addr + "\n" + link
	}
	return link
}

func renderQuickReply(m schema.Message) string {
	var b strings.Builder
	b.WriteString(deref(m.Title))
	for i, r := range m.Replies {
		fmt.Fprintf(&b, "\n%d. %s", i+1, r)
	}
	fmt.Fprintf(&b, "\nReply 1–%d", len(m.Replies))
	return b.String()
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func deref64(f *float64) float64 {
	if f == nil {
		return 0
	}
	return *f
}
