// Package store is the adapter's durable state: the outbound and platform
// job queues (ordered lanes per channel and contact, leases, retries, a dead
// state), dedupe and idempotency keys with expiry, the last status per mId,
// small key-value records (contact-ID map, e-mail threads, opt-outs) and
// media metadata. SQLite (pure Go, WAL) is the embedded default; Memory is
// the same behaviour without durability, for tests and benchmarks. Every
// implementation must pass the behaviour tests in storetest.
package store

import (
	"context"
	"errors"
	"time"
)

// Queue names a job queue.
type Queue string

const (
	// Outbound jobs carry BonyChat messages to a provider.
	Outbound Queue = "outbound"
	// Platform jobs carry events to BonyChat's webhook.
	Platform Queue = "platform"
)

// State is where a job is in its life.
type State string

const (
	Pending State = "pending" // waiting for its time and for earlier jobs of its lane
	Leased  State = "leased"  // a worker holds it until LeaseUntil
	Done    State = "done"    // finished (delivered, or ended with a reported outcome)
	Dead    State = "dead"    // gave up; listed, counted and re-playable, deleted only by Drop
)

// Errors callers can test with errors.Is.
var (
	// ErrDuplicate: a dedupe key of the enqueue is already recorded; nothing was stored.
	ErrDuplicate = errors.New("store: duplicate")
	// ErrLeaseLost: the lease expired or was taken over; the worker must drop the job.
	ErrLeaseLost = errors.New("store: lease lost")
	// ErrNotFound: no such record.
	ErrNotFound = errors.New("store: not found")
)

// NotStored reports whether a write that failed with err certainly changed
// nothing in the store, so that what its caller prepared for it (media
// files its events would have linked, say) may be thrown away.
//
// It holds for ErrDuplicate, ErrLeaseLost and ErrNotFound (a write fails
// with them before it changes anything, or is undone alone), and for the
// errors a store marks as failing before its write could commit:
//   - SQLite: the caller's context done, or the store closed, before the
//     writer took the write (once taken, the write waits for its
//     transaction's outcome, whatever its context); a transaction that
//     failed before its COMMIT (BEGIN refused by a database locked for
//     longer than the busy timeout, a statement failing); a write undone
//     alone in a batch that then committed.
//   - Memory: a done context and a closed store, both checked before
//     anything changes.
//
// Any other error leaves the outcome unknown, and NotStored is false: a
// COMMIT that failed may still be on disk (SQLite writes the transaction
// to the WAL before the fsync that can fail, and the next open's recovery
// replays it unless a later write overwrote it; a networked database can
// lose the connection while it commits), and an error no store marked (a
// wrapper's, a new store's) is unknown too.
func NotStored(err error) bool {
	if errors.Is(err, ErrDuplicate) || errors.Is(err, ErrLeaseLost) || errors.Is(err, ErrNotFound) {
		return true
	}
	_, marked := errors.AsType[*notStoredError](err)
	return marked
}

// notStoredError marks an error with which a write certainly changed
// nothing (see NotStored). It reads as, and unwraps to, the error it marks.
type notStoredError struct{ err error }

func (e *notStoredError) Error() string { return e.err.Error() }
func (e *notStoredError) Unwrap() error { return e.err }

// notStored marks err (nil stays nil) as a failure that stored nothing.
func notStored(err error) error {
	if err == nil {
		return nil
	}
	return &notStoredError{err}
}

// NewJob is a job to enqueue. Jobs of one lane (Queue, ChannelID, ContactID)
// run strictly in enqueue order, one lease at a time.
type NewJob struct {
	Queue     Queue
	ChannelID string
	ContactID string
	MID       string // outbound: our mId; platform: the event's mId
	Payload   []byte // opaque to the store (JSON)
	NotBefore time.Time
	// Status, when set, advances the status record of its mId (as
	// AdvanceStatus) in the transaction that stores the job: a status event
	// and the record that it was queued never come apart. Enqueue and
	// CompleteWith take it; EnqueueLeased refuses it.
	Status *Status
}

// Job is a stored job.
type Job struct {
	ID         int64
	Queue      Queue
	ChannelID  string
	ContactID  string
	MID        string
	Payload    []byte
	State      State
	Attempts   int // leases taken so far
	CreatedAt  time.Time
	NextAt     time.Time
	LeaseUntil time.Time
	LastError  string
}

// Key is a dedupe or idempotency record: Name is unique while it has not
// expired; Value is what the first writer stored (e.g. the mId it produced).
type Key struct {
	Name    string
	Value   []byte
	Expires time.Time
}

// Lease is a group of consecutive jobs of one lane held by one worker.
type Lease struct {
	Token string
	Jobs  []Job
}

// LeaseRequest asks for ready work of a queue: at most Lanes lanes, oldest
// first, and from each lane its first ready job plus up to PerLane-1
// directly following pending jobs that are also due (PerLane 1 for
// outbound, up to 20 for platform batches).
type LeaseRequest struct {
	Queue   Queue // required
	Now     time.Time
	For     time.Duration
	Lanes   int
	PerLane int
	// ChannelID restricts leasing to one channel when not empty.
	ChannelID string
}

// JobFilter selects jobs for listing; zero fields match everything.
type JobFilter struct {
	Queue     Queue
	State     State
	ChannelID string
	Limit     int
}

// Media is the metadata of a stored media file.
type Media struct {
	ID          string
	FileName    string
	ContentType string
	Size        int64
	Path        string // where the bytes live, relative to the media dir
	CreatedAt   time.Time
	Expires     time.Time
}

// Status is the last receipt state posted for an mId.
type Status struct {
	MID   string
	Value string
	Rank  int
}

// SweepRequest says what Sweep deletes: keys and records expired at Now,
// done jobs finished before DoneBefore, and the statuses of messages last
// updated before StatusBefore. A zero cutoff keeps those.
type SweepRequest struct {
	Now          time.Time
	DoneBefore   time.Time
	StatusBefore time.Time
}

// Store is the durable state. Methods are safe for concurrent use; every
// write is durable when it returns.
type Store interface {
	// Enqueue stores jobs in order and records keys, in one transaction. If
	// any key's Name is recorded and not expired, nothing is stored and the
	// error is ErrDuplicate. It returns the new job IDs.
	Enqueue(ctx context.Context, jobs []NewJob, keys []Key) ([]int64, error)
	// EnqueueLeased stores one job like Enqueue and, when its lane has no
	// unfinished job and the job is due at now, leases it to the caller in
	// the same transaction (lease.Jobs[0] is the job): one write instead of
	// an enqueue and a lease, so a message to an idle contact is sent at
	// once. lease is nil when the job must wait its turn.
	EnqueueLeased(ctx context.Context, job NewJob, keys []Key, now time.Time, leaseFor time.Duration) (int64, *Lease, error)
	// Lease takes ready work (see LeaseRequest): each lane's unfinished
	// jobs in ID order, from its first. A lane with a leased or earlier
	// pending job is not ready. An expired lease is ready again, and taking
	// it over (even only its first job) ends it whole: its holder can
	// complete none of its jobs (ErrLeaseLost), and the lane starts again
	// from its first unfinished job.
	Lease(ctx context.Context, req LeaseRequest) ([]Lease, error)
	// Complete marks the lease's jobs done.
	Complete(ctx context.Context, token string, lastError string) error
	// CompleteWith marks the lease's jobs done and enqueues follow-up jobs
	// in the same transaction (e.g. the status event announcing the
	// outcome), so a crash can lose neither half.
	CompleteWith(ctx context.Context, token string, lastError string, follow []NewJob) error
	// Release shortens a lease to its first keep jobs (keep ≥ 1): the others
	// go back to pending, behind them in their lane, as they were before
	// the lease (due, their attempts counted). For a batch refused as a
	// whole, to find the event that was refused.
	Release(ctx context.Context, token string, keep int) error
	// Retry puts the lease's jobs back to pending, due at next.
	Retry(ctx context.Context, token string, next time.Time, lastError string) error
	// Kill marks the lease's jobs dead with the reason.
	Kill(ctx context.Context, token string, reason string) error
	// Revive puts dead jobs back to pending, due now: the given IDs, or every
	// dead job when ids is empty. A revived job starts over: no attempts,
	// and CreatedAt now, so that its max_age counts from the replay (one that
	// died of old age would otherwise die again at its first failure). It
	// takes its place in its lane by ID: it runs before the later jobs, once
	// a lease the lane holds ends (however it ends). It returns how many
	// were revived.
	Revive(ctx context.Context, ids []int64, now time.Time) (int, error)
	// Drop deletes dead jobs for good: the given IDs, or every dead job
	// when ids is empty. Jobs in any other state are left as they are. It
	// returns how many were deleted. For events an operator has decided
	// not to replay (a channel misconfigured for weeks).
	Drop(ctx context.Context, ids []int64) (int, error)
	// Jobs lists jobs, oldest first.
	Jobs(ctx context.Context, f JobFilter) ([]Job, error)
	// Job returns one job.
	Job(ctx context.Context, id int64) (Job, error)
	// JobByMID returns the newest job of the queue with this mId.
	JobByMID(ctx context.Context, q Queue, mID string) (Job, error)
	// Recover puts every leased job of the queue back to pending, due now,
	// with lastError recorded on each, and returns how many. For start-up of
	// a store only one process uses (a crashed process's leases).
	Recover(ctx context.Context, q Queue, lastError string) (int, error)
	// StatusOf returns the recorded status of an mId, or ErrNotFound.
	StatusOf(ctx context.Context, mID string) (Status, error)
	// Count counts the jobs in each of states (every state when none is
	// given); each of those states is in the map. Done jobs are many (days
	// of traffic): a frequent caller, such as a readiness probe, leaves
	// them out.
	Count(ctx context.Context, states ...State) (map[State]int, error)

	// RecordKey stores a key unless one of that name is recorded and not
	// expired; then it returns the recorded key and ErrDuplicate.
	RecordKey(ctx context.Context, k Key, now time.Time) (Key, error)
	// LookupKey returns an unexpired key or ErrNotFound.
	LookupKey(ctx context.Context, name string, now time.Time) (Key, error)

	// AdvanceStatus records value for mID if rank is higher than the
	// recorded one (or none is recorded); it reports whether it advanced.
	AdvanceStatus(ctx context.Context, s Status) (bool, error)

	// Put and Get hold small records by namespace and key. Put's records
	// never expire.
	Put(ctx context.Context, ns, key string, value []byte) error
	// PutUntil is Put for a record that Get no longer returns from expires
	// on, and Sweep deletes (zero expires: never, as Put).
	PutUntil(ctx context.Context, ns, key string, value []byte, expires time.Time) error
	Get(ctx context.Context, ns, key string) ([]byte, error)

	PutMedia(ctx context.Context, m Media) error
	GetMedia(ctx context.Context, id string) (Media, error)
	// DeleteMedia removes the metadata of one media item (no error when
	// there is none): for media that nothing links to, such as those saved
	// for an inbound message that was not stored.
	DeleteMedia(ctx context.Context, id string) error
	// ExpiredMedia removes and returns the metadata of media expired at now.
	ExpiredMedia(ctx context.Context, now time.Time) ([]Media, error)

	// Sweep deletes what has expired or is older than its cutoff.
	Sweep(ctx context.Context, req SweepRequest) error
	// Ping checks the store can be used.
	Ping(ctx context.Context) error
	Close() error
}
