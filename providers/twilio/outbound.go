package twilio

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"time"

	api "github.com/twilio/twilio-go/rest/api/v2010"

	"github.com/bonychat/bonychat-adapter/providers"
	"github.com/bonychat/bonychat-adapter/schema"
)

// MaxBody is Twilio's limit for one message body (error 21617 beyond).
const MaxBody = 1600

// part is one Twilio message of a BonyChat message (long text is split).
type part struct {
	Body             string
	MediaURLs        []string
	PersistentAction []string
}

// partsMemo records the SIDs of the parts already accepted, so a retry of
// the job after a failed later part never sends an earlier one again.
type partsMemo struct {
	SIDs []string `json:"sids"`
}

// Send implements providers.Provider.
func (p *Provider) Send(ctx context.Context, to providers.Recipient, m schema.Message, mID string) (providers.Sent, error) {
	out, err := p.optedOut(ctx, to.ContactID)
	if err != nil {
		return providers.Sent{}, &providers.SendError{Kind: providers.Unreachable, Reason: "opt-out list unavailable", Err: err}
	}
	if out {
		return providers.Sent{}, &providers.SendError{Kind: providers.Permanent, Reason: OptOutReason, Code: "21610"}
	}
	parts := p.render(m)
	if m.Type == schema.TypeQuickReply {
		memo := quickReplyMemo{Options: m.Replies, Expires: p.now().Add(quickReplyTTL)}
		if err := p.putJSON(ctx, nsQuickReply, p.quickReplyKey(to.ContactID), memo, time.Time{}); err != nil {
			return providers.Sent{}, &providers.SendError{Kind: providers.Unreachable, Reason: "cannot remember the reply options", Err: err}
		}
	}
	return p.sendParts(ctx, to.ContactID, mID, parts)
}

// resumeSettle is how long a send a crash cut off is given to show up in
// Twilio's message list before it is taken as never made: a create on its
// way when the process died may still be processed.
const resumeSettle = 30 * time.Second

// Resume implements providers.Resumer. The part a crash cut off (the first
// the parts memo lacks) is looked up in Twilio's message list, as an
// ambiguous create is: found, it counts as sent and the parts after it
// follow as in Send; not there (yet), the part is marked unconfirmed and
// the send is retried after resumeSettle, when Send looks again before it
// sends; the list unreadable, the send stays Ambiguous.
func (p *Provider) Resume(ctx context.Context, to providers.Recipient, m schema.Message, mID string, since time.Time) (providers.Sent, error) {
	parts := p.render(m)
	var memo partsMemo
	if _, err := p.getJSON(ctx, nsParts, mID, &memo); err != nil {
		return providers.Sent{}, &providers.SendError{Kind: providers.Ambiguous,
			Reason: "the server stopped while sending, and its send progress is unavailable; not sent again", Err: err}
	}
	if len(memo.SIDs) >= len(parts) {
		return providers.Sent{ProviderIDs: memo.SIDs}, nil
	}
	found, err := p.findCutOff(ctx, to.ContactID, mID, parts, &memo, since)
	if err != nil {
		return providers.Sent{ProviderIDs: memo.SIDs}, err
	}
	if !found {
		if err := p.putJSON(ctx, nsUnconfirmed, mID, since.UnixMilli(), providers.MessageRecordExpiry()); err != nil {
			return providers.Sent{ProviderIDs: memo.SIDs}, &providers.SendError{Kind: providers.Ambiguous, Err: err,
				Reason: "the server stopped while sending, and the attempt could not be noted; not sent again"}
		}
		return providers.Sent{ProviderIDs: memo.SIDs}, &providers.SendError{Kind: providers.Unreachable, RetryAfter: resumeSettle,
			Reason: "the server stopped while sending and Twilio does not show the message yet; it is looked up again before it is sent"}
	}
	if len(memo.SIDs) >= len(parts) {
		return providers.Sent{ProviderIDs: memo.SIDs}, nil
	}
	return p.Send(ctx, to, m, mID)
}

// findCutOff looks the first part the memo lacks up in Twilio's message
// list (created since since); found, it joins the memo. An unreadable
// list or memo is an Ambiguous error: the part may be out.
func (p *Provider) findCutOff(ctx context.Context, contact, mID string, parts []part, memo *partsMemo, since time.Time) (bool, error) {
	cut := &providers.SendError{Kind: providers.Ambiguous, Reason: "the server stopped while sending"}
	sid, err := p.reconcile(ctx, contact, parts[len(memo.SIDs)], since, cut)
	if err != nil {
		if providers.AsSendError(err).Kind == providers.Unreachable {
			return false, nil
		}
		return false, err
	}
	return true, p.notePart(ctx, contact, mID, memo, sid)
}

// notePart adds a part Twilio has to the memo and to the recent SIDs, under
// a context of their own: the part is out, and a caller gone a moment ago
// must not leave it unrecorded (a retry would send it again).
func (p *Provider) notePart(ctx context.Context, contact, mID string, memo *partsMemo, sid string) error {
	rctx, cancel := recordsContext(ctx)
	defer cancel()
	memo.SIDs = append(memo.SIDs, sid)
	p.rememberSID(rctx, contact, sid)
	if err := p.putJSON(rctx, nsParts, mID, *memo, providers.MessageRecordExpiry()); err != nil {
		// Losing the note could repeat the part on a retry.
		return &providers.SendError{Kind: providers.Ambiguous, Reason: "part sent but its progress could not be recorded", Err: err}
	}
	return nil
}

// recordsContext is for the records written or read once a message may be
// out: they must not fail because the caller gave up meanwhile.
func recordsContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), recordsTimeout)
}

const recordsTimeout = 10 * time.Second

func (p *Provider) sendParts(ctx context.Context, contact, mID string, parts []part) (providers.Sent, error) {
	var memo partsMemo
	if _, err := p.getJSON(ctx, nsParts, mID, &memo); err != nil {
		return providers.Sent{}, &providers.SendError{Kind: providers.Unreachable, Reason: "send progress unavailable", Err: err}
	}
	if err := p.lookBeforeSending(ctx, contact, mID, parts, &memo); err != nil {
		return providers.Sent{ProviderIDs: memo.SIDs}, err
	}
	for i := len(memo.SIDs); i < len(parts); i++ {
		sid, err := p.sendPart(ctx, contact, mID, i, len(parts), parts[i])
		if err != nil {
			return providers.Sent{ProviderIDs: memo.SIDs}, err
		}
		if err := p.notePart(ctx, contact, mID, &memo, sid); err != nil {
			return providers.Sent{ProviderIDs: memo.SIDs}, err
		}
	}
	return providers.Sent{ProviderIDs: memo.SIDs}, nil
}

// lookBeforeSending: a part Resume marked unconfirmed is looked up once
// more before anything is sent; found or not, the mark then goes.
func (p *Provider) lookBeforeSending(ctx context.Context, contact, mID string, parts []part, memo *partsMemo) error {
	var sinceMS int64
	marked, err := p.getJSON(ctx, nsUnconfirmed, mID, &sinceMS)
	if err != nil {
		return &providers.SendError{Kind: providers.Unreachable, Reason: "send records unavailable", Err: err}
	}
	if !marked || len(memo.SIDs) >= len(parts) {
		return nil
	}
	if _, err := p.findCutOff(ctx, contact, mID, parts, memo, time.UnixMilli(sinceMS)); err != nil {
		return err
	}
	if err := p.deps.Records.PutUntil(ctx, nsUnconfirmed, mID, nil, providers.MessageRecordExpiry()); err != nil {
		return &providers.SendError{Kind: providers.Unreachable, Reason: "send records unavailable", Err: err}
	}
	return nil
}

// sendPart creates one Twilio message under ctx (a caller that is gone
// stops it before it leaves, or between retries); an ambiguous failure is
// reconciled with Twilio's message list before anyone may send it again.
func (p *Provider) sendPart(ctx context.Context, contact, mID string, i, n int, pt part) (string, error) {
	started := p.now()
	params := p.createParams(contact, mID, i, n, pt)
	svc, call := p.api.sendService(ctx)
	msg, err := svc.CreateMessage(params)
	if err == nil && msg.Sid != nil {
		return *msg.Sid, nil
	}
	if err == nil {
		err = fmt.Errorf("twilio answered without a message SID")
	}
	rctx, cancel := recordsContext(ctx) // the create may be out
	defer cancel()
	se := sendError(err, contact, call.summary())
	if se.Code == "21610" { // Twilio already blocks this pair: remember it
		if oerr := p.setOptOut(rctx, contact, true); oerr != nil {
			p.deps.Log.Warn("cannot record an opt-out", "error", oerr.Error())
		}
	}
	if se.Kind != providers.Ambiguous {
		return "", se
	}
	return p.reconcile(rctx, contact, pt, started, se)
}

// recentSIDs are the SIDs last sent to a contact, so reconciliation never
// takes an earlier message with the same body for the one in doubt.
type recentSIDs struct {
	SIDs []string `json:"sids"`
}

const keepRecentSIDs = 50

func (p *Provider) rememberSID(ctx context.Context, contact, sid string) {
	var r recentSIDs
	if _, err := p.getJSON(ctx, nsRecentSIDs, contact, &r); err != nil {
		p.deps.Log.Warn("cannot read recent SIDs", "error", err.Error())
	}
	r.SIDs = append(r.SIDs, sid)
	if len(r.SIDs) > keepRecentSIDs {
		r.SIDs = r.SIDs[len(r.SIDs)-keepRecentSIDs:]
	}
	if err := p.putJSON(ctx, nsRecentSIDs, contact, r, time.Time{}); err != nil {
		p.deps.Log.Warn("cannot record a sent SID", "error", err.Error())
	}
}

func (p *Provider) createParams(contact, mID string, i, n int, pt part) *api.CreateMessageParams {
	params := (&api.CreateMessageParams{}).SetTo(p.cfg.address(contact)).SetStatusCallback(p.statusCallback(mID, i, n))
	if p.cfg.MessagingServiceSID != "" {
		params.SetMessagingServiceSid(p.cfg.MessagingServiceSID)
	} else {
		params.SetFrom(p.cfg.address(p.cfg.From))
	}
	if pt.Body != "" {
		params.SetBody(pt.Body)
	}
	if len(pt.MediaURLs) > 0 {
		params.SetMediaUrl(pt.MediaURLs)
	}
	if len(pt.PersistentAction) > 0 {
		params.SetPersistentAction(pt.PersistentAction)
	}
	return params
}

// statusCallback carries the mId (and the part) so a receipt needs no lookup.
func (p *Provider) statusCallback(mID string, i, n int) string {
	q := url.Values{"mid": {mID}}
	if n > 1 {
		q.Set("part", fmt.Sprint(i))
		q.Set("parts", fmt.Sprint(n))
	}
	return p.deps.PublicURL + "/twilio/" + url.PathEscape(p.deps.ChannelID) + "/status?" + q.Encode()
}

// reconcileSkew allows for clock differences with Twilio (both sides keep
// NTP time; Twilio's date_created has whole seconds).
const reconcileSkew = 2 * time.Second

// reconcile looks for the message an ambiguous create may have made: same
// To and From, created since the attempt, same body. Found: it was sent.
// Not found: it was not, and a retry is safe (after any Retry-After of
// Twilio's answer). List unavailable: unknown.
//
// The list is read on the read client's own bounds, not under ctx: a send
// cut off by its context is just the case that needs the answer, and
// without it the message can never be sent again.
func (p *Provider) reconcile(ctx context.Context, contact string, pt part, started time.Time, cause *providers.SendError) (string, error) {
	since := started.Add(-reconcileSkew).UTC()
	// No DateSent filter: a message still queued at Twilio has no date_sent
	// yet. The list is newest first; the creation time is checked here.
	params := (&api.ListMessageParams{}).SetTo(p.cfg.address(contact)).SetPageSize(50).SetLimit(50)
	if p.cfg.From != "" && p.cfg.MessagingServiceSID == "" {
		params.SetFrom(p.cfg.address(p.cfg.From))
	}
	list, err := p.api.read.ListMessage(params)
	if err != nil {
		cause.Reason += "; checking Twilio's message list failed too, so it is not sent again"
		return "", cause
	}
	var known recentSIDs
	if _, err := p.getJSON(ctx, nsRecentSIDs, contact, &known); err != nil {
		cause.Reason += "; the record of sent messages is unavailable, so it is not sent again"
		return "", cause
	}
	for _, m := range list {
		if m.Sid != nil && !slices.Contains(known.SIDs, *m.Sid) && samePart(m, pt) && createdSince(m, since) {
			p.deps.Log.Info("ambiguous send found in Twilio's message list; not sending again", "sid", *m.Sid)
			return *m.Sid, nil
		}
	}
	return "", &providers.SendError{Kind: providers.Unreachable, Code: cause.Code, Err: cause, RetryAfter: cause.RetryAfter,
		Reason: "Twilio did not take the message (" + cause.Reason + "); retrying"}
}

// samePart: same body and the same number of media items.
func samePart(m api.ApiV2010Message, pt part) bool {
	body := ""
	if m.Body != nil {
		body = *m.Body
	}
	numMedia := "0"
	if m.NumMedia != nil {
		numMedia = *m.NumMedia
	}
	return body == pt.Body && numMedia == fmt.Sprint(len(pt.MediaURLs))
}

func createdSince(m api.ApiV2010Message, since time.Time) bool {
	if m.DateCreated == nil {
		return false
	}
	t, err := time.Parse(time.RFC1123Z, *m.DateCreated)
	return err == nil && !t.Before(since)
}

// render turns a BonyChat message into Twilio messages.
func (p *Provider) render(m schema.Message) []part {
	switch m.Type {
	case schema.TypeText:
		return textParts(providers.Deref(m.Text))
	case schema.TypeAttachment:
		return p.attachmentParts(m.Attachment)
	case schema.TypeLocation:
		return []part{p.locationPart(m)}
	case schema.TypeQuickReply:
		return textParts(providers.QuickReplyText(m))
	}
	return nil
}

func textParts(text string) []part {
	chunks := schema.SplitText(text, MaxBody)
	parts := make([]part, len(chunks))
	for i, c := range chunks {
		parts[i] = part{Body: c}
	}
	return parts
}

func (p *Provider) attachmentParts(a *schema.Attachment) []part {
	if a == nil {
		return nil
	}
	if p.cfg.mms() && a.Type != "file" {
		return []part{{Body: schema.Truncate(a.Description, MaxBody), MediaURLs: []string{a.URL}}}
	}
	label := a.FileName
	if label == "" {
		label = a.Type
	}
	text := label + ": " + a.URL
	if a.Description != "" {
		text = a.Description + "\n" + text
	}
	return textParts(text)
}

func (p *Provider) locationPart(m schema.Message) part {
	lat, lng := providers.Deref64(m.Latitude), providers.Deref64(m.Longitude)
	pt := part{Body: schema.Truncate(providers.LocationText(m), MaxBody)}
	if p.cfg.WhatsApp {
		action := "geo:" + providers.Coord(lat) + "," + providers.Coord(lng)
		if addr := providers.Deref(m.Address); addr != "" {
			action += "|" + addr
		}
		pt.PersistentAction = []string{action}
	}
	return pt
}
