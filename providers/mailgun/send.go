package mailgun

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"mime"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	mailgungo "github.com/mailgun/mailgun-go/v4"

	"github.com/bonychat/bonychat-adapter/providers"
	"github.com/bonychat/bonychat-adapter/schema"
)

// body is one rendered e-mail: both parts and the files to attach.
type body struct {
	Text  string
	HTML  string
	Files []file
}

type file struct {
	Name string
	Data []byte
}

// Send implements providers.Provider: one e-mail per message, with our own
// Message-Id (<mId@domain>) and the mId as the v:mid user variable, which
// Mailgun returns in every event about it. It carries the contact's thread
// (thread.go): Reply-To, In-Reply-To, References and "Re: <subject>". An
// ambiguous failure is reconciled through the events API (reconcile.go)
// before it is reported.
func (p *Provider) Send(ctx context.Context, to providers.Recipient, m schema.Message, mID string) (providers.Sent, error) {
	addr, err := DecodeContactID(ctx, p.deps.Records, to.ContactID)
	if errors.Is(err, ErrUnknownContact) {
		return providers.Sent{}, &providers.SendError{Kind: providers.Permanent,
			Reason: "unknown contact ID; this server never handed it out", Err: err}
	}
	if err != nil { // the store failed; nothing was sent
		return providers.Sent{}, &providers.SendError{Kind: providers.Unreachable, Reason: "contact records unavailable", Err: err}
	}
	t, err := p.loadThread(ctx, to.ContactID)
	if err == nil && t.ReplyAddress != p.ReplyAddress(to.ContactID) {
		// The reply address is handed out in this e-mail: store its
		// mapping first, so a reply to it can be traced to the contact.
		p.threadMu.Lock()
		if t, err = p.loadThread(ctx, to.ContactID); err == nil {
			if err = p.ensureReplyAddress(ctx, to.ContactID, &t); err == nil {
				err = p.saveThread(ctx, to.ContactID, t)
			}
		}
		p.threadMu.Unlock()
	}
	if err != nil { // nothing was sent
		return providers.Sent{}, &providers.SendError{Kind: providers.Unreachable, Reason: "thread records unavailable", Err: err}
	}
	b, err := p.render(ctx, m, t.ReplyAddress)
	if err != nil {
		return providers.Sent{}, err
	}
	undo := func() {}
	if m.Type == schema.TypeQuickReply { // before sending: the answer may come quickly
		if undo, err = p.rememberOptions(ctx, to.ContactID, mID, m.Replies); err != nil {
			return providers.Sent{}, &providers.SendError{Kind: providers.Unreachable, Reason: "cannot remember the reply options", Err: err}
		}
	}
	// A fresh Message per call: mailgun-go closes a reader attachment on
	// the first Send, and a re-sent Message would carry it empty.
	msgID := messageID(mID, p.cfg.Domain)
	id, err := p.sendOnce(ctx, mID, msgID, addr, p.message(addr, mID, t, b))
	if err != nil {
		if providers.RefusedUnsent(providers.Sent{}, err) {
			undo() // the contact still answers the options they got
		}
		return providers.Sent{}, err
	}
	id = strings.Trim(id, "<> ")
	if id == "" {
		id = msgID
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second) // the e-mail is out
	defer cancel()
	if err := p.recordOutbound(rctx, to.ContactID, msgID, p.threadSubject(t)); err != nil {
		// The e-mail is out: failing the send would send it again.
		p.threadWarn("mailgun: sent, but the thread was not updated", "error", err.Error())
	}
	return providers.Sent{ProviderIDs: []string{id}}, nil
}

// message builds the Mailgun message of one attempt, in thread t.
func (p *Provider) message(to, mID string, t threadRecord, b body) *mailgungo.Message {
	msg := mailgungo.NewMessage(p.cfg.From, p.threadSubject(t), b.Text, to)
	msg.SetHTML(b.HTML)
	msg.AddHeader("Message-Id", "<"+messageID(mID, p.cfg.Domain)+">")
	if t.ReplyAddress != "" {
		msg.SetReplyTo(t.ReplyAddress)
	}
	if t.LastInboundMessageID != "" {
		msg.AddHeader("In-Reply-To", t.LastInboundMessageID)
	}
	if len(t.References) > 0 {
		msg.AddHeader("References", strings.Join(t.References, " "))
	}
	msg.AddVariable("mid", mID)
	// Its receipts name the channel that sent it: channels sharing a domain
	// all get every event, for longer than the sender's job is kept.
	msg.AddVariable("channel", p.deps.ChannelID)
	for _, f := range b.Files {
		msg.AddBufferAttachment(f.Name, f.Data)
	}
	return msg
}

// atomLocal is a mId usable as it is in a Message-Id's left part (a
// dot-atom of the characters that need no care anywhere).
var atomLocal = regexp.MustCompile(`^[A-Za-z0-9_+=-]+(\.[A-Za-z0-9_+=-]+)*$`)

// messageID is our Message-Id for a mId, without angle brackets: mId@domain
// when the mId is a plain atom, else a base64url form of it, so every mId
// has exactly one Message-Id and it can be found again (reconciliation,
// replies' In-Reply-To).
func messageID(mID, domain string) string {
	if atomLocal.MatchString(mID) && !strings.HasPrefix(mID, "b64.") {
		return mID + "@" + domain
	}
	return "b64." + base64.RawURLEncoding.EncodeToString([]byte(mID)) + "@" + domain
}

// midOfMessageID is the mId of one of our Message-Ids (messageID's
// inverse); "" for a Message-Id that is not ours.
func midOfMessageID(msgID, domain string) string {
	local, host, ok := strings.Cut(strings.Trim(strings.TrimSpace(msgID), "<>"), "@")
	if !ok || !strings.EqualFold(host, domain) {
		return ""
	}
	if enc, ok := strings.CutPrefix(local, "b64."); ok {
		raw, err := base64.RawURLEncoding.DecodeString(enc)
		if err != nil || messageID(string(raw), domain) != local+"@"+domain {
			return ""
		}
		return string(raw)
	}
	if !atomLocal.MatchString(local) {
		return ""
	}
	return local
}

// render turns a BonyChat message into the e-mail's parts.
// replyTo is the contact's reply address (quick replies' mailto: links).
func (p *Provider) render(ctx context.Context, m schema.Message, replyTo string) (body, error) {
	switch m.Type {
	case schema.TypeText:
		t := providers.Deref(m.Text)
		return body{Text: t, HTML: htmlDoc(htmlText(t))}, nil
	case schema.TypeLocation:
		t := providers.LocationText(m)
		return body{Text: t, HTML: htmlDoc(htmlText(t))}, nil
	case schema.TypeQuickReply:
		return p.renderQuickReply(m, replyTo), nil
	case schema.TypeAttachment:
		if m.Attachment == nil {
			return body{}, &providers.SendError{Kind: providers.Permanent, Reason: "attachment message without an attachment"}
		}
		return p.renderAttachment(ctx, *m.Attachment), nil
	}
	return body{}, &providers.SendError{Kind: providers.Permanent, Reason: fmt.Sprintf("message type %q cannot be sent by e-mail", m.Type)}
}

// renderQuickReply: a numbered list for plain-text readers (an answer with
// the number or the text reaches BonyChat as the option's text), and in
// HTML one mailto: link per option, to the contact's reply address (the
// channel's address when there is none) with the option's text as the body.
func (p *Provider) renderQuickReply(m schema.Message, replyTo string) body {
	var h strings.Builder
	if t := providers.Deref(m.Title); t != "" {
		h.WriteString("<p>" + htmlText(t) + "</p>\n")
	}
	h.WriteString("<ol>\n")
	to := replyTo
	if to == "" {
		to = p.cfg.fromAddress()
	}
	for _, r := range m.Replies {
		fmt.Fprintf(&h, `<li><a href="%s">%s</a></li>`+"\n", escapeAttr(mailtoLink(to, r)), escapeHTML(r))
	}
	h.WriteString("</ol>\n<p>Click an option, or reply with its number.</p>")
	return body{Text: providers.QuickReplyText(m), HTML: htmlDoc(h.String())}
}

// renderAttachment downloads the file and attaches it. A file that is too
// large (to download, or for Mailgun once encoded: fitsMailgun) or cannot
// be fetched becomes a link in the body: the contact can still open it,
// so the send is not a failure.
func (p *Provider) renderAttachment(ctx context.Context, a schema.Attachment) body {
	var (
		got *providers.Fetched
		err = errors.New("no fetcher configured")
	)
	if p.deps.Fetcher != nil {
		got, err = p.deps.Fetcher.Fetch(ctx, providers.FetchRequest{URL: a.URL})
	}
	if err == nil {
		b := attachedBody(a, got)
		if p.fitsMailgun(b) {
			return b
		}
		err = fmt.Errorf("%d bytes: %w", len(got.Body), errTooLargeForMailgun)
	}
	if p.deps.Log != nil {
		p.deps.Log.Warn("mailgun: attachment not attached, sending a link", "error", err.Error())
	}
	return linkBody(a)
}

// attachedBody is the e-mail that carries the file itself.
func attachedBody(a schema.Attachment, got *providers.Fetched) body {
	name := attachmentName(a, got)
	text := "Attached: " + name
	html := "<p>Attached: " + escapeHTML(name) + "</p>"
	if a.Description != "" {
		text = a.Description + "\n" + text
		html = "<p>" + htmlText(a.Description) + "</p>\n" + html
	}
	return body{Text: text, HTML: htmlDoc(html), Files: []file{{Name: name, Data: got.Body}}}
}

// linkBody is the e-mail that links the file instead.
func linkBody(a schema.Attachment) body {
	name := a.FileName
	if name == "" {
		name = "Attachment"
	}
	text := name + ": " + a.URL
	html := "<p>" + escapeHTML(name) + `: <a href="` + escapeAttr(a.URL) + `">` + escapeHTML(a.URL) + "</a></p>"
	if a.Description != "" {
		text = a.Description + "\n" + text
		html = "<p>" + htmlText(a.Description) + "</p>\n" + html
	}
	return body{Text: text, HTML: htmlDoc(html)}
}

// maxMessageBytes is the largest message Mailgun accepts (25 MB), its
// attachments counted as they travel: base64 in lines of 76 characters.
// A file of media.max_bytes (20 MiB by default) is nearly 29 MB so.
const maxMessageBytes = 25_000_000

// messageOverhead allows for what fitsMailgun does not count: the
// headers, the MIME framing, and the text and HTML parts' encoding.
const messageOverhead = 64 << 10

var errTooLargeForMailgun = errors.New("larger than Mailgun accepts once encoded (25 MB)")

// fitsMailgun reports whether the e-mail of b stays within what Mailgun
// accepts (p.maxMessage): a larger one would be refused with a 413, and
// the contact would get nothing.
func (p *Provider) fitsMailgun(b body) bool {
	size := len(b.Text) + len(b.HTML) + messageOverhead
	for _, f := range b.Files {
		size += base64Lines(len(f.Data)) + len(f.Name)
	}
	return size <= p.maxMessage
}

// base64Lines is the size of n bytes in base64, in lines of 76 characters
// ended by CRLF.
func base64Lines(n int) int {
	enc := base64.StdEncoding.EncodedLen(n)
	return enc + (enc+75)/76*2
}

// attachmentName is the file name to attach under. Mailgun types an
// attachment by its name's extension (mailgun-go sends every file as
// application/octet-stream), so a name without an extension gets the one of
// the message's mimeType, else of the downloaded type.
func attachmentName(a schema.Attachment, got *providers.Fetched) string {
	name := path.Base(strings.ReplaceAll(a.FileName, "\\", "/"))
	if a.FileName == "" || name == "." || name == "/" {
		name = got.FileName
	}
	if name == "" || name == "." || name == "/" {
		name = "attachment"
	}
	if path.Ext(name) == "" {
		ctype := a.MimeType
		if ctype == "" {
			ctype = got.ContentType
		}
		if exts, _ := mime.ExtensionsByType(ctype); len(exts) > 0 {
			name += preferredExt(ctype, exts)
		}
	}
	return name
}

// preferredExt picks the usual extension where Go's table lists several.
func preferredExt(ctype string, exts []string) string {
	common := map[string]string{"image/jpeg": ".jpg", "text/plain": ".txt", "audio/mpeg": ".mp3", "video/mp4": ".mp4"}
	if e, ok := common[strings.ToLower(ctype)]; ok {
		return e
	}
	return exts[0]
}

// Resume implements providers.Resumer. Our Message-Id names the e-mail
// exactly (no time window is needed): the attempt is marked unconfirmed
// and the events API asked for it (a few looks, as for an ambiguous send).
// Found, the e-mail is sent; not there yet, or the events unreadable, the
// send is retried once reconcile_wait has passed, and that attempt looks
// again before it sends.
func (p *Provider) Resume(ctx context.Context, to providers.Recipient, _ schema.Message, mID string, _ time.Time) (providers.Sent, error) {
	cut := &providers.SendError{Kind: providers.Ambiguous, Reason: "the server stopped while sending; the e-mail may have been sent"}
	if err := p.markUnconfirmed(ctx, mID, p.now()); err != nil { // the settle time runs from now
		return providers.Sent{}, providers.NotNoted(cut, err)
	}
	msgID := messageID(mID, p.cfg.Domain)
	if _, se := p.reconcile(ctx, msgID, cut); se != nil {
		return providers.Sent{}, lookAgainLater(cut, se, p.cfg.EffectiveReconcileWait())
	}
	if t, err := p.loadThread(ctx, to.ContactID); err != nil || p.recordOutbound(ctx, to.ContactID, msgID, p.threadSubject(t)) != nil {
		p.threadWarn("mailgun: resumed e-mail found sent, but the thread was not updated", "mid", mID)
	}
	return providers.Sent{ProviderIDs: []string{msgID}}, nil
}

// nsUnconfirmed marks mIds whose earlier attempt Mailgun may have taken
// without showing it in its events yet (the value: when, in unix ms): the
// next attempt looks again before it sends, once reconcile_wait has passed,
// so a slow events API never doubles an e-mail. (A mark of "1", from
// before the time was kept, counts as long settled.)
const nsUnconfirmed = "mailgun-unconfirmed"

// markUnconfirmed marks mID unconfirmed since at, when the doubt about its
// latest attempt arose: the look is by Message-Id (no time window), and the
// settle time runs from the moment after which nothing more was sent.
func (p *Provider) markUnconfirmed(ctx context.Context, mID string, at time.Time) error {
	return p.deps.Records.PutUntil(ctx, nsUnconfirmed, mID, []byte(strconv.FormatInt(at.UnixMilli(), 10)), providers.MessageRecordExpiry())
}

func (p *Provider) unconfirmedSince(ctx context.Context, mID string) (time.Time, bool, error) {
	v, found, err := p.deps.Records.Get(ctx, nsUnconfirmed, mID)
	if err != nil || !found || len(v) == 0 {
		return time.Time{}, false, err
	}
	ms, _ := strconv.ParseInt(string(v), 10, 64)
	return time.UnixMilli(ms), true, nil
}

// lookAgainLater is providers.LookAgainLater for an e-mail not (yet) in
// Mailgun's events, or whose events cannot be read (found is Ambiguous).
func lookAgainLater(cause, found *providers.SendError, wait time.Duration) *providers.SendError {
	if found != nil && found.Kind == providers.Ambiguous {
		return providers.LookAgainLater(cause, "Mailgun's events cannot be read", found, wait)
	}
	return providers.LookAgainLater(cause, "Mailgun does not show the e-mail yet", found, wait)
}

// sendOnce sends msg, to the address to, unless an earlier, unconfirmed
// attempt turns out to have gone through; an ambiguous failure is
// reconciled.
func (p *Provider) sendOnce(ctx context.Context, mID, msgID, to string, msg *mailgungo.Message) (string, error) {
	markedAt, marked, err := p.unconfirmedSince(ctx, mID)
	if err != nil {
		return "", &providers.SendError{Kind: providers.Unreachable, Reason: "send records unavailable", Err: err}
	}
	if marked {
		if id, err := p.settleUnconfirmed(ctx, mID, msgID, markedAt); id != "" || err != nil {
			return id, err
		}
	}
	_, id, err := p.sender.Send(ctx, msg)
	if err == nil {
		return id, nil
	}
	se := sendError(err, to)
	if se.Kind != providers.Ambiguous {
		return "", se
	}
	// Mailgun may have taken it: look our Message-Id up before the job is
	// either re-sent or reported failed, even if the caller has just left.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), reconcileTimeout+5*time.Second)
	defer cancel()
	id, rse := p.reconcile(ctx, msgID, se)
	if rse == nil {
		return id, nil
	}
	// The wait runs from now, when the doubt arose, not from the send's
	// start: Mailgun may have taken it at any moment of a long stall.
	if err := p.markUnconfirmed(ctx, mID, p.now()); err != nil {
		return "", providers.NotNoted(se, err)
	}
	return "", lookAgainLater(se, rse, p.cfg.EffectiveReconcileWait())
}

// settleUnconfirmed looks up an e-mail whose earlier attempt (marked at
// markedAt) may have reached Mailgun: found, its id; not there once
// reconcile_wait has passed, "" and no error, with the mark gone (the
// caller sends it now, and a doubt about that attempt gets a mark and a
// wait of its own); else an error to retry after.
func (p *Provider) settleUnconfirmed(ctx context.Context, mID, msgID string, markedAt time.Time) (string, error) {
	earlier := &providers.SendError{Kind: providers.Ambiguous, Reason: "an earlier attempt may have reached Mailgun"}
	wait := p.cfg.EffectiveReconcileWait()
	// Looked up even when it is too soon to take "not there" for an
	// answer: an e-mail Mailgun did take ends its doubt at once.
	accepted, err := p.findAccepted(ctx, msgID)
	if err != nil {
		return "", lookAgainLater(earlier, &providers.SendError{Kind: providers.Ambiguous, Err: err}, wait)
	}
	if accepted {
		return msgID, nil
	}
	// Never more than the wait: a clock stepped back must not hold the
	// e-mail for long.
	if left := min(wait-p.now().Sub(markedAt), wait); left > 0 {
		// Too soon to send it again (outbound.retry_max may have cut the
		// retry's wait).
		return "", providers.LookAgainLater(earlier, "it is too soon to take its events for an answer", nil, left)
	}
	if err := p.deps.Records.PutUntil(ctx, nsUnconfirmed, mID, nil, providers.MessageRecordExpiry()); err != nil {
		return "", &providers.SendError{Kind: providers.Unreachable, Reason: "send records unavailable", Err: err}
	}
	return "", nil
}
