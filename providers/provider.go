// Package providers defines what a messaging provider must do for the adapter
// (the Provider contract), the send-error taxonomy that drives retries, and
// helpers shared by the providers. Providers never import the adapter: it
// hands them what they need through the small interfaces declared here.
package providers

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/bonychat/bonychat-adapter/schema"
)

// Recipient says who an outbound message is for.
type Recipient struct {
	ChannelID string
	ContactID string
}

// Sent is what a provider accepted: its own IDs for the message (several
// when it was split into parts).
type Sent struct {
	ProviderIDs []string
}

// Provider delivers outbound messages for one channel. One value serves one
// channel, with that channel's account and settings.
type Provider interface {
	// Kind names the provider in configuration and routes ("console", "twilio").
	Kind() string
	// Send delivers one message. A failure is a *SendError whose Kind says
	// whether and how to retry.
	Send(ctx context.Context, to Recipient, m schema.Message, mID string) (Sent, error)
}

// Resumer is implemented by a provider that can find out whether a send a
// crash cut off reached it, so that the message is neither lost nor sent
// twice. Resume settles such a send (attempted no earlier than since): Sent
// when the provider has the message; a retryable error (with a RetryAfter)
// when it does not show it yet or cannot be asked, the provider then
// looking again before the retry sends anything; Ambiguous when it can
// never tell. A provider without it has the job reported failed, outcome
// unknown.
type Resumer interface {
	Resume(ctx context.Context, to Recipient, m schema.Message, mID string, since time.Time) (Sent, error)
}

// Route is one webhook endpoint a provider serves for its channel, mounted
// by the adapter at /{kind}/{channelId}/{action}.
type Route struct {
	Method string
	Action string
	// BearerAuth asks the adapter to check the channel's token before the
	// handler runs; providers with signed webhooks verify them themselves.
	BearerAuth bool
	// MaxBodyBytes raises the server's body limit for this route (e-mail
	// forwards carry attachments); 0 keeps http.max_body_bytes.
	MaxBodyBytes int64
	Handler      http.HandlerFunc
}

// WebhookProvider is a provider that receives webhooks.
type WebhookProvider interface {
	Routes() []Route
}

// Inbound is what a verified provider webhook produced for one contact.
type Inbound struct {
	// DedupeKey is the provider's ID of what it delivered (Twilio MessageSid,
	// e-mail Message-Id): a redelivery with the same key is acknowledged
	// and posts nothing. Empty: each event's mId is the key.
	DedupeKey string
	// Keys are further names recorded in the same transaction as the
	// events, each with a value (e.g. a webhook token and the Message-Id it
	// signed). A key already recorded with the same value is a redelivery
	// (acknowledged, nothing posted); with another value it is a replay, and
	// Ingest fails with an IngestError of status 406.
	Keys      []InboundKey
	ContactID string
	Contact   *schema.Contact
	Events    []schema.Event
	// Media are the URLs MediaSink.Save returned for these events, and
	// for nothing else (never a URL a sender supplied), saved anew for
	// this one Ingest call. Ingest removes them when it knows the events
	// were not stored (refused, dropped as a duplicate, or a store failure
	// that wrote nothing): nothing will ever link them, and a redelivery
	// saves its own copies. When it cannot tell, they are kept until
	// media.retention. (Calling Ingest again with the same URLs could find
	// the first call's events, stored after all, as a duplicate.)
	Media []string
}

// InboundKey is one extra key of an Inbound.
type InboundKey struct {
	Name  string
	Value string
}

// Ingester takes inbound events. It returns nil only when the events are
// safe (delivered or stored): a provider acknowledges its webhook after that
// and answers an error status otherwise, so the provider redelivers. It
// owns Inbound.Media from the call on, whatever it returns: the caller
// neither removes nor reuses them.
type Ingester interface {
	Ingest(ctx context.Context, in Inbound) ([]string, error)
}

// InboundDedupe is implemented by an Ingester that can tell, before any
// work, whether it already took the inbound message with this dedupe key
// (Inbound.DedupeKey): a provider's redelivery is then acknowledged at once,
// without downloading its media again. An error is no answer: the message
// goes the full way, and Ingest's own dedupe drops it.
type InboundDedupe interface {
	Taken(ctx context.Context, dedupeKey string) (bool, error)
}

// IngestFunc adapts a function to Ingester.
type IngestFunc func(ctx context.Context, in Inbound) ([]string, error)

// Ingest calls f.
func (f IngestFunc) Ingest(ctx context.Context, in Inbound) ([]string, error) { return f(ctx, in) }

// MediaSink stores media that BonyChat could not open from the provider
// (it needs credentials, or has no URL at all) and returns a public URL of
// this server for it. A body over the size it keeps (media.max_bytes) is
// refused with ErrMediaTooLarge: no retry mends that, so the caller posts
// a note instead of failing the message.
type MediaSink interface {
	Save(ctx context.Context, fileName, contentType string, body []byte) (url string, err error)
}

// ErrMediaTooLarge is a MediaSink's refusal of a body over its size limit.
var ErrMediaTooLarge = errors.New("media over the size this server keeps (media.max_bytes)")

// MediaDiscarder is implemented by a MediaSink that can take back what it
// saved: Discard removes the media at urls (as Save returned them), file
// and record, even when ctx is already done. Only for media nothing links
// to: those of an inbound message a provider gave up before handing it to
// Ingest (which takes back the media of what it does not store itself).
type MediaDiscarder interface {
	Discard(ctx context.Context, urls []string) error
}

// DiscardMedia removes media saved for an inbound message that will not
// reach Ingest, when sink can (MediaDiscarder); otherwise, and when it
// fails, they stay until media.retention. A failure is logged, not
// returned: the webhook's answer does not depend on it.
func DiscardMedia(ctx context.Context, log *slog.Logger, sink MediaSink, urls []string) {
	d, ok := sink.(MediaDiscarder)
	if !ok || len(urls) == 0 {
		return
	}
	if err := d.Discard(ctx, urls); err != nil && log != nil {
		log.Warn("media of an inbound message not stored could not all be removed; they expire with media.retention",
			"media", len(urls), "error", err.Error())
	}
}

// StatusSink takes delivery receipts for messages BonyChat sent through
// /message. It posts a message_status event only when the status moves
// forward (sent < delivered < read; failed is final), so providers may pass
// every callback, late and duplicate ones included.
type StatusSink interface {
	PostStatus(ctx context.Context, contactID, mID, value, reason string) error
}

// Records keeps small durable records a provider needs between requests
// (opt-outs, quick-reply options, e-mail threads), by namespace and key.
type Records interface {
	// Put keeps a record for good (those of a contact: a handful each).
	Put(ctx context.Context, ns, key string, value []byte) error
	// PutUntil keeps a record until expires (zero: for good, as Put): those
	// written per message or per webhook, which would otherwise grow the
	// store forever.
	PutUntil(ctx context.Context, ns, key string, value []byte, expires time.Time) error
	// Get reports found=false, with no error, when there is no record (or
	// it expired).
	Get(ctx context.Context, ns, key string) (value []byte, found bool, err error)
}

// MessageRecordTTL is how long what is kept per message lives: provider
// records about one message or webhook, and the message's last status.
// A receipt arriving later is taken as the first news of its message.
const MessageRecordTTL = 30 * 24 * time.Hour

// MessageRecordExpiry is when a record about one message, written now,
// expires.
func MessageRecordExpiry() time.Time { return time.Now().Add(MessageRecordTTL) }

// Deps is what the adapter hands a provider for one channel.
type Deps struct {
	ChannelID string
	IDType    schema.IDType
	// PublicURL is how providers reach this server (signed webhook URLs,
	// status callbacks), without a trailing slash.
	PublicURL string
	Log       *slog.Logger
	Ingest    Ingester
	Statuses  StatusSink
	Media     MediaSink
	Fetcher   *Fetcher
	Records   Records
	// Transport carries the provider's API calls (tests: loopback only).
	Transport http.RoundTripper
}
