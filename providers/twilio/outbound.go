package twilio

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
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
	if m.Type != schema.TypeQuickReply {
		return p.sendParts(ctx, to.ContactID, mID, parts)
	}
	memo, _ := json.Marshal(quickReplyMemo{Options: m.Replies, Expires: p.now().Add(quickReplyTTL)})
	undo, err := providers.OfferRecord(ctx, p.deps.Records, nsQuickReply, p.quickReplyKey(to.ContactID), mID, memo)
	if err != nil {
		return providers.Sent{}, &providers.SendError{Kind: providers.Unreachable, Reason: "cannot remember the reply options", Err: err}
	}
	sent, err := p.sendParts(ctx, to.ContactID, mID, parts)
	if providers.RefusedUnsent(sent, err) {
		undo() // the contact still answers the options they got
	}
	return sent, err
}

// unconfirmed marks the part of a message that may be at Twilio unseen:
// the next attempt looks it up before it sends anything (settleUnconfirmed).
// Since is the earliest the create can have been made (the look-up's
// window); At is when the doubt arose (the settle time runs from it); both
// unix ms. (A mark without At settles from Since.) SID is set when
// Twilio's answer gave the part's SID but the parts memo could not be
// written: the part is known sent, and is taken without a look-up.
type unconfirmed struct {
	Part  int    `json:"part"`
	Since int64  `json:"since"`
	At    int64  `json:"at,omitempty"`
	SID   string `json:"sid,omitempty"`
}

// settleWait is what remains of settle (reconcile_wait) since the mark,
// never more than settle (a clock stepped back must not hold a message for
// long).
func (m unconfirmed) settleWait(now time.Time, settle time.Duration) time.Duration {
	at := m.At
	if at == 0 {
		at = m.Since
	}
	return min(settle-now.Sub(time.UnixMilli(at)), settle)
}

// Resume implements providers.Resumer. The part a crash cut off (the first
// the parts memo lacks) is marked unconfirmed and looked up in Twilio's
// message list: found, it counts as sent and the parts after it follow as
// in Send; not there yet, or the list unreadable, the send is retried after
// reconcile_wait and that attempt looks again before it sends.
func (p *Provider) Resume(ctx context.Context, to providers.Recipient, m schema.Message, mID string, since time.Time) (providers.Sent, error) {
	parts := p.render(m)
	var memo partsMemo
	if _, err := p.getJSON(ctx, nsParts, mID, &memo); err != nil {
		return providers.Sent{}, &providers.SendError{Kind: providers.Ambiguous,
			Reason: "the server stopped while sending and its progress cannot be read; the message may have been sent", Err: err}
	}
	if len(memo.SIDs) >= len(parts) {
		return providers.Sent{ProviderIDs: memo.SIDs}, nil
	}
	cut := &providers.SendError{Kind: providers.Ambiguous, Reason: "the server stopped while sending; the message may have been sent"}
	mark, err := p.markUnconfirmed(ctx, mID, len(memo.SIDs), since)
	if err != nil {
		return providers.Sent{ProviderIDs: memo.SIDs}, providers.NotNoted(cut, err)
	}
	found, err := p.settleUnconfirmed(ctx, to.ContactID, mID, parts, &memo, mark, false)
	if err != nil || !found {
		return providers.Sent{ProviderIDs: memo.SIDs}, p.lookAgainLater(cut, err)
	}
	if len(memo.SIDs) >= len(parts) {
		return providers.Sent{ProviderIDs: memo.SIDs}, nil
	}
	return p.Send(ctx, to, m, mID)
}

// markUnconfirmed marks part of mID unconfirmed since since, keeping an
// earlier time a mark of the same part already had (a second crash before
// the retry looked must not narrow the search).
func (p *Provider) markUnconfirmed(ctx context.Context, mID string, part int, since time.Time) (unconfirmed, error) {
	mark := unconfirmed{Part: part, Since: since.UnixMilli(), At: p.now().UnixMilli()}
	var old unconfirmed
	marked, err := p.getJSON(ctx, nsUnconfirmed, mID, &old)
	if err != nil {
		return mark, err
	}
	if marked && old.Part == part {
		mark.Since, mark.SID = min(mark.Since, old.Since), old.SID
	}
	return mark, p.putJSON(ctx, nsUnconfirmed, mID, mark, providers.MessageRecordExpiry())
}

// settleUnconfirmed looks the marked part up in Twilio's message list, when
// it is the first part the memo lacks (a mark of a part the memo holds is
// stale: its part was found, and clearing the mark failed). Found, the part
// joins the memo and the mark goes. Not found, the mark goes only when
// clearIfMissing (the caller sends the part now). An error (list or
// records unreadable) keeps the mark.
func (p *Provider) settleUnconfirmed(ctx context.Context, contact, mID string, parts []part, memo *partsMemo, mark unconfirmed, clearIfMissing bool) (bool, error) {
	if mark.Part != len(memo.SIDs) || mark.Part >= len(parts) {
		return false, nil
	}
	sid, err := p.markedPart(ctx, contact, mID, parts[mark.Part], memo, mark, clearIfMissing)
	if err != nil {
		return false, err
	}
	if sid != "" {
		p.deps.Log.Info("a part that may have been sent is in Twilio's message list; not sending it again", "sid", sid)
		if err := p.notePart(ctx, contact, mID, memo, sid); err != nil && mark.Part < len(parts)-1 {
			return false, err
		} else if err != nil { // the last part: the message is out, nothing more will be sent
			p.deps.Log.Warn("twilio message sent; its parts memo could not be written", "mid", mID, "error", err.Error())
		}
	}
	if sid != "" || clearIfMissing {
		rctx, cancel := recordsContext(ctx)
		defer cancel()
		// A found part's mark that stays is stale, and ignored; one that must
		// go before its part is sent must really go.
		if err := p.deps.Records.PutUntil(rctx, nsUnconfirmed, mID, nil, providers.MessageRecordExpiry()); err != nil && sid == "" {
			return false, err
		}
	}
	return sid != "", nil
}

// markedPart is the SID of the marked part: the one the mark holds, else
// what Twilio's message list shows ("" when it shows none).
func (p *Provider) markedPart(ctx context.Context, contact, mID string, pt part, memo *partsMemo, mark unconfirmed, clearIfMissing bool) (string, error) {
	if mark.SID != "" {
		return mark.SID, nil
	}
	// Looked up even when it is too soon to take "not there" for an answer:
	// a part that did reach Twilio ends its doubt at once.
	sid, err := p.lookUp(ctx, contact, mID, pt, time.UnixMilli(mark.Since), *memo)
	if err != nil || sid != "" {
		return sid, err
	}
	if wait := mark.settleWait(p.now(), p.cfg.EffectiveReconcileWait()); clearIfMissing && wait > 0 {
		// Not there yet, and too soon to send it again (outbound.retry_max
		// may have cut the retry's wait): come back when it is time.
		return "", errTooSoon{wait}
	}
	return "", nil
}

// errTooSoon: a marked part cannot be taken as missing before
// reconcile_wait has passed since its attempt; wait is what remains.
type errTooSoon struct{ wait time.Duration }

func (e errTooSoon) Error() string { return "too soon to look for it again" }

// lookAgainLater is providers.LookAgainLater for a part: not (yet) in
// Twilio's list, too soon to tell (errTooSoon), or the list unreadable. A
// SendError (a part found whose progress could not be recorded: notePart)
// is returned as it is.
func (p *Provider) lookAgainLater(cause *providers.SendError, err error) *providers.SendError {
	if se, ok := errors.AsType[*providers.SendError](err); ok {
		return se
	}
	if soon, ok := errors.AsType[errTooSoon](err); ok {
		return providers.LookAgainLater(cause, "it is too soon to take Twilio's list for an answer", nil, soon.wait)
	}
	if err != nil {
		return providers.LookAgainLater(cause, "Twilio's message list cannot be read", err, p.cfg.EffectiveReconcileWait())
	}
	return providers.LookAgainLater(cause, "Twilio does not show the message yet", nil, p.cfg.EffectiveReconcileWait())
}

// notePart adds a part Twilio has to the memo and to the recent SIDs, under
// a context of their own: the part is out, and a caller gone a moment ago
// must not leave it unrecorded (a retry would send it again). When the memo
// cannot be written, the part is marked unconfirmed with its SID, and the
// retry takes it from there and sends the rest; only when that mark cannot
// be written either does the message end ambiguous.
func (p *Provider) notePart(ctx context.Context, contact, mID string, memo *partsMemo, sid string) error {
	rctx, cancel := recordsContext(ctx)
	defer cancel()
	part := len(memo.SIDs)
	memo.SIDs = append(memo.SIDs, sid)
	p.rememberSID(rctx, contact, mID, sid)
	err := p.putJSON(rctx, nsParts, mID, *memo, providers.MessageRecordExpiry())
	if err == nil {
		return nil
	}
	now := p.now().UnixMilli()
	mark := unconfirmed{Part: part, Since: now, At: now, SID: sid}
	if merr := p.putJSON(rctx, nsUnconfirmed, mID, mark, providers.MessageRecordExpiry()); merr != nil {
		// Losing the note could repeat the part on a retry.
		return &providers.SendError{Kind: providers.Ambiguous, Reason: "part sent but its progress could not be recorded",
			Err: errors.Join(err, merr)}
	}
	return &providers.SendError{Kind: providers.Unreachable, Err: err,
		Reason: "part sent but its progress could not be recorded; the next attempt sends the rest"}
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
		sid, err := p.sendPart(ctx, contact, mID, i, len(parts), parts[i], memo)
		if err != nil {
			return providers.Sent{ProviderIDs: memo.SIDs}, partlySent(err, len(memo.SIDs), len(parts))
		}
		if err := p.notePart(ctx, contact, mID, &memo, sid); err != nil && i < len(parts)-1 {
			return providers.Sent{ProviderIDs: memo.SIDs}, err
		} else if err != nil {
			// The last part is out: the message is sent, and the job ends
			// here; the memo would only have kept a retry from repeating it.
			p.deps.Log.Warn("twilio message sent; its parts memo could not be written", "mid", mID, "error", err.Error())
		}
	}
	return providers.Sent{ProviderIDs: memo.SIDs}, nil
}

// partlySent tells the agent that the parts before a failed one reached
// Twilio: the contact may already have read them. Also for a failure that
// is retried: the retry sends only the rest, but if the message is given
// up (outbound.max_age), its last error is what the agent reads.
func partlySent(err error, sent, n int) error {
	se, ok := errors.AsType[*providers.SendError](err)
	if !ok || sent == 0 {
		return err
	}
	told := *se
	told.Reason = fmt.Sprintf("the first %d of %d parts were sent; %s", sent, n, se.Reason)
	return &told
}

// lookBeforeSending settles a part marked unconfirmed before anything is
// sent: found, it is not sent again; not there, the mark goes and it is
// sent; the list unreadable, the attempt ends retryable, mark kept.
func (p *Provider) lookBeforeSending(ctx context.Context, contact, mID string, parts []part, memo *partsMemo) error {
	var mark unconfirmed
	marked, err := p.getJSON(ctx, nsUnconfirmed, mID, &mark)
	if err != nil {
		return &providers.SendError{Kind: providers.Unreachable, Reason: "send records unavailable", Err: err}
	}
	if !marked {
		return nil
	}
	cut := &providers.SendError{Kind: providers.Ambiguous, Reason: "an earlier attempt may have reached Twilio"}
	if _, err := p.settleUnconfirmed(ctx, contact, mID, parts, memo, mark, true); err != nil {
		return p.lookAgainLater(cut, err)
	}
	return nil
}

// sendPart creates one Twilio message under ctx (a caller that is gone
// stops it before it leaves, or between retries); an ambiguous failure is
// reconciled with Twilio's message list before anyone may send it again.
func (p *Provider) sendPart(ctx context.Context, contact, mID string, i, n int, pt part, memo partsMemo) (string, error) {
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
	// Twilio may have it: look in its message list before the job is
	// either re-sent or reported failed.
	sid, lerr := p.lookUp(rctx, contact, mID, pt, started, memo)
	if lerr == nil && sid != "" {
		p.deps.Log.Info("ambiguous send found in Twilio's message list; not sending again", "sid", sid)
		return sid, nil
	}
	if _, merr := p.markUnconfirmed(rctx, mID, i, started); merr != nil {
		return "", providers.NotNoted(se, merr)
	}
	return "", p.lookAgainLater(se, lerr)
}

// recentSIDs are the SIDs last sent to a contact, with the mId each was
// sent for, so a look-up never takes another message with the same body for
// the one in doubt, yet finds this message's own part even when a crash
// came between noting it here and in the parts memo. (Records written
// before the mIds were kept have none: those SIDs count as other
// messages'.)
type recentSIDs struct {
	SIDs []string `json:"sids"`
	MIDs []string `json:"mids,omitempty"`
}

const keepRecentSIDs = 50

// otherThan reports whether sid was sent for a message other than mID.
func (r recentSIDs) otherThan(sid, mID string) bool {
	i := slices.Index(r.SIDs, sid)
	return i >= 0 && (i >= len(r.MIDs) || r.MIDs[i] != mID)
}

func (p *Provider) rememberSID(ctx context.Context, contact, mID, sid string) {
	var r recentSIDs
	if _, err := p.getJSON(ctx, nsRecentSIDs, contact, &r); err != nil {
		// Writing now would replace the whole history with this one SID.
		p.deps.Log.Warn("cannot read recent SIDs; this one is not recorded", "error", err.Error())
		return
	}
	if len(r.MIDs) != len(r.SIDs) { // an older record: its SIDs belong to other messages
		r.MIDs = make([]string, len(r.SIDs))
	}
	r.SIDs, r.MIDs = append(r.SIDs, sid), append(r.MIDs, mID)
	if n := len(r.SIDs) - keepRecentSIDs; n > 0 {
		r.SIDs, r.MIDs = r.SIDs[n:], r.MIDs[n:]
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

// reconcileSkew allows for clock differences with Twilio that its Date
// header does not show (twilioClock) and for date_created's whole seconds.
const reconcileSkew = 2 * time.Second

// lookUp finds a part of mID in Twilio's message list: same To and From
// (or Messaging Service), same body, created since since (less the clock
// skew), and neither a SID recorded for another message nor one of this
// message's earlier parts (memo). "" when it is not there; an error when
// the list or our record of sent SIDs cannot be read.
//
// The list is read on the read client's own bounds, not under ctx: a send
// cut off by its context is just the case that needs the answer.
func (p *Provider) lookUp(ctx context.Context, contact, mID string, pt part, since time.Time, memo partsMemo) (string, error) {
	since = p.api.clock.twilioTime(since).Add(-reconcileSkew).UTC()
	// No DateSent filter: a message still queued at Twilio has no date_sent
	// yet. The list is newest first; the creation time is checked here.
	params := (&api.ListMessageParams{}).SetTo(p.cfg.address(contact)).SetPageSize(50).SetLimit(50)
	if p.cfg.From != "" && p.cfg.MessagingServiceSID == "" {
		params.SetFrom(p.cfg.address(p.cfg.From))
	}
	list, err := p.api.read.ListMessage(params)
	if err != nil {
		return "", fmt.Errorf("reading Twilio's message list: %w", err)
	}
	var known recentSIDs
	if _, err := p.getJSON(ctx, nsRecentSIDs, contact, &known); err != nil {
		return "", fmt.Errorf("reading the record of sent messages: %w", err)
	}
	for _, m := range list {
		if m.Sid == nil || known.otherThan(*m.Sid, mID) || slices.Contains(memo.SIDs, *m.Sid) {
			continue // another message's, or an earlier part of this one (parts may read alike)
		}
		if samePart(m, pt) && createdSince(m, since) && p.ourSender(m) {
			return *m.Sid, nil
		}
	}
	return "", nil
}

// ourSender: with a Messaging Service the list cannot be filtered by From,
// so the message must name the channel's service.
func (p *Provider) ourSender(m api.ApiV2010Message) bool {
	return p.cfg.MessagingServiceSID == "" || (m.MessagingServiceSid != nil && *m.MessagingServiceSid == p.cfg.MessagingServiceSID)
}

// samePart: the same body (as Twilio keeps it) and the same number of
// media items.
func samePart(m api.ApiV2010Message, pt part) bool {
	body := ""
	if m.Body != nil {
		body = *m.Body
	}
	numMedia := "0"
	if m.NumMedia != nil {
		numMedia = *m.NumMedia
	}
	return sameBody(body, pt.Body) && numMedia == fmt.Sprint(len(pt.MediaURLs))
}

// trialNotice is what a trial account puts before every body.
const trialNotice = "Sent from your Twilio trial account - "

// sameBody: Twilio may keep a body other than the one posted: a Messaging
// Service's Smart Encoding swaps Unicode punctuation and spaces for GSM-7
// look-alikes, and a trial account puts its notice first. Both sides are
// folded as Smart Encoding folds them, so its rewrite matches and no other
// difference does ("Ok!" is not "Ok?").
func sameBody(kept, posted string) bool {
	if kept == posted {
		return true
	}
	k, p := smartEncoding.Replace(kept), smartEncoding.Replace(posted)
	return k == p || k == trialNotice+p
}

// smartEncoding folds what Twilio's Smart Encoding replaces to what it
// replaces it with (the common part of its table: quotes, apostrophes,
// dashes, the ellipsis and Unicode spaces).
var smartEncoding = strings.NewReplacer(
	"\u00ab", `"`, "\u00bb", `"`, "\u201c", `"`, "\u201d", `"`, "\u201f", `"`, "\u02ba", `"`,
	"\u02ee", `"`, "\u275d", `"`, "\u275e", `"`, "\u301d", `"`, "\u301e", `"`, "\uff02", `"`,
	"\u2018", "'", "\u2019", "'", "\u201b", "'", "\u02bb", "'", "\u02bc", "'", "\u02bd", "'",
	"\u02b9", "'", "\u02c8", "'", "\u02ca", "'", "\u02cb", "'", "\u00b4", "'", "\u275b", "'", "\u275c", "'",
	"\uff07", "'",
	"\u2010", "-", "\u2011", "-", "\u2012", "-", "\u2013", "-", "\u2014", "-", "\u2015", "-", "\u2043", "-",
	"\ufe63", "-", "\uff0d", "-",
	"\u2026", "...", "\u00a0", " ", "\u2000", " ", "\u2001", " ", "\u2002", " ", "\u2003", " ",
	"\u2004", " ", "\u2005", " ", "\u2006", " ", "\u2007", " ", "\u2008", " ", "\u2009", " ", "\u200a", " ",
	"\u202f", " ", "\u205f", " ", "\u3000", " ",
)

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
