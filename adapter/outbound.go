package adapter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/bonychat/bonychat-adapter/providers"
	"github.com/bonychat/bonychat-adapter/schema"
	"github.com/bonychat/bonychat-adapter/store"
)

// leaseOutbound starts one goroutine per leased lane, up to
// outbound.workers at once, and reports how many it started.
func (p *pipeline) leaseOutbound(ctx context.Context) int {
	free := p.takeSlots(p.s.cfg.Outbound.Workers)
	if free == 0 {
		return 0
	}
	leases, err := p.st.Lease(ctx, store.LeaseRequest{Queue: store.Outbound, Now: p.now(), For: p.outboundLease(),
		Lanes: free, PerLane: 1})
	if err != nil {
		p.s.log.Error("lease outbound jobs", "error", err.Error())
		leases = nil
	}
	p.giveSlots(free - len(leases))
	for _, l := range leases {
		p.tryDispatch(l)
	}
	return len(leases)
}

// takeSlots takes up to n of outbound.workers' free slots, before the
// leases that will use them are taken: a check of the count and a later
// increment would let concurrent /message requests to idle contacts all
// pass the check. It returns how many it took; giveSlots returns unused
// ones, and each dispatched job's goroutine its own at its end.
func (p *pipeline) takeSlots(n int) int {
	for {
		busy := p.outBusy.Load()
		take := min(int32(n), int32(p.s.cfg.Outbound.Workers)-busy)
		if take <= 0 {
			return 0
		}
		if p.outBusy.CompareAndSwap(busy, busy+take) {
			return int(take)
		}
	}
}

func (p *pipeline) giveSlots(n int) {
	if n > 0 {
		p.outBusy.Add(-int32(n))
	}
}

// tryDispatch runs a leased job, on the worker slot its caller took,
// unless the drain has begun; then the job goes back to pending for
// start-up (a send started now might still be in flight when the process
// exits, and start-up could only call its outcome unknown), and the slot
// is given back. False when it was not dispatched.
func (p *pipeline) tryDispatch(l store.Lease) bool {
	p.dispatchMu.RLock()
	defer p.dispatchMu.RUnlock()
	if p.noDispatch {
		p.giveSlots(1)
		// Its last error stays: a job start-up marked interrupted must
		// still be looked up, never sent blindly, after the next start.
		if err := p.st.Retry(context.Background(), l.Token, p.now(), l.Jobs[0].LastError); err != nil {
			p.s.log.Error("cannot hand back an outbound job not started before the stop; start-up settles it",
				"error", err.Error())
		}
		return false
	}
	p.dispatchOutbound(l)
	return true
}

// stopDispatch ends dispatching: from its return no send starts in this
// process.
func (p *pipeline) stopDispatch() {
	p.dispatchMu.Lock()
	p.noDispatch = true
	p.dispatchMu.Unlock()
	p.stopOnce.Do(func() { close(p.stopping) })
}

// dispatchOutbound runs a leased job in its own goroutine, which gives
// back the worker slot taken for it when it ends.
func (p *pipeline) dispatchOutbound(l store.Lease) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer p.outBusy.Add(-1)
		p.runOutbound(l)
		wake(p.outWake) // the lane may have a next job
	}()
}

// outboundLease never runs out while this process lives: taking over an
// expired outbound lease could send a message a second time (a send is not
// idempotent), so only start-up's Recover hands such jobs back, marked as
// interrupted. (Several replicas will need lease renewal instead.)
func (p *pipeline) outboundLease() time.Duration { return 100 * 365 * 24 * time.Hour }

// runOutbound attempts one job: once, unless its retry could not be
// recorded (see retryOutbound). It is not tied to the server's context: a
// send in flight at shutdown finishes, or a crash leaves it for start-up to
// settle (canResume).
func (p *pipeline) runOutbound(l store.Lease) {
	for again := true; again; {
		again = p.attemptOutbound(l)
	}
}

// attemptOutbound makes one attempt at the job of l; true when this worker
// must attempt it again.
func (p *pipeline) attemptOutbound(l store.Lease) (again bool) {
	ctx := context.Background()
	job := l.Jobs[0]
	ch := p.s.channels[job.ChannelID]
	var payload outboundJob
	if ch == nil || json.Unmarshal(job.Payload, &payload) != nil {
		p.finishOutbound(ctx, l, job, &providers.SendError{Kind: providers.Config, Reason: "the channel is no longer configured"})
		return false
	}
	resume := interrupted(job)
	if resume && !p.canResume(ctx, ch, l, job) {
		return false
	}
	if age := p.now().Sub(job.CreatedAt); age >= p.s.cfg.Outbound.MaxAge {
		p.finishOutbound(ctx, l, job, &providers.SendError{Kind: providers.Permanent, Reason: p.tooOld(job.LastError)})
		return false
	}
	err := p.send(ctx, ch, job, payload.Message, resume)
	if err == nil {
		p.finishOutbound(ctx, l, job, nil)
		return false
	}
	se := providers.AsSendError(err)
	p.s.log.Warn("send attempt failed", "channel", job.ChannelID, "mId", job.MID, "attempt", job.Attempts,
		"kind", se.Kind.String(), "code", se.Code, "error", err.Error())
	if se.Kind.Retryable() && p.now().Sub(job.CreatedAt) < p.s.cfg.Outbound.MaxAge {
		if !p.retryOutbound(ctx, l, job, se) {
			return false
		}
		// Attempted again in process: as the store would have it.
		l.Jobs[0].Attempts++
		l.Jobs[0].LastError = lastErrorOf(se)
		return true
	}
	if se.Kind.Retryable() {
		se = &providers.SendError{Kind: providers.Permanent, Err: se, Reason: p.tooOld(lastErrorOf(se))}
	}
	p.finishOutbound(ctx, l, job, se)
	return false
}

// tooOld is the reason of a message given up at outbound.max_age, after
// the last error its job recorded (lastErrorOf), in words.
func (p *pipeline) tooOld(lastError string) string {
	reason := "gave up after " + inWords(p.s.cfg.Outbound.MaxAge)
	switch last := recordedRefusal(lastError); {
	case last != nil:
		return reason + ": " + last.Reason
	case lastError == interruptedMark:
		return reason + ": the server stopped while sending; the message may have been sent"
	case lastError != "":
		return reason + ": " + lastError
	}
	return reason
}

// inWords says a configured duration as an agent would ("24 hours", "90
// minutes"), not as Go does ("24h0m0s").
func inWords(d time.Duration) string {
	unit := func(n time.Duration, name string) string {
		if n == 1 {
			return "1 " + name
		}
		return fmt.Sprintf("%d %ss", n, name)
	}
	switch {
	case d >= time.Hour && d%time.Hour == 0:
		return unit(d/time.Hour, "hour")
	case d >= time.Minute && d%time.Minute == 0:
		return unit(d/time.Minute, "minute")
	case d >= time.Second && d%time.Second == 0:
		return unit(d/time.Second, "second")
	}
	return d.String()
}

// send makes one provider attempt, or resumes the attempt a crash cut off
// (resume: the provider is a providers.Resumer, see canResume). A
// panicking provider is a bug, and the message may or may not have left:
// it is reported as outcome unknown, never retried, and the process goes on.
func (p *pipeline) send(ctx context.Context, ch *channel, job store.Job, m schema.Message, resume bool) (err error) {
	defer func() {
		if rec := recover(); rec != nil {
			p.s.log.Error("provider panicked during a send", "channel", job.ChannelID, "mId", job.MID, "panic", fmt.Sprint(rec))
			err = &providers.SendError{Kind: providers.Ambiguous, Reason: "internal error in the provider; the message may have been sent"}
		}
	}()
	sctx, cancel := context.WithTimeout(ctx, p.s.cfg.Outbound.SendTimeout)
	defer cancel()
	to := providers.Recipient{ChannelID: job.ChannelID, ContactID: job.ContactID}
	if resume {
		_, err = ch.provider.(providers.Resumer).Resume(sctx, to, m, job.MID, attemptSince(job))
		return err
	}
	_, err = ch.provider.Send(sctx, to, m, job.MID)
	return err
}

// canResume decides a job whose attempt a crash cut off. A receipt already
// recorded for it proves the provider took it: the job is finished as
// sent. Otherwise a provider that can look the message up resumes the
// attempt (true), unless the job is past outbound.max_age (resuming may
// send it); with any other provider the outcome is unknown, and the job is
// reported failed rather than sent again.
func (p *pipeline) canResume(ctx context.Context, ch *channel, l store.Lease, job store.Job) bool {
	if st, err := p.st.StatusOf(ctx, job.MID); err == nil && st.Value != schema.StatusFailed {
		p.finishOutbound(ctx, l, job, nil)
		return false
	}
	_, ok := ch.provider.(providers.Resumer)
	if ok && p.now().Sub(job.CreatedAt) < p.s.cfg.Outbound.MaxAge {
		p.s.log.Info("resuming a send the server stopped during", "channel", job.ChannelID, "mId", job.MID)
		return true
	}
	p.finishOutbound(ctx, l, job, &providers.SendError{Kind: providers.Ambiguous,
		Reason: "the server stopped while sending; the message may have been sent"})
	return false
}

// attemptSince is the earliest the cut-off attempt of job can have started:
// when the job became due (its creation, or the retry it was waiting for).
func attemptSince(job store.Job) time.Time {
	if job.NextAt.After(job.CreatedAt) {
		return job.NextAt
	}
	return job.CreatedAt
}

// interruptedMark is what start-up records on jobs that were leased when
// the previous process died.
const interruptedMark = "interrupted: the server stopped during this attempt"

// interrupted: the previous attempt was cut off by a crash, so the send may
// have reached the provider. Sends are not idempotent: never repeat blindly.
func interrupted(job store.Job) bool { return job.LastError == interruptedMark }

// retryOutbound schedules the job's next attempt in the store. If that
// cannot be recorded the job keeps its lease, which never runs out while
// this process lives, so nothing else would ever attempt it or the jobs
// behind it: this worker then waits the backoff itself and reports true,
// to attempt the job again in process (and record its end then).
func (p *pipeline) retryOutbound(ctx context.Context, l store.Lease, job store.Job, se *providers.SendError) bool {
	cfg := p.s.cfg.Outbound
	next := p.now().Add(backoff(cfg.RetryMin, cfg.RetryMax, job.Attempts, se.RetryAfter))
	err := p.writeDurably(func() error { return p.st.Retry(ctx, l.Token, next, lastErrorOf(se)) })
	p.waiters.deliver(job.MID, outcome{pending: true})
	if err == nil || errors.Is(err, store.ErrLeaseLost) {
		return false
	}
	p.s.log.Error("cannot reschedule an outbound job; this worker retries it itself", "mId", job.MID,
		"at", next.Format(time.RFC3339), "error", err.Error())
	select {
	case <-time.After(time.Until(next)):
		return true
	case <-p.stopping:
		// One last try, else start-up finds the job still leased.
		_ = p.st.Retry(ctx, l.Token, next, lastErrorOf(se))
		return false
	}
}

// lastErrorOf is the last error a job records for a failed attempt: one
// waiting for its retry, or one that ended refused (recordedRefusal reads
// it back).
func lastErrorOf(se *providers.SendError) string { return se.Kind.String() + ": " + se.Reason }

// recordedRefusal reads back the refusal a finished job recorded
// (lastErrorOf); nil for a job that was sent.
func recordedRefusal(lastError string) *providers.SendError {
	name, reason, ok := strings.Cut(lastError, ": ")
	if !ok {
		return nil
	}
	for k := providers.Permanent; k <= providers.Config; k++ {
		if k.String() == name {
			return &providers.SendError{Kind: k, Reason: reason}
		}
	}
	return nil
}

// finishOutbound records the end of a job (se nil: sent) and tells whoever
// should know: the waiting /message request, or BonyChat through a status.
func (p *pipeline) finishOutbound(ctx context.Context, l store.Lease, job store.Job, se *providers.SendError) {
	lastError := ""
	if se != nil {
		lastError = lastErrorOf(se)
	}
	if !p.waiters.claim(job.MID) {
		p.finishInBackground(ctx, l, job, se, lastError)
		return
	}
	err := p.completeDurably(ctx, l.Token, lastError, nil)
	if errors.Is(err, store.ErrLeaseLost) && p.completedAsWritten(ctx, job.ID, lastError) {
		err = nil // an earlier try was stored after all (a COMMIT reported failed)
	}
	switch {
	case err == nil:
		if !p.waiters.deliver(job.MID, outcome{err: se}) {
			// The request gave up after claimedGrace (a very slow write):
			// report the outcome instead.
			p.postLateStatus(ctx, job, se)
		}
	case errors.Is(err, store.ErrLeaseLost):
		p.s.log.Error("outbound job taken over before its end was recorded", "mId", job.MID)
		p.waiters.deliver(job.MID, outcome{pending: true})
	default:
		// Not recorded: the request answers "pending" now, and the end is
		// recorded in the background, with its status event.
		p.waiters.deliver(job.MID, outcome{pending: true})
		p.finishInBackground(ctx, l, job, se, lastError)
	}
}

// completedAsWritten: the job is done with lastError, as this worker's own
// completion would leave it. A retried write meets ErrLeaseLost when an
// earlier try that reported an error was stored after all (a failed COMMIT
// may still be on disk, see store.NotStored): then the outcome must still
// be told, not dropped as if another worker had taken the job over.
func (p *pipeline) completedAsWritten(ctx context.Context, id int64, lastError string) bool {
	j, err := p.st.Job(ctx, id)
	return err == nil && j.State == store.Done && j.LastError == lastError
}

// postLateStatus stores the status event of a job completed for a request
// that then gave up: the outcome is BonyChat's only news of the message
// (sent, or why it failed), so a write the store refuses is tried again
// until it is recorded or the server stops. (The job is already done:
// a crash in the moment between the two writes, or a stop while the store
// refuses this one, still loses it; the request gives up only after a
// recording slower than claimedGrace.)
func (p *pipeline) postLateStatus(ctx context.Context, job store.Job, se *providers.SendError) {
	value, reason := outcomeStatus(job.ChannelID, se)
	_ = p.writeUntilTaken(job.MID, "the status event of a message answered pending", func() error {
		return p.postStatus(ctx, job.ChannelID, job.ContactID, job.MID, value, reason)
	})
}

// writeUntilTaken runs write until the store takes it (or answers
// ErrLeaseLost, which no retry mends) or the server stops, pausing
// recordAgainAfter between tries; what names the write in the log. It
// returns write's last error.
func (p *pipeline) writeUntilTaken(mID, what string, write func() error) error {
	for {
		err := write()
		if err == nil || errors.Is(err, store.ErrLeaseLost) {
			return err
		}
		p.s.log.Error("cannot record "+what+"; trying again", "mId", mID,
			"in", p.recordAgainAfter.String(), "error", err.Error())
		select {
		case <-time.After(p.recordAgainAfter):
		case <-p.stopping:
			p.s.log.Error("cannot record "+what+"; the server is stopping: given up", "mId", mID)
			return err
		}
	}
}

// finishInBackground ends a job nobody waits for: the job is completed and
// its status event stored in one transaction, so a crash loses neither.
// It tries until that is recorded or the server stops (start-up then
// settles the job): an unrecorded end keeps the job's lease, which never
// runs out while this process lives, and with it every later message to
// the contact.
func (p *pipeline) finishInBackground(ctx context.Context, l store.Lease, job store.Job, se *providers.SendError, lastError string) {
	value, reason := outcomeStatus(job.ChannelID, se)
	if se != nil {
		p.s.log.Error("message failed in the background", "channel", job.ChannelID, "mId", job.MID, "reason", se.Reason)
	}
	err := p.writeUntilTaken(job.MID, "the end of an outbound job", func() error {
		return p.completeWithStatus(ctx, l, job, value, reason, lastError)
	})
	switch {
	case errors.Is(err, store.ErrLeaseLost) && p.completedAsWritten(ctx, job.ID, lastError):
		// An earlier try of this end was stored after all, perhaps the
		// request's own completion, which carries no status: post it apart
		// (postStatus drops it if it was stored with the completion).
		p.postLateStatus(ctx, job, se)
	case errors.Is(err, store.ErrLeaseLost):
		p.s.log.Error("outbound job taken over before its end was recorded; its status is not posted from here", "mId", job.MID)
	}
}

// completeWithStatus completes the job and, if value moves the message's
// status forward, stores its status event (with the status record) in the
// same write, under the mId's status lock (held for a read and a write,
// each tried for a few seconds at most, not across the pauses between
// rounds: receipts for the message wait on it).
func (p *pipeline) completeWithStatus(ctx context.Context, l store.Lease, job store.Job, value, reason, lastError string) error {
	unlock := p.statusMu.Lock(job.MID)
	defer unlock()
	// A status that cannot be read is not guessed at: a receipt may have
	// moved it past value already, and posting value then would move it
	// backwards. The caller tries the whole end again later.
	var advances bool
	if err := p.writeDurably(func() (err error) {
		advances, err = p.statusAdvances(ctx, job.MID, value)
		return err
	}); err != nil {
		return fmt.Errorf("read the status: %w", err)
	}
	var follow []store.NewJob
	if advances {
		follow = []store.NewJob{statusJob(job.ChannelID, job.ContactID, job.MID, value, reason)}
	}
	if err := p.completeDurably(ctx, l.Token, lastError, follow); err != nil {
		return err
	}
	if advances {
		wake(p.platWake)
	}
	return nil
}

func outcomeStatus(channelID string, se *providers.SendError) (value, reason string) {
	if se == nil {
		return schema.StatusSent, ""
	}
	return schema.StatusFailed, failureReason(channelID, se)
}

// completeDurably records the end of an attempt (writeDurably).
func (p *pipeline) completeDurably(ctx context.Context, token, lastError string, follow []store.NewJob) error {
	return p.writeDurably(func() error {
		if follow == nil {
			return p.st.Complete(ctx, token, lastError) // batched by the SQLite writer
		}
		return p.st.CompleteWith(ctx, token, lastError, follow)
	})
}

// writeDurably retries a write (or the read it depends on) for a few
// seconds: after a send, failing to record what it did must not be given
// up lightly (a locked or full store is often a passing state). A lost
// lease is final.
func (p *pipeline) writeDurably(write func() error) error {
	err := write()
	for attempt := 1; attempt < 5 && err != nil && !errors.Is(err, store.ErrLeaseLost); attempt++ {
		time.Sleep(backoff(100*time.Millisecond, 2*time.Second, attempt, 0))
		err = write()
	}
	return err
}
