package mailgun

// HTTP handlers: the route forward (POST /mailgun/{channelId}/inbound) and
// the event webhooks (POST /mailgun/{channelId}/events). Both are signed by
// Mailgun and verified here, not by bearer token.
//
// Answers follow Mailgun's retry rules: 200 takes the request, 406 makes
// Mailgun stop retrying (bad or stale signature, a replayed token, a
// request that can never succeed), any other error status makes it retry.

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"strings"
	"time"

	"github.com/bonychat/bonychat-adapter/providers"
	"github.com/bonychat/bonychat-adapter/schema"
)

const (
	// maxForwardBytes caps a route forward. It must exceed Mailgun's own
	// message limit (25 MB) with the parsed form's overhead (body-plain,
	// body-html and stripped-text besides the attachments), since a 413 is
	// retried and never succeeds.
	maxForwardBytes = 64 << 20
	// maxEventBytes caps an event webhook (a few KB in practice).
	maxEventBytes = 1 << 20
)

// Routes implements providers.WebhookProvider: the route forward and the
// event webhook, both verified by Mailgun's signature.
func (p *Provider) Routes() []providers.Route {
	return []providers.Route{
		{Method: http.MethodPost, Action: "inbound", MaxBodyBytes: maxForwardBytes, Handler: p.inboundHandler(maxForwardBytes)},
		{Method: http.MethodPost, Action: "events", Handler: p.handleEvents},
	}
}

func (p *Provider) log() *slog.Logger {
	if p.deps.Log != nil {
		return p.deps.Log
	}
	return slog.New(slog.DiscardHandler)
}

func writeOK(w http.ResponseWriter) {
	providers.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// arrivalWait bounds how long a forward waits for the contact's one read
// before it (providers.ArrivalOrder), as Twilio's inbound does: the order
// is best effort, the answer to Mailgun must not wait long.
const arrivalWait = 3 * time.Second

// inboundHandler serves a route forward with bodies capped at maxBytes.
func (p *Provider) inboundHandler(maxBytes int64) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { p.handleInbound(w, r, maxBytes) }
}

// handleInbound: parse, verify the signature, fetch a store()
// notification's attachments, turn the mail into events, ingest them
// together with the route token (replay protection), then record the
// thread.
func (p *Provider) handleInbound(w http.ResponseWriter, r *http.Request, maxBytes int64) {
	log := p.log().With("channel", p.deps.ChannelID)
	if r.ContentLength > maxBytes {
		// Refused before a byte is read: unsigned, it would still take
		// forward memory from Mailgun's own posts while it is read.
		log.Warn("mailgun forward too large", "bytes", r.ContentLength)
		providers.WriteError(w, http.StatusRequestEntityTooLarge, "the forwarded message is too large")
		return
	}
	// Counted under ParseForward's cap: a multipart body cut off inside a
	// part's header surfaces as a MIME error, not ErrForwardTooLarge. The
	// memory is held until the forward is answered.
	body := &forwardBody{r: r.Body, ctx: r.Context(), budget: p.forwardMemory, wait: p.forwardWait}
	defer body.release()
	if r.Body != nil {
		r.Body = body
	}
	f, ok := p.readVerifiedForward(w, r, body, maxBytes, log)
	if ok {
		p.takeForward(w, r, f, log)
	}
}

// readVerifiedForward reads the forward's form, checks its signature and
// parses the mail in it; it answers the refusal itself (ok=false).
func (p *Provider) readVerifiedForward(w http.ResponseWriter, r *http.Request, body *forwardBody, maxBytes int64,
	log *slog.Logger) (*Forward, bool) {
	// The form is read first, for the signature fields (a multipart post
	// may carry them last); the mail in it is parsed only once verified.
	err := readForwardForm(r, maxBytes)
	switch {
	case body.refused:
		log.Warn("mailgun forward not read: forward memory is in use; Mailgun retries", "bytes", body.n)
		providers.WriteError(w, http.StatusServiceUnavailable, "too many forwards at once; try again")
		return nil, false
	case errors.Is(err, ErrForwardTooLarge) || errors.Is(err, multipart.ErrMessageTooLarge) ||
		(err != nil && body.n > maxBytes):
		log.Warn("mailgun forward too large", "bytes", body.n)
		providers.WriteError(w, http.StatusRequestEntityTooLarge, "the forwarded message is too large")
		return nil, false
	case errors.Is(err, ErrForwardInterrupted):
		// Cut off in transit: Mailgun's retry can bring all of it.
		log.Warn("mailgun forward cut off; Mailgun retries", "bytes", body.n, "error", err.Error())
		providers.WriteError(w, http.StatusServiceUnavailable, "the forwarded message was cut off; try again")
		return nil, false
	case err != nil:
		// A forward that cannot be read never will be: 406 stops retries.
		log.Warn("mailgun forward unreadable", "error", err.Error())
		providers.WriteError(w, http.StatusNotAcceptable, "the forwarded message could not be read")
		return nil, false
	}
	form := r.PostForm
	if err := Verify(p.cfg.WebhookSigningKey, form.Get("timestamp"), form.Get("token"), form.Get("signature"),
		p.now(), p.cfg.EffectiveSignatureMaxAge()); err != nil {
		log.Warn("mailgun forward refused: signature", "error", err.Error())
		providers.WriteError(w, http.StatusNotAcceptable, "the webhook signature is invalid or stale")
		return nil, false
	}
	f, err := ParseForward(r, maxBytes) // the form is read: nothing more is
	if err != nil {
		log.Warn("mailgun forward unreadable", "error", err.Error())
		providers.WriteError(w, http.StatusNotAcceptable, "the forwarded message could not be read")
		return nil, false
	}
	return f, true
}

// takeForward takes a verified forward: under its token's lock (replay
// protection) and in its contact's arrival order, it answers a redelivery
// at once and ingests anything else.
func (p *Provider) takeForward(w http.ResponseWriter, r *http.Request, f *Forward, log *slog.Logger) {
	defer tokenLocks.Lock(f.Token)()
	ctx := r.Context()
	subject := forwardSubject(f)
	seen, err := p.checkToken(ctx, f.Token, subject)
	if err != nil {
		p.tokenAnswer(w, log, false, err)
		return
	}
	for _, problem := range f.Problems {
		log.Warn("mailgun forward partly unreadable; delivered without it", "message_id", f.MessageID, "problem", problem)
	}
	contactID, err := p.forwardContactID(r, f, p.cfg.BusinessAddresses)
	if err != nil {
		p.inboundFailed(w, log, f, err)
		return
	}
	// A mail whose stored attachments are still being fetched keeps the
	// contact's next one from being stored, and shown, first. (The order
	// is the order mails were read: the contact is known only then.)
	defer p.arrivals.Enter(ctx, contactID, arrivalWait)()
	newThread, err := p.isNewThread(r, contactID, f)
	if err != nil {
		p.inboundFailed(w, log, f, err)
		return
	}
	if p.alreadyTaken(ctx, log, forwardDedupeKey(f)) {
		// A redelivery (Mailgun's retry, another route's copy): the dedupe
		// would drop its events, and building them would fetch and store
		// its attachments again, linked from nothing for media.retention.
		// Unless this token was seen through to its end, what came after
		// the ingest (the thread) may not have been recorded.
		if !seen {
			p.recordThreadOf(ctx, log, contactID, f)
		}
		p.recordTokenOf(ctx, log, f, subject)
		writeOK(w)
		return
	}
	p.ingestForward(ctx, w, f, log, contactID, newThread, subject)
}

// ingestForward fetches a store() notification's attachments, turns the
// mail into events and ingests them with the route token, then records
// the thread and the token.
func (p *Provider) ingestForward(ctx context.Context, w http.ResponseWriter, f *Forward, log *slog.Logger,
	contactID string, newThread bool, subject string) {
	if err := p.fetchStored(ctx, log, f); err != nil {
		log.Warn("mailgun stored attachment not fetched; Mailgun retries", "message_id", f.MessageID, "error", err.Error())
		providers.WriteError(w, http.StatusServiceUnavailable, "an attachment could not be fetched from Mailgun's storage; try again")
		return
	}
	in, err := p.InboundEvents(ctx, f, newThread, p.cfg.BusinessAddresses)
	if err != nil {
		p.inboundFailed(w, log, f, err)
		return
	}
	p.mapQuickReplyAnswers(ctx, contactID, in.Events)
	in.Keys = []providers.InboundKey{{Name: "mailgun-token:" + f.Token, Value: in.DedupeKey}}
	if _, err := p.deps.Ingest.Ingest(ctx, in); err != nil {
		status, msg := providers.IngestStatus(err)
		log.Warn("mailgun forward not taken", "message_id", f.MessageID, "status", status, "error", err.Error())
		providers.WriteError(w, status, msg)
		return
	}
	p.recordThreadOf(ctx, log, in.ContactID, f)
	// Also for a duplicate delivery (another route's token for the same
	// mail), whose token the ingest transaction did not record.
	p.recordTokenOf(ctx, log, f, subject)
	writeOK(w)
}

// recordThreadOf records the forward in the contact's thread. The events
// are stored by then: a failure costs threading, not the mail.
func (p *Provider) recordThreadOf(ctx context.Context, log *slog.Logger, contactID string, f *Forward) {
	if err := p.RecordInbound(ctx, contactID, f.Subject, f.MessageID, forwardRefs(f)); err != nil {
		log.Error("mailgun thread not recorded", "message_id", f.MessageID, "error", err.Error())
	}
}

// recordTokenOf records the forward's token as taken with its subject, so
// that Mailgun's retry of it is answered and a replay with another body is
// refused.
func (p *Provider) recordTokenOf(ctx context.Context, log *slog.Logger, f *Forward, subject string) {
	if err := p.recordToken(ctx, f.Token, subject); err != nil {
		log.Warn("mailgun token not recorded", "error", err.Error())
	}
}

// inboundFailed answers an error before ingesting: 406 for a mail without a
// usable contact (it can never succeed), 503 for this server's stores.
func (p *Provider) inboundFailed(w http.ResponseWriter, log *slog.Logger, f *Forward, err error) {
	if errors.Is(err, ErrInvalidAddress) {
		log.Warn("mailgun forward without a usable contact; dropped", "message_id", f.MessageID, "error", err.Error())
		providers.WriteError(w, http.StatusNotAcceptable, "the e-mail has no usable contact address")
		return
	}
	log.Error("mailgun forward not taken; Mailgun retries", "message_id", f.MessageID, "error", err.Error())
	providers.WriteError(w, http.StatusServiceUnavailable, "the message could not be stored; try again")
}

// forwardContactID is the contact InboundEvents will post for (inboundParty).
func (p *Provider) forwardContactID(r *http.Request, f *Forward, business []string) (string, error) {
	addr, _, err := p.inboundParty(f, business)
	if err != nil {
		return "", err
	}
	return EncodeContactID(r.Context(), p.deps.Records, addr.Address)
}

// forwardRefs are the ids the mail refers to: References and In-Reply-To.
func forwardRefs(f *Forward) []string {
	refs := append([]string(nil), f.References...)
	if f.InReplyTo != "" && !containsString(refs, f.InReplyTo) {
		refs = append(refs, f.InReplyTo)
	}
	return refs
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// isNewThread: the mail starts a thread unless it refers to one of the
// contact's thread e-mails or carries the thread's subject (or none), the
// same rule RecordInbound applies.
func (p *Provider) isNewThread(r *http.Request, contactID string, f *Forward) (bool, error) {
	p.threadMu.Lock()
	t, err := p.loadThread(r.Context(), contactID)
	p.threadMu.Unlock()
	if err != nil {
		return false, err
	}
	if threadSharesAny(threadIDs(forwardRefs(f)...), t.References) {
		return false, nil
	}
	if t.Subject == "" {
		return true, nil
	}
	subj := stripSubject(f.Subject)
	return subj != "" && !strings.EqualFold(subj, t.Subject), nil
}

// handleEvents serves an event webhook: verify, map to a status, post it
// for the mId Send put in the message's user variables.
func (p *Provider) handleEvents(w http.ResponseWriter, r *http.Request) {
	log := p.log().With("channel", p.deps.ChannelID)
	if e, ok := p.readVerifiedEvent(w, r, log); ok {
		p.takeEvent(w, r, e, log)
	}
}

// readVerifiedEvent reads and parses an event webhook and checks its
// signature; it answers the refusal itself (ok=false).
func (p *Provider) readVerifiedEvent(w http.ResponseWriter, r *http.Request, log *slog.Logger) (*Event, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxEventBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			providers.WriteError(w, http.StatusRequestEntityTooLarge, "the event is too large")
			return nil, false
		}
		providers.WriteError(w, http.StatusBadRequest, "the event could not be read")
		return nil, false
	}
	e, err := ParseEvent(body)
	if err != nil {
		log.Warn("mailgun event unreadable", "error", err.Error())
		providers.WriteError(w, http.StatusNotAcceptable, "not a Mailgun event webhook")
		return nil, false
	}
	if err := Verify(p.cfg.WebhookSigningKey, e.Signature.Timestamp, e.Signature.Token, e.Signature.Signature,
		p.now(), p.cfg.EffectiveSignatureMaxAge()); err != nil {
		log.Warn("mailgun event refused: signature", "event", e.Name, "error", err.Error())
		providers.WriteError(w, http.StatusNotAcceptable, "the webhook signature is invalid or stale")
		return nil, false
	}
	return e, true
}

// takeEvent posts the status a verified event reports, once per token,
// for the mId Send put in the message's user variables.
func (p *Provider) takeEvent(w http.ResponseWriter, r *http.Request, e *Event, log *slog.Logger) {
	if e.Problem != "" {
		log.Warn("mailgun event partly unreadable", "event", e.Name, "event_id", e.ID, "problem", e.Problem)
	}
	defer tokenLocks.Lock(e.Signature.Token)()
	subject := eventSubject(e)
	if seen, err := p.checkToken(r.Context(), e.Signature.Token, subject); err != nil || seen {
		p.tokenAnswer(w, log, seen, err)
		return
	}
	value, reason, report := StatusFor(e)
	if !report {
		p.recordTokenOK(w, r, log, e.Signature.Token, subject)
		return
	}
	if sender := e.UserVariables["channel"]; sender != "" && sender != p.deps.ChannelID {
		// Another channel's message on a shared domain: its own webhook
		// takes the receipt (even once the job is no longer kept).
		log.Debug("mailgun event for another channel's message; not posted here", "event", e.Name, "sender", sender)
		p.recordTokenOK(w, r, log, e.Signature.Token, subject)
		return
	}
	mid := strings.TrimSpace(e.UserVariables["mid"])
	fallback := mid == "" && e.Problem != ""
	if fallback {
		// Mailgun lost the variables ("Could not load user-variables"):
		// our own Message-Id names the mId too (checked below).
		mid = midOfMessageID(e.MessageID, p.cfg.Domain)
	}
	if mid == "" || schema.Length(mid) > schema.MaxMID {
		log.Info("mailgun event without a usable mid; nothing to report", "event", e.Name, "event_id", e.ID)
		p.recordTokenOK(w, r, log, e.Signature.Token, subject)
		return
	}
	ctx := r.Context()
	contactID, err := EncodeContactID(ctx, p.deps.Records, e.Recipient)
	if errors.Is(err, ErrInvalidAddress) {
		log.Warn("mailgun event for an unusable recipient; nothing to report", "event", e.Name, "mid", mid,
			"error", err.Error())
		p.recordTokenOK(w, r, log, e.Signature.Token, subject)
		return
	}
	if err == nil && fallback {
		var ours bool
		if ours, err = p.sentInThread(ctx, contactID, e.MessageID); err == nil && !ours {
			// Another sender's mail on the domain whose Message-Id looks like ours.
			log.Info("mailgun event for an e-mail we did not send to this contact; nothing to report", "event", e.Name, "event_id", e.ID)
			p.recordTokenOK(w, r, log, e.Signature.Token, subject)
			return
		}
	}
	if err == nil {
		err = p.deps.Statuses.PostStatus(ctx, contactID, mid, value, reason)
	}
	if err != nil {
		log.Error("mailgun event not taken; Mailgun retries", "event", e.Name, "mid", mid, "error", err.Error())
		providers.WriteError(w, http.StatusServiceUnavailable, "the status could not be stored; try again")
		return
	}
	p.recordTokenOK(w, r, log, e.Signature.Token, subject)
}

// tokenAnswer answers a token seen before: 200 for a retry, 406 for a
// replay, 503 when the registry cannot be read.
func (p *Provider) tokenAnswer(w http.ResponseWriter, log *slog.Logger, seen bool, err error) {
	switch {
	case errors.Is(err, errTokenReplayed):
		log.Warn("mailgun webhook refused: replayed token")
		providers.WriteError(w, http.StatusNotAcceptable, "this webhook token was already used")
	case err != nil:
		log.Error("mailgun token registry unavailable", "error", err.Error())
		providers.WriteError(w, http.StatusServiceUnavailable, "try again")
	default:
		writeOK(w) // a Mailgun retry of what was already taken
	}
}

// recordTokenOK registers the token and answers 200 (503 if it cannot be
// registered: the retry will be recognised then).
func (p *Provider) recordTokenOK(w http.ResponseWriter, r *http.Request, log *slog.Logger, token, subject string) {
	if err := p.recordToken(r.Context(), token, subject); err != nil {
		log.Error("mailgun token not recorded", "error", err.Error())
		providers.WriteError(w, http.StatusServiceUnavailable, "try again")
		return
	}
	writeOK(w)
}
