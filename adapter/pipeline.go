package adapter

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/bonychat/bonychat-adapter/providers"
	"github.com/bonychat/bonychat-adapter/schema"
	"github.com/bonychat/bonychat-adapter/store"
)

// Lease lengths: longer than one attempt can take, so a live worker never
// loses its job; after a crash, start-up releases the leases at once.
const (
	pollInterval = time.Second
)

// pipeline drains the store: outbound jobs to providers, platform jobs to
// BonyChat. Every job is in the store before anyone is told "yes".
type pipeline struct {
	s       *Server
	st      store.Store
	waiters *waiters
	// answering holds the mIds of keyed /message requests that have not
	// stored their answer yet: a repeat with the key waits for it.
	answering sync.Map
	outWake   chan struct{}
	platWake  chan struct{}
	limiters  map[string]*rate.Limiter
	statusMu  providers.KeyedMutex // per mId: checking and advancing a status cannot interleave
	wg        sync.WaitGroup
	outBusy   atomic.Int32
	platBusy  atomic.Int32
	now       func() time.Time
	// stopping is closed when sends may no longer start (stopDispatch):
	// the drain, the workers' stop, or Close. It exists from the start, so
	// a send a request dispatched without StartWorkers can see it too.
	stopping chan struct{}
	stopOnce sync.Once
	// recordAgainAfter is the pause between tries to record a job's end
	// (finishInBackground).
	recordAgainAfter time.Duration
	// splitHints: lanes whose refused batch is being halved → how many
	// events their next post may carry (splitPlatform; in memory: after a
	// restart the batch is just halved again).
	splitHints sync.Map
	// dispatchMu orders starting an outbound send against the start of the
	// drain (stopDispatch): a lease a store write hands back once
	// noDispatch is set is given back pending, never sent; none is
	// dispatched while waitFor waits either.
	dispatchMu sync.RWMutex
	noDispatch bool
}

func newPipeline(s *Server, st store.Store) *pipeline {
	return &pipeline{s: s, st: st, waiters: newWaiters(), outWake: make(chan struct{}, 1),
		platWake: make(chan struct{}, 1), limiters: map[string]*rate.Limiter{}, now: time.Now,
		recordAgainAfter: 5 * time.Second, stopping: make(chan struct{})}
}

// initLimiters gives each channel its BonyChat rate limit (per second, no
// burst). Requests are spaced a millisecond more than 1/rate apart: at
// exactly 1/rate a closed one-second window can hold rate+1 of them, and
// PROTOCOL asks to stay under the published limit.
func (p *pipeline) initLimiters() {
	for id := range p.s.channels {
		p.limiters[id] = rate.NewLimiter(platformSpacing(p.s.cfg.Platform.RateLimit), 1)
	}
}

func platformSpacing(perSecond float64) rate.Limit {
	// Capped: a tiny rate would overflow a Duration into "no limit".
	seconds := min(1/perSecond, (24 * time.Hour).Seconds())
	return rate.Every(time.Duration(seconds*float64(time.Second)) + time.Millisecond)
}

// recover runs at start-up, before any worker: jobs leased by a process
// that died are handed back. Outbound ones are marked, since their send
// may have reached the provider (see interrupted).
func (p *pipeline) recover(ctx context.Context) error {
	for _, q := range []store.Queue{store.Outbound, store.Platform} {
		n, err := p.st.Recover(ctx, q, interruptedMark)
		if err != nil {
			return err
		}
		if n > 0 {
			p.s.log.Warn("resumed jobs interrupted by a stop", "queue", string(q), "jobs", n)
		}
	}
	return nil
}

// platformJob is the payload of a platform job: one event and the contact
// profile that came with it.
type platformJob struct {
	Event   schema.Event    `json:"event"`
	Contact *schema.Contact `json:"contact,omitempty"`
}

// outboundJob is the payload of an outbound job.
type outboundJob struct {
	Message schema.Message `json:"message"`
}

func wake(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// run starts the workers; they stop leasing when ctx ends and finish what
// they hold. wait blocks until they have.
func (p *pipeline) run(ctx context.Context) {
	p.wg.Add(3)
	go func() { defer p.wg.Done(); p.loop(ctx, p.outWake, p.leaseOutbound) }()
	go func() { defer p.wg.Done(); p.loop(ctx, p.platWake, p.leasePlatform) }()
	left := p.s.leftMedia
	p.s.leftMedia = nil // the janitor's, once: not kept for the server's life
	go func() { defer p.wg.Done(); p.janitor(ctx, left) }()
}

// Housekeeping: how often, and how long finished jobs stay listable (the
// last status of a message is kept for providers.MessageRecordTTL).
const (
	sweepInterval = 10 * time.Minute
	keepDoneJobs  = 7 * 24 * time.Hour
)

// janitor deletes expired keys and records, old finished jobs, statuses
// of messages with no news for long, and expired media; at start-up also
// those of mediaFiles (listed when the server was built) that an
// earlier crash left unrecorded. Dead and pending jobs are never deleted.
func (p *pipeline) janitor(ctx context.Context, mediaFiles []storedFile) {
	ticker := time.NewTicker(sweepInterval)
	defer ticker.Stop()
	n, err := p.s.media.removeOrphans(ctx, mediaFiles)
	switch {
	case err != nil && ctx.Err() == nil:
		p.s.log.Warn("sweep media files a crash left", "removed", n, "error", err.Error())
	case n > 0:
		p.s.log.Info("removed media files a crash left", "removed", n)
	}
	for {
		now := p.now()
		req := store.SweepRequest{Now: now, DoneBefore: now.Add(-keepDoneJobs), StatusBefore: now.Add(-providers.MessageRecordTTL)}
		if err := p.st.Sweep(ctx, req); err != nil && ctx.Err() == nil {
			p.s.log.Warn("sweep store", "error", err.Error())
		}
		if err := p.s.media.sweep(ctx); err != nil && ctx.Err() == nil {
			p.s.log.Warn("sweep media", "error", err.Error())
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// waitFor waits for the workers to finish what they hold, at most d; what
// is still running then stays leased in the store and start-up resumes it.
func (p *pipeline) waitFor(d time.Duration) {
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	timer := time.NewTimer(max(d, 0))
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		select {
		case <-done: // finished just in time (d may be 0)
		default:
			p.s.log.Warn("stopping with attempts still in flight; start-up will resume them")
		}
	}
}

// loop leases work whenever woken or every pollInterval (for retries that
// come due), until ctx ends.
func (p *pipeline) loop(ctx context.Context, wakeCh chan struct{}, lease func(ctx context.Context) int) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-wakeCh:
		case <-timer.C:
		}
		for lease(ctx) > 0 && ctx.Err() == nil {
		}
		timer.Reset(pollInterval)
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only our own plain structs are encoded
	}
	return b
}
