package adapter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/bonychat/bonychat-adapter/schema"
	"github.com/bonychat/bonychat-adapter/store"
)

// platformLanes is how many contacts' events are posted at once.
const platformLanes = 16

// leasePlatform posts waiting events: per contact one request at a time, in
// order, up to 20 events in one request.
func (p *pipeline) leasePlatform(ctx context.Context) int {
	free := platformLanes - int(p.platBusy.Load())
	if free <= 0 {
		return 0
	}
	leases, err := p.st.Lease(ctx, store.LeaseRequest{Queue: store.Platform, Now: p.now(), For: p.platformLease(),
		Lanes: free, PerLane: schema.MaxEvents})
	if err != nil {
		p.s.log.Error("lease platform jobs", "error", err.Error())
		return 0
	}
	for _, l := range leases {
		p.platBusy.Add(1)
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer p.platBusy.Add(-1)
			p.runPlatform(ctx, l)
			wake(p.platWake)
		}()
	}
	return len(leases)
}

// platformLease outlasts one post with its quick retries, after the wait
// for the channel's rate limit (every other lane of the channel may be
// ahead): a lease that ran out during that wait would let another worker
// post the same events.
func (p *pipeline) platformLease() time.Duration {
	c := p.s.cfg.Platform
	// Capped: a tiny rate would overflow a Duration (and no lease need
	// outlast platform.max_age by much).
	// Each quick retry waits for the limit again.
	rateWait := min(float64(platformLanes)/c.RateLimit, (c.MaxAge + time.Hour).Seconds())
	return time.Duration(c.Retries+1)*(time.Duration(rateWait*float64(time.Second))+c.Timeout+2*time.Second) + time.Minute
}

func (p *pipeline) runPlatform(ctx context.Context, l store.Lease) {
	first := l.Jobs[0]
	ch := p.s.channels[first.ChannelID]
	if ch == nil {
		p.killPlatform(l, "the channel is no longer configured")
		return
	}
	l, ok := p.applySplitHint(l)
	if !ok {
		return
	}
	l, payload, ok := p.leasePayload(ctx, l)
	if !ok {
		return
	}
	if len(payload.Events) == 0 { // every one a superseded receipt
		p.completePlatform(l)
		return
	}
	if err := p.limiters[first.ChannelID].Wait(ctx); err != nil {
		p.releasePlatform(l, "shutting down")
		return
	}
	target := ch.target
	target.Pace = p.limiters[first.ChannelID].Wait
	target.Stop = ctx.Done()
	err := p.s.platform.Post(context.WithoutCancel(ctx), target, payload)
	switch {
	case err == nil:
		p.splitHints.Delete(laneOf(first))
		p.completePlatform(l)
	case len(l.Jobs) > 1 && eventRefusal(err):
		p.splitPlatform(ctx, l, err)
	case isPermanentPlatformError(err):
		p.killPlatform(l, err.Error())
	case p.now().Sub(newest(l.Jobs).CreatedAt) >= p.s.cfg.Platform.MaxAge:
		p.killPlatform(l, fmt.Sprintf("not accepted by BonyChat within %s: %v", inWords(p.s.cfg.Platform.MaxAge), err))
	default:
		p.retryPlatform(l, first, err)
	}
}

// splitPlatform answers a batch BonyChat refused for its content: a
// refusal is for the event that caused it (PROTOCOL), not for the others
// posted with it. The lane's next posts carry only the first half of the
// batch (its split hint), the rest waiting behind it, and so on: halving
// finds a refused event in a handful of posts, and the others go through.
// The first half is posted again at once while the lease has time for it;
// otherwise the next lease does it.
func (p *pipeline) splitPlatform(ctx context.Context, l store.Lease, cause error) {
	keep := len(l.Jobs) / 2
	p.s.log.Warn("BonyChat refused a batch; posting it in halves to find the refused event", "channel", l.Jobs[0].ChannelID,
		"contact", l.Jobs[0].ContactID, "events", len(l.Jobs), "error", cause.Error())
	p.splitHints.Store(laneOf(l.Jobs[0]), keep)
	if time.Until(l.Jobs[0].LeaseUntil) < p.platformLease()-time.Minute {
		// Not enough of the lease left for another post (a lease that ran
		// out mid-post would post twice): the next lease takes the hint.
		p.retryPlatform(l, l.Jobs[0], cause)
		return
	}
	p.runPlatform(ctx, l)
}

// completePlatform records that a lease's events are posted (or need no
// post): not recorded, they would be posted again once the lease ran out.
func (p *pipeline) completePlatform(l store.Lease) {
	if err := p.writeDurably(func() error { return p.st.Complete(context.Background(), l.Token, "") }); err != nil {
		p.s.log.Error("complete platform jobs; BonyChat may get these events again", "error", err.Error())
	}
}

// applySplitHint shortens a lease to its lane's split hint (splitPlatform);
// false when that failed and the lease was handed back.
func (p *pipeline) applySplitHint(l store.Lease) (store.Lease, bool) {
	hint, ok := p.splitHints.Load(laneOf(l.Jobs[0]))
	if !ok {
		return l, true
	}
	return p.shortenLease(l, hint.(int))
}

// shortenLease keeps the first n jobs of a lease and hands the rest back
// to their lane; false when that failed and the whole lease was handed back.
func (p *pipeline) shortenLease(l store.Lease, n int) (store.Lease, bool) {
	if len(l.Jobs) <= n {
		return l, true
	}
	if err := p.st.Release(context.Background(), l.Token, n); err != nil {
		p.s.log.Error("split platform jobs", "error", err.Error())
		p.releasePlatform(l, "could not be split: "+err.Error())
		return l, false
	}
	l.Jobs = l.Jobs[:n]
	return l, true
}

// leasePayload is the webhook payload of a lease's events. A stored event
// that cannot be read (a damaged row) dies alone: the lease is cut before
// it, so the events ahead of it are posted now, and when it comes first it
// is cut to it alone and killed (false). Receipts superseded since they
// were stored are left out (supersededStatus).
func (p *pipeline) leasePayload(ctx context.Context, l store.Lease) (store.Lease, schema.WebhookPayload, bool) {
	payload, readable, err := platformPayload(l.Jobs)
	if err != nil && readable == 0 {
		if l, ok := p.shortenLease(l, 1); ok {
			p.killPlatform(l, "stored event is unreadable: "+err.Error())
		}
		return l, payload, false
	}
	if err != nil {
		p.s.log.Error("a stored event is unreadable; posting the events before it", "channel", l.Jobs[0].ChannelID,
			"job", l.Jobs[readable].ID, "error", err.Error())
		var ok bool
		if l, ok = p.shortenLease(l, readable); !ok {
			return l, payload, false
		}
	}
	kept := payload.Events[:0]
	for i, ev := range payload.Events {
		if !p.supersededStatus(ctx, l.Jobs[i], ev) {
			kept = append(kept, ev)
		}
	}
	payload.Events = kept
	return l, payload, true
}

// supersededStatus: job's event is a receipt that a later one, already
// posted, has overtaken. Posted now it would move the status back in
// BonyChat: a dead receipt replayed (jobs retry) after BonyChat took a
// later one. (In a lane's normal order the later receipt comes after this
// one, and both are posted.) When that cannot be read, it is posted.
func (p *pipeline) supersededStatus(ctx context.Context, job store.Job, ev schema.Event) bool {
	if ev.Type != schema.EventMessageStatus || ev.Status == nil {
		return false
	}
	current, err := p.st.StatusOf(ctx, ev.MID)
	if err != nil || current.Rank <= statusRank[ev.Status.Value] {
		return false
	}
	newest, err := p.st.JobByMID(ctx, store.Platform, ev.MID)
	if err != nil || newest.ID == job.ID || newest.State != store.Done {
		return false
	}
	p.s.log.Info("a receipt overtaken by a later one BonyChat took is not posted", "mId", ev.MID,
		"status", ev.Status.Value, "current", current.Value, "job", job.ID)
	return true
}

// laneOf names a job's lane (channel and contact).
func laneOf(j store.Job) string { return j.ChannelID + "\x00" + j.ContactID }

// eventRefusal: BonyChat (or our own check before posting) refused the
// payload for its content, so for one of its events, not for the channel
// (a token, a URL): 400, 422, or a validation error.
func eventRefusal(err error) bool {
	if pe, ok := errors.AsType[*PlatformError](err); ok {
		return pe.Status == http.StatusBadRequest || pe.Status == http.StatusUnprocessableEntity
	}
	_, ok := errors.AsType[*schema.ValidationError](err)
	return ok
}

// newest is the most recent job of a batch: a batch dies only when even
// its newest event is past platform.max_age, so no event dies early (older
// ones in it may outlive the age a little, which loses nothing).
func newest(jobs []store.Job) store.Job {
	n := jobs[0]
	for _, j := range jobs[1:] {
		if j.CreatedAt.After(n.CreatedAt) {
			n = j
		}
	}
	return n
}

// platformPayload is the payload of jobs' events, and how many were read:
// all but on an error, which stops at the first job that cannot be read.
func platformPayload(jobs []store.Job) (schema.WebhookPayload, int, error) {
	p := schema.WebhookPayload{ChannelID: jobs[0].ChannelID, ContactID: jobs[0].ContactID}
	for i, j := range jobs {
		var pj platformJob
		if err := json.Unmarshal(j.Payload, &pj); err != nil {
			return p, i, err
		}
		p.Events = append(p.Events, pj.Event)
		if pj.Contact != nil {
			p.Contact = pj.Contact // the newest profile wins
		}
	}
	return p, len(jobs), nil
}

func isPermanentPlatformError(err error) bool {
	var pe *PlatformError
	var verr *schema.ValidationError
	return (errors.As(err, &pe) && pe.Permanent) || errors.As(err, &verr)
}

func (p *pipeline) retryPlatform(l store.Lease, first store.Job, cause error) {
	c := p.s.cfg.Platform
	var retryAfter time.Duration
	if pe, ok := errors.AsType[*PlatformError](cause); ok {
		retryAfter = pe.RetryAfter // BonyChat's wish, capped by retry_max
	}
	next := p.now().Add(backoff(c.RetryMin, c.RetryMax, first.Attempts, retryAfter))
	p.s.log.Warn("BonyChat webhook post failed; will retry", "channel", first.ChannelID, "contact", first.ContactID,
		"events", len(l.Jobs), "attempt", first.Attempts, "next", next.UTC().Format(time.RFC3339), "error", cause.Error())
	if err := p.st.Retry(context.Background(), l.Token, next, cause.Error()); err != nil {
		p.s.log.Error("reschedule platform jobs", "error", err.Error())
	}
}

// releasePlatform hands jobs back untouched (e.g. at shutdown).
func (p *pipeline) releasePlatform(l store.Lease, why string) {
	if err := p.st.Retry(context.Background(), l.Token, p.now(), why); err != nil {
		p.s.log.Error("release platform jobs", "error", err.Error())
	}
}

// killPlatform moves the jobs to the dead state: listed, counted in /readyz
// and re-playable with `jobs retry`, never silently dropped.
func (p *pipeline) killPlatform(l store.Lease, reason string) {
	j := l.Jobs[0]
	// Whatever the lane's split was looking for died with these events (or
	// is found again by the next refusal): a hint kept would cap the lane's
	// posts, and stay in memory, for the life of the process.
	p.splitHints.Delete(laneOf(j))
	p.s.log.Error("events dead: BonyChat did not take them", "channel", j.ChannelID, "contact", j.ContactID,
		"events", len(l.Jobs), "first_job", j.ID, "reason", reason)
	if err := p.st.Kill(context.Background(), l.Token, reason); err != nil {
		p.s.log.Error("mark platform jobs dead", "error", err.Error())
	}
}
