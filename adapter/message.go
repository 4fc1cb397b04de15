package adapter

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/bonychat/bonychat-adapter/providers"
	"github.com/bonychat/bonychat-adapter/schema"
	"github.com/bonychat/bonychat-adapter/store"
)

// idempotencyWindow is how long an Idempotency-Key is remembered.
const idempotencyWindow = 24 * time.Hour

// handleMessage is POST {base_path}/message: authenticate, decode strictly,
// validate, store the job, then wait up to outbound.wait for its first
// attempt and answer with what is known.
func (s *Server) handleMessage(c *gin.Context) {
	w := c.Writer
	ch, body, ok := s.authenticatedJSON(w, c.Request)
	if !ok {
		return
	}
	req, err := schema.DecodeMessageRequest(body)
	if req != nil { // decoded, perhaps with unknown fields: name every problem at once
		err = schema.JoinInvalid(err, schema.ValidateMessageRequest(req, ch.cfg.IDType))
	}
	if err != nil {
		writeDecodeError(w, err)
		return
	}
	s.pipe.accept(c, ch, req, body)
}

// accept stores the outbound job (with the Idempotency-Key, atomically) and
// answers from its first attempt, or 200 if that takes longer than the wait.
func (p *pipeline) accept(c *gin.Context, ch *channel, req *schema.MessageRequest, body []byte) {
	mID := providers.NewMID()
	job := store.NewJob{Queue: store.Outbound, ChannelID: ch.cfg.ID, ContactID: req.ContactID, MID: mID,
		Payload: mustJSON(outboundJob{Message: *req.Message})}
	var keys []store.Key
	idem := c.GetHeader("Idempotency-Key")
	if len(idem) > maxIdempotencyKey {
		providers.WriteError(c.Writer, http.StatusBadRequest, "Idempotency-Key is longer than 255 characters",
			schema.FieldError{Field: "Idempotency-Key", Rule: "max", Limit: ptr(float64(maxIdempotencyKey)), Message: "must be at most 255 characters"})
		return
	}
	if idem != "" {
		keys = []store.Key{{Name: idempotencyName(ch.cfg.ID, idem), Expires: p.now().Add(idempotencyWindow),
			Value: mustJSON(idemRecord{MID: mID, BodyHash: bodyHash(body)})}}
		// Until its answer is stored, a repeat waits for it (firstAnswer).
		p.answering.Store(mID, struct{}{})
		defer p.answering.Delete(mID)
	}
	done := p.waiters.add(mID)
	// A contact with nothing queued gets the job leased in the same write,
	// and the attempt starts at once; otherwise it waits its turn.
	_, lease, err := p.enqueueOutbound(c.Request.Context(), job, keys)
	var o outcome
	switch {
	case err != nil:
		p.waiters.abandon(mID, done)
		p.storeFailed(c, ch, idem, body, err)
		return
	case lease != nil && p.tryDispatch(*lease):
		o = p.await(c.Request.Context(), mID, done)
	case lease != nil || p.s.draining.Load():
		// Stored for start-up: no attempt starts during the drain.
		p.waiters.abandon(mID, done)
		o = outcome{pending: true}
	default:
		wake(p.outWake)
		o = p.await(c.Request.Context(), mID, done)
	}
	status, resp := p.answer(c, ch, mID, o)
	if idem != "" {
		p.rememberAnswer(ch, mID, status, resp, keys[0].Expires)
	}
}

// rememberAnswer keeps the answer a keyed request got, under its mId (the
// key's record names the mId), until the key expires, so a repeat gets the
// same answer and a key reused after the window gets a fresh one.
func (p *pipeline) rememberAnswer(ch *channel, mID string, status int, resp any, expires time.Time) {
	rec := mustJSON(storedAnswer{Status: status, Body: mustJSON(resp)})
	if err := p.st.PutUntil(context.Background(), nsIdempotencyAnswer, mID, rec, expires); err != nil {
		p.s.log.Warn("cannot remember the answer for an Idempotency-Key", "channel", ch.cfg.ID, "error", err.Error())
	}
}

const nsIdempotencyAnswer = "idempotency-answer"

// maxIdempotencyKey bounds the header (openapi.yaml says the same).
const maxIdempotencyKey = 255

type storedAnswer struct {
	Status int             `json:"status"`
	Body   json.RawMessage `json:"body"`
}

// enqueueOutbound stores the job, leased to this request when its contact
// has nothing queued and a worker slot is free (outbound.workers bounds the
// sends in flight either way: a lease comes with the slot it was taken
// for, which tryDispatch uses), and the server is not draining (a send
// started then might not end before the process does).
func (p *pipeline) enqueueOutbound(ctx context.Context, job store.NewJob, keys []store.Key) (int64, *store.Lease, error) {
	if p.s.draining.Load() || p.takeSlots(1) == 0 {
		ids, err := p.st.Enqueue(ctx, []store.NewJob{job}, keys)
		if err != nil {
			return 0, nil, err
		}
		return ids[0], nil, nil
	}
	id, lease, err := p.st.EnqueueLeased(ctx, job, keys, p.now(), p.outboundLease())
	if lease == nil {
		p.giveSlots(1) // stored to wait its turn, or not stored
	}
	return id, lease, err
}

// await waits for the first attempt's outcome, at most outbound.wait.
func (p *pipeline) await(ctx context.Context, mID string, done <-chan outcome) outcome {
	timer := time.NewTimer(p.s.cfg.Outbound.Wait)
	defer timer.Stop()
	select {
	case o := <-done:
		return o
	case <-timer.C:
	case <-ctx.Done():
	}
	if o, ok := p.waiters.abandon(mID, done); ok {
		return o
	}
	return outcome{pending: true}
}

// answer writes the /message response for an outcome: 200 when sent or still
// going, else the refusal in words. A job that goes on in the background
// reports its end as a message_status event.
func (p *pipeline) answer(c *gin.Context, ch *channel, mID string, o outcome) (int, any) {
	if o.pending || o.err == nil {
		resp := map[string]string{"mId": mID}
		providers.WriteJSON(c.Writer, http.StatusOK, resp)
		return http.StatusOK, resp
	}
	se := o.err
	status, msg := sendErrorStatus(ch.cfg.ID, se)
	p.s.log.Warn("message refused", "request_id", c.GetString("request_id"), "channel", ch.cfg.ID, "mId", mID,
		"kind", se.Kind.String(), "code", se.Code, "status", status)
	if se.Kind.Retryable() && se.RetryAfter > 0 {
		c.Header("Retry-After", strconv.Itoa(int(se.RetryAfter.Seconds()+0.999)))
	}
	resp := providers.ErrorBody{Error: providers.ErrorDetail{Message: msg}}
	providers.WriteJSON(c.Writer, status, resp)
	return status, resp
}

// storeFailed: the job could not be stored. A duplicate Idempotency-Key
// gets the first request's answer; anything else is 503, never a "yes".
func (p *pipeline) storeFailed(c *gin.Context, ch *channel, idem string, body []byte, err error) {
	if errors.Is(err, store.ErrDuplicate) {
		p.repeatAnswer(c, ch, idem, body)
		return
	}
	p.s.log.Error("cannot store outbound job", "channel", ch.cfg.ID, "error", err.Error())
	c.Header("Retry-After", "1")
	providers.WriteError(c.Writer, http.StatusServiceUnavailable, "the message could not be stored; try again")
}

type idemRecord struct {
	MID      string `json:"mId"`
	BodyHash string `json:"bodyHash"`
}

func idempotencyName(channelID, key string) string { return "idempotency:" + channelID + ":" + key }

func bodyHash(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}

// repeatAnswer answers a repeated Idempotency-Key from the first job: its
// result if it has one, else 200 with its mId. Nothing is sent again.
func (p *pipeline) repeatAnswer(c *gin.Context, ch *channel, idem string, body []byte) {
	ctx := c.Request.Context()
	k, err := p.st.LookupKey(ctx, idempotencyName(ch.cfg.ID, idem), p.now())
	var rec idemRecord
	if err == nil {
		err = json.Unmarshal(k.Value, &rec)
	}
	if err != nil {
		providers.WriteError(c.Writer, http.StatusServiceUnavailable, "the earlier request with this Idempotency-Key cannot be read; try again")
		return
	}
	if rec.BodyHash != bodyHash(body) {
		providers.WriteError(c.Writer, http.StatusUnprocessableEntity, "Idempotency-Key was already used with a different body")
		return
	}
	if first, ok := p.firstAnswer(ctx, rec.MID); ok {
		c.Data(first.Status, "application/json; charset=utf-8", first.Body)
		return
	}
	// The first answer was never stored (the request was cut off, the
	// process stopped, or the write failed): answer from the job, so that a
	// refusal is not turned into a "yes" (a refusal the request answered
	// posts no failed status).
	job, err := p.st.JobByMID(ctx, store.Outbound, rec.MID)
	if err == nil && job.State == store.Done {
		if se := recordedRefusal(job.LastError); se != nil {
			status, msg := sendErrorStatus(ch.cfg.ID, se)
			providers.WriteError(c.Writer, status, msg)
			return
		}
	}
	providers.WriteJSON(c.Writer, http.StatusOK, map[string]string{"mId": rec.MID})
}

// firstAnswer is the answer the first request with this key gave, waited
// for while that request is still on its way to storing it (at most as
// long as it can take). A first request that is over without its answer
// stored (cut off, the write failed, the process stopped) gives none: the
// caller answers from the job at once.
func (p *pipeline) firstAnswer(ctx context.Context, mID string) (storedAnswer, bool) {
	deadline := time.Now().Add(p.s.cfg.Outbound.Wait + time.Second)
	for {
		_, waiting := p.answering.Load(mID) // before the read: it ends after the answer is stored
		var first storedAnswer
		raw, err := p.st.Get(ctx, nsIdempotencyAnswer, mID)
		if err == nil && json.Unmarshal(raw, &first) == nil {
			return first, true
		}
		if !waiting || time.Now().After(deadline) || ctx.Err() != nil {
			return storedAnswer{}, false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func writeDecodeError(w http.ResponseWriter, err error) {
	if errors.Is(err, schema.ErrMalformedJSON) {
		providers.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	providers.WriteInvalid(w, err)
}

func sendErrorStatus(channelID string, se *providers.SendError) (int, string) {
	switch se.Kind {
	case providers.Permanent:
		return http.StatusBadRequest, failureReason(channelID, se)
	case providers.Throttled, providers.Unreachable:
		return http.StatusServiceUnavailable, "the provider cannot take the message right now: " + se.Reason
	default: // Config, or Ambiguous (its reason says the message may have been sent)
		return http.StatusBadGateway, failureReason(channelID, se)
	}
}

// failureReason is what an agent reads about a message that failed, the
// same in the /message answer and in a later failed status.
func failureReason(channelID string, se *providers.SendError) string {
	switch {
	case se.Kind == providers.Config:
		return providers.SettingsRefusal(channelID, se.Reason)
	case se.Kind == providers.Ambiguous && !strings.Contains(se.Reason, "may have been sent"):
		// The built-in providers say so in their reasons; another may not.
		return se.Reason + "; the message may have been sent"
	}
	return se.Reason
}

func ptr[T any](v T) *T { return &v }
