package mailgun

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/bonychat/bonychat-adapter/providers"
)

// Mailgun's signature covers only timestamp and token, never the body, so
// a captured signature could be replayed with another body for as long as
// the timestamp is accepted. Every signed token is therefore registered
// with what it signed ("inbound:<message>#<digest>", "event:<event
// id>#<digest>": the ids, and a digest of everything the body carries, so
// that keeping the id and changing the rest is caught too), on both
// routes: the same token with the same subject is a Mailgun retry; with
// anything else it is a replay. (The inbound route also records its token
// in the same transaction as the events, see handleInbound.) A webhook
// holds its token's lock (tokenLocks) from the check to the record, so two
// posts of one token at once are taken one after the other; the lock is
// in this process only (replicas will need the store to do it).
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

// tokenLocks serialises the webhooks of one token, on every channel.
var tokenLocks providers.KeyedMutex

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
	case !sameSigned(string(signed), subject):
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

// sameSigned: a token recorded with stored signed subject. A subject
// recorded before digests were added is compared by its ids (the digest
// is the last "#" part: an id may hold a "#" itself).
func sameSigned(stored, subject string) bool {
	if stored == subject {
		return true
	}
	ids, _ := splitDigest(subject)
	_, hasDigest := splitDigest(stored)
	return !hasDigest && stored == ids
}

// splitDigest splits a subject into its ids and its digest; false when it
// ends in no digest (a record from before digests).
func splitDigest(subject string) (ids string, ok bool) {
	i := strings.LastIndex(subject, "#")
	if i < 0 || len(subject)-i-1 != 2*digestBytes {
		return subject, false
	}
	if _, err := hex.DecodeString(subject[i+1:]); err != nil {
		return subject, false
	}
	return subject[:i], true
}

// forwardSubject is what a forward's token signs: its Message-Id (its
// token when it has none) and a digest of its envelope, headers, text and
// attachments.
func forwardSubject(f *Forward) string {
	id := f.MessageID
	if id == "" {
		id = f.Token
	}
	d := newDigest()
	d.add(f.Sender, f.From, f.Recipient, f.Subject, f.MessageID, f.InReplyTo, f.Text)
	d.add(f.To...)
	d.add(f.Cc...)
	d.add(f.References...)
	for _, a := range f.Attachments {
		body := sha256.Sum256(a.Body)
		d.add(a.FileName, a.ContentType, a.ContentID, a.URL, string(body[:]))
	}
	return "inbound:" + id + "#" + d.sum()
}

// eventSubject is what an event's token signs: its id and a digest of the
// event as parsed.
func eventSubject(e *Event) string {
	d := newDigest()
	d.add(e.Name, e.ID, strconv.FormatFloat(e.Timestamp, 'f', -1, 64), e.Severity, e.Reason, e.Recipient,
		e.MessageID, e.Reject, e.Problem, strconv.Itoa(e.DeliveryStatus.Code), e.DeliveryStatus.Message,
		e.DeliveryStatus.Description, e.DeliveryStatus.EnhancedCode, e.DeliveryStatus.BounceType)
	keys := slices.Sorted(maps.Keys(e.UserVariables))
	for _, k := range keys {
		d.add(k, e.UserVariables[k])
	}
	return "event:" + e.ID + "#" + d.sum()
}

// digest hashes strings unambiguously (each length-prefixed).
type digest struct{ h hash.Hash }

func newDigest() digest { return digest{sha256.New()} }

func (d digest) add(parts ...string) {
	for _, p := range parts {
		_, _ = d.h.Write([]byte(strconv.Itoa(len(p)) + ":"))
		_, _ = d.h.Write([]byte(p))
	}
}

func (d digest) sum() string { return hex.EncodeToString(d.h.Sum(nil)[:digestBytes]) }

// digestBytes is how much of a subject's SHA-256 it keeps.
const digestBytes = 16
