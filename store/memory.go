package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"
)

// Memory is the Store without durability: the same behaviour as SQLite
// (including millisecond time precision), held in maps behind one mutex.
// For tests and for benchmarks against the durable store.
type Memory struct {
	mu        sync.Mutex
	closed    bool
	lastID    int64
	jobs      map[int64]*memJob
	order     []int64            // every job ID, ascending
	lanes     map[lane][]int64   // per lane the IDs of its pending and leased jobs, ascending
	leaseHead map[lane]int64     // per lane holding a lease, its lease's first job
	tokens    map[string][]int64 // lease token -> the jobs it was given
	keys      map[string]Key
	status    map[string]memStatus
	kv        map[[2]string]memRecord
	media     map[string]Media
}

type lane struct {
	queue   Queue
	channel string
	contact string
}

type memJob struct {
	Job
	updatedAt time.Time
	token     string
}

func (j *memJob) lane() lane { return lane{j.Queue, j.ChannelID, j.ContactID} }

// copy returns the job as callers see it (payload copied).
func (j *memJob) copy() Job {
	c := j.Job
	c.Payload = cloneBytes(j.Payload)
	return c
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory {
	return &Memory{
		jobs:      map[int64]*memJob{},
		lanes:     map[lane][]int64{},
		leaseHead: map[lane]int64{},
		tokens:    map[string][]int64{},
		keys:      map[string]Key{},
		status:    map[string]memStatus{},
		kv:        map[[2]string]memRecord{},
		media:     map[string]Media{},
	}
}

// lock takes the mutex unless the store is closed or the context is done:
// errors marked NotStored, as nothing has changed yet.
func (m *Memory) lock(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return notStored(err)
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return notStored(ErrClosed)
	}
	return nil
}

func keyExpired(k Key, now time.Time) bool {
	return expiresToMS(k.Expires) <= toMS(now)
}

// Enqueue implements Store.
func (m *Memory) Enqueue(ctx context.Context, jobs []NewJob, keys []Key) ([]int64, error) {
	if err := checkNewJobs(jobs); err != nil {
		return nil, err
	}
	if err := m.lock(ctx); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	return m.enqueueLocked(jobs, keys)
}

func checkNewJobs(jobs []NewJob) error {
	for _, j := range jobs {
		if err := checkNewJob(j); err != nil {
			return err
		}
	}
	return nil
}

// enqueueLocked is Enqueue of checked jobs, the store locked.
func (m *Memory) enqueueLocked(jobs []NewJob, keys []Key) ([]int64, error) {
	now := truncMS(time.Now())
	// Claim the keys in order, as the SQL store does, but on the side:
	// nothing is stored on a duplicate.
	staged := map[string]Key{}
	for _, k := range keys {
		old, ok := staged[k.Name]
		if !ok {
			old, ok = m.keys[k.Name]
		}
		if ok && !keyExpired(old, now) {
			return nil, ErrDuplicate
		}
		staged[k.Name] = Key{Name: k.Name, Value: cloneBytes(k.Value), Expires: truncExpires(k.Expires)}
	}
	for name, k := range staged {
		m.keys[name] = k
	}
	ids := make([]int64, 0, len(jobs))
	for _, nj := range jobs {
		m.lastID++
		j := &memJob{Job: Job{
			ID: m.lastID, Queue: nj.Queue, ChannelID: nj.ChannelID, ContactID: nj.ContactID, MID: nj.MID,
			Payload: cloneBytes(nj.Payload), State: Pending, CreatedAt: now, NextAt: fromMS(dueMS(nj.NotBefore)),
		}, updatedAt: now}
		m.jobs[j.ID] = j
		m.order = append(m.order, j.ID)
		m.lanes[j.lane()] = append(m.lanes[j.lane()], j.ID)
		ids = append(ids, j.ID)
		if nj.Status != nil {
			m.advanceStatus(*nj.Status)
		}
	}
	return ids, nil
}

// EnqueueLeased implements Store.
func (m *Memory) EnqueueLeased(ctx context.Context, nj NewJob, keys []Key, now time.Time, leaseFor time.Duration) (int64, *Lease, error) {
	if err := checkLeasedJob(nj); err != nil {
		return 0, nil, err
	}
	if leaseFor <= 0 {
		return 0, nil, errors.New("store: enqueue leased: leaseFor must be positive")
	}
	if err := m.lock(ctx); err != nil {
		return 0, nil, err
	}
	defer m.mu.Unlock()
	// One lock for both steps, as one transaction: of concurrent callers
	// into an idle lane exactly one (the first job) gets the lease.
	ids, err := m.enqueueLocked([]NewJob{nj}, keys)
	if err != nil {
		return 0, nil, err
	}
	j := m.jobs[ids[0]]
	lane := m.lanes[j.lane()]
	if len(lane) != 1 || lane[0] != j.ID || !ready(j.Job, toMS(now)) {
		return j.ID, nil, nil
	}
	token := newToken()
	j.State, j.Attempts, j.LeaseUntil, j.token = Leased, 1, truncMS(now.Add(leaseFor)), token
	m.tokens[token] = append(m.tokens[token], j.ID)
	m.leaseHead[j.lane()] = j.ID
	return j.ID, &Lease{Token: token, Jobs: []Job{j.copy()}}, nil
}

// Lease implements Store.
func (m *Memory) Lease(ctx context.Context, req LeaseRequest) ([]Lease, error) {
	req, err := normalizeLease(req)
	if err != nil {
		return nil, err
	}
	if err := m.lock(ctx); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	now := toMS(req.Now)
	until := truncMS(req.Now.Add(req.For))
	touched := truncMS(time.Now())

	var heads []*memJob
	for l, ids := range m.lanes {
		if l.queue != req.Queue || (req.ChannelID != "" && l.channel != req.ChannelID) {
			continue
		}
		if h := m.laneHead(l, ids); ready(h.Job, now) {
			heads = append(heads, h)
		}
	}
	slices.SortFunc(heads, func(a, b *memJob) int { return compareReady(a.Job, b.Job) })
	if len(heads) > req.Lanes {
		heads = heads[:req.Lanes]
	}
	var out []Lease
	for _, h := range heads {
		if h.State == Leased {
			m.endLease(h, touched)
		}
		token := newToken()
		l := Lease{Token: token}
		for i, id := range m.lanes[h.lane()] {
			j := m.jobs[id]
			if i >= req.PerLane || !ready(j.Job, now) {
				break
			}
			j.State, j.Attempts, j.LeaseUntil, j.token, j.updatedAt = Leased, j.Attempts+1, until, token, touched
			m.tokens[token] = append(m.tokens[token], j.ID)
			l.Jobs = append(l.Jobs, j.copy())
		}
		// A lease taken over whose lane's first job is not due (revived for
		// later) holds nothing: handed out, a worker would read Jobs[0].
		if len(l.Jobs) > 0 {
			m.leaseHead[h.lane()] = l.Jobs[0].ID
			out = append(out, l)
		}
	}
	return out, nil
}

// laneHead is the job a lane (its IDs, ascending) goes on with: its
// lease's first job if it holds one (a lane has one lease at a time), else
// its first job. As the SQLite store's head mark.
func (m *Memory) laneHead(l lane, ids []int64) *memJob {
	if id, ok := m.leaseHead[l]; ok {
		return m.jobs[id]
	}
	return m.jobs[ids[0]]
}

// endLease puts the jobs of the expired lease that head (its first job)
// holds back to pending, as Lease takes it over: its holder can complete
// none of them. The lane then starts again from its first job, which a
// job revived while the lease was held may be.
func (m *Memory) endLease(head *memJob, touched time.Time) {
	for _, id := range m.tokens[head.token] {
		if j := m.jobs[id]; j.State == Leased {
			j.State, j.LeaseUntil, j.token, j.updatedAt = Pending, time.Time{}, "", touched
		}
	}
	delete(m.tokens, head.token)
	delete(m.leaseHead, head.lane())
}

// dropToken forgets that token holds job id.
func (m *Memory) dropToken(token string, id int64) {
	ids := slices.DeleteFunc(m.tokens[token], func(x int64) bool { return x == id })
	if len(ids) == 0 {
		delete(m.tokens, token)
	} else {
		m.tokens[token] = ids
	}
}

// held returns the jobs still leased with token.
func (m *Memory) held(token string) []*memJob {
	var out []*memJob
	for _, id := range m.tokens[token] {
		if j := m.jobs[id]; j != nil && j.State == Leased && j.token == token {
			out = append(out, j)
		}
	}
	return out
}

// lockHeld locks the store and returns the jobs token still holds; the
// caller unlocks. Without any (ErrLeaseLost) it leaves the store unlocked.
func (m *Memory) lockHeld(ctx context.Context, token string) ([]*memJob, error) {
	if err := m.lock(ctx); err != nil {
		return nil, err
	}
	jobs := m.held(token)
	if len(jobs) == 0 {
		m.mu.Unlock()
		return nil, ErrLeaseLost
	}
	return jobs, nil
}

// finish applies fn to the jobs of a lease and ends the lease.
func (m *Memory) finish(ctx context.Context, token string, fn func(j *memJob, now time.Time)) error {
	jobs, err := m.lockHeld(ctx, token)
	if err != nil {
		return err
	}
	defer m.mu.Unlock()
	m.finishLocked(token, jobs, fn)
	return nil
}

// finishLocked is finish of the jobs token holds, the store locked.
func (m *Memory) finishLocked(token string, jobs []*memJob, fn func(j *memJob, now time.Time)) {
	now := truncMS(time.Now())
	for _, j := range jobs {
		if m.leaseHead[j.lane()] == j.ID {
			delete(m.leaseHead, j.lane())
		}
		fn(j, now)
		j.updatedAt = now
		if j.State == Done || j.State == Dead {
			m.leaveLane(j)
		}
	}
	delete(m.tokens, token)
}

// leaveLane removes a job that is now done or dead from its lane.
func (m *Memory) leaveLane(j *memJob) {
	l := j.lane()
	ids := slices.DeleteFunc(m.lanes[l], func(x int64) bool { return x == j.ID })
	if len(ids) == 0 {
		delete(m.lanes, l)
	} else {
		m.lanes[l] = ids
	}
}

// Complete implements Store.
func (m *Memory) Complete(ctx context.Context, token string, lastError string) error {
	return m.finish(ctx, token, completeAs(lastError))
}

func completeAs(lastError string) func(j *memJob, _ time.Time) {
	return func(j *memJob, _ time.Time) { j.State, j.LastError = Done, lastError }
}

// CompleteWith implements Store: one lock for both steps, as one
// transaction (a follow-up refused changes nothing, and no other write
// sees the lane between the completion and the follow-ups).
func (m *Memory) CompleteWith(ctx context.Context, token string, lastError string, follow []NewJob) error {
	if err := checkNewJobs(follow); err != nil {
		return err
	}
	jobs, err := m.lockHeld(ctx, token)
	if err != nil {
		return err
	}
	defer m.mu.Unlock()
	m.finishLocked(token, jobs, completeAs(lastError))
	if len(follow) == 0 {
		return nil
	}
	_, err = m.enqueueLocked(follow, nil)
	return err
}

// Release implements Store.
func (m *Memory) Release(ctx context.Context, token string, keep int) error {
	if keep < 1 {
		return fmt.Errorf("store: release: keep %d, want at least 1", keep)
	}
	jobs, err := m.lockHeld(ctx, token)
	if err != nil {
		return err
	}
	defer m.mu.Unlock()
	slices.SortFunc(jobs, func(a, b *memJob) int { return cmp.Compare(a.ID, b.ID) })
	touched := truncMS(time.Now())
	for _, j := range jobs[min(keep, len(jobs)):] {
		m.dropToken(token, j.ID)
		j.State, j.LeaseUntil, j.token, j.updatedAt = Pending, time.Time{}, "", touched
	}
	return nil
}

// Retry implements Store.
func (m *Memory) Retry(ctx context.Context, token string, next time.Time, lastError string) error {
	return m.finish(ctx, token, func(j *memJob, _ time.Time) {
		j.State, j.NextAt, j.LeaseUntil, j.LastError = Pending, fromMS(retryMS(next)), time.Time{}, lastError
	})
}

// Kill implements Store.
func (m *Memory) Kill(ctx context.Context, token string, reason string) error {
	return m.finish(ctx, token, func(j *memJob, _ time.Time) {
		j.State, j.LastError = Dead, reason
	})
}

// Revive implements Store.
func (m *Memory) Revive(ctx context.Context, ids []int64, now time.Time) (int, error) {
	if now.IsZero() {
		now = time.Now()
	}
	if err := m.lock(ctx); err != nil {
		return 0, err
	}
	defer m.mu.Unlock()
	if len(ids) == 0 {
		ids = m.order
	}
	touched := truncMS(time.Now())
	n := 0
	for _, id := range ids {
		j := m.jobs[id]
		if j == nil || j.State != Dead {
			continue
		}
		j.State, j.NextAt, j.CreatedAt, j.LeaseUntil, j.Attempts, j.updatedAt = Pending, truncMS(now), truncMS(now), time.Time{}, 0, touched
		m.rejoinLane(j)
		n++
	}
	return n, nil
}

// Drop implements Store.
func (m *Memory) Drop(ctx context.Context, ids []int64) (int, error) {
	if err := m.lock(ctx); err != nil {
		return 0, err
	}
	defer m.mu.Unlock()
	drop := func(id int64) bool { return len(ids) == 0 || slices.Contains(ids, id) }
	n := 0
	m.order = slices.DeleteFunc(m.order, func(id int64) bool {
		if j := m.jobs[id]; j.State == Dead && drop(id) {
			delete(m.jobs, id)
			n++
			return true
		}
		return false
	})
	return n, nil
}

// rejoinLane puts a revived job back in its lane in ID order. A lease the
// lane holds stays its only one (laneHead), and the revived job runs as
// soon as it ends, before the jobs behind it.
func (m *Memory) rejoinLane(j *memJob) {
	l := j.lane()
	i, _ := slices.BinarySearch(m.lanes[l], j.ID)
	m.lanes[l] = slices.Insert(m.lanes[l], i, j.ID)
}

// Recover implements Store. Every queue when q is empty.
func (m *Memory) Recover(ctx context.Context, q Queue, lastError string) (int, error) {
	if err := m.lock(ctx); err != nil {
		return 0, err
	}
	defer m.mu.Unlock()
	touched := truncMS(time.Now())
	n := 0
	for _, ids := range m.lanes {
		for _, id := range ids {
			j := m.jobs[id]
			if j.State != Leased || (q != "" && j.Queue != q) {
				continue
			}
			m.dropToken(j.token, j.ID)
			delete(m.leaseHead, j.lane())
			j.State, j.LeaseUntil, j.LastError, j.updatedAt, j.token = Pending, time.Time{}, lastError, touched, ""
			n++
		}
	}
	return n, nil
}

func (f JobFilter) match(j *memJob) bool {
	return (f.Queue == "" || j.Queue == f.Queue) && (f.State == "" || j.State == f.State) &&
		(f.ChannelID == "" || j.ChannelID == f.ChannelID)
}

// Jobs implements Store.
func (m *Memory) Jobs(ctx context.Context, f JobFilter) ([]Job, error) {
	if err := m.lock(ctx); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	var out []Job
	for _, id := range m.order {
		if j := m.jobs[id]; f.match(j) {
			out = append(out, j.copy())
			if f.Limit > 0 && len(out) == f.Limit {
				break
			}
		}
	}
	return out, nil
}

// Job implements Store.
func (m *Memory) Job(ctx context.Context, id int64) (Job, error) {
	if err := m.lock(ctx); err != nil {
		return Job{}, err
	}
	defer m.mu.Unlock()
	j := m.jobs[id]
	if j == nil {
		return Job{}, ErrNotFound
	}
	return j.copy(), nil
}

// JobByMID implements Store.
func (m *Memory) JobByMID(ctx context.Context, q Queue, mID string) (Job, error) {
	if err := m.lock(ctx); err != nil {
		return Job{}, err
	}
	defer m.mu.Unlock()
	for i := len(m.order) - 1; i >= 0; i-- {
		if j := m.jobs[m.order[i]]; j.Queue == q && j.MID == mID {
			return j.copy(), nil
		}
	}
	return Job{}, ErrNotFound
}

// Count implements Store. Every state is present in the map.
func (m *Memory) Count(ctx context.Context, states ...State) (map[State]int, error) {
	out, err := countMap(states)
	if err != nil {
		return nil, err
	}
	if err := m.lock(ctx); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	for _, j := range m.jobs {
		if _, ok := out[j.State]; ok {
			out[j.State]++
		}
	}
	return out, nil
}

// RecordKey implements Store.
func (m *Memory) RecordKey(ctx context.Context, k Key, now time.Time) (Key, error) {
	if now.IsZero() {
		now = time.Now()
	}
	if err := m.lock(ctx); err != nil {
		return Key{}, err
	}
	defer m.mu.Unlock()
	if old, ok := m.keys[k.Name]; ok && !keyExpired(old, now) {
		old.Value = cloneBytes(old.Value)
		return old, ErrDuplicate
	}
	k = Key{Name: k.Name, Value: cloneBytes(k.Value), Expires: truncExpires(k.Expires)}
	m.keys[k.Name] = k
	k.Value = cloneBytes(k.Value)
	return k, nil
}

// LookupKey implements Store.
func (m *Memory) LookupKey(ctx context.Context, name string, now time.Time) (Key, error) {
	if now.IsZero() {
		now = time.Now()
	}
	if err := m.lock(ctx); err != nil {
		return Key{}, err
	}
	defer m.mu.Unlock()
	k, ok := m.keys[name]
	if !ok || keyExpired(k, now) {
		return Key{}, ErrNotFound
	}
	k.Value = cloneBytes(k.Value)
	return k, nil
}

// AdvanceStatus implements Store.
func (m *Memory) AdvanceStatus(ctx context.Context, s Status) (bool, error) {
	if err := m.lock(ctx); err != nil {
		return false, err
	}
	defer m.mu.Unlock()
	return m.advanceStatus(s), nil
}

// advanceStatus is AdvanceStatus with the lock held.
func (m *Memory) advanceStatus(s Status) bool {
	if old, ok := m.status[s.MID]; ok && s.Rank <= old.Rank {
		return false
	}
	m.status[s.MID] = memStatus{Status: s, updated: time.Now().UnixMilli()}
	return true
}

// StatusOf implements Store.
func (m *Memory) StatusOf(ctx context.Context, mID string) (Status, error) {
	if err := m.lock(ctx); err != nil {
		return Status{}, err
	}
	defer m.mu.Unlock()
	st, ok := m.status[mID]
	if !ok {
		return Status{}, ErrNotFound
	}
	return st.Status, nil
}

// Put implements Store.
func (m *Memory) Put(ctx context.Context, ns, key string, value []byte) error {
	return m.PutUntil(ctx, ns, key, value, time.Time{})
}

// PutUntil implements Store.
func (m *Memory) PutUntil(ctx context.Context, ns, key string, value []byte, expires time.Time) error {
	if err := m.lock(ctx); err != nil {
		return err
	}
	defer m.mu.Unlock()
	m.kv[[2]string{ns, key}] = memRecord{value: cloneBytes(value), expires: expiresToMS(expires)}
	return nil
}

// memStatus is a status with when it last advanced (unix ms).
type memStatus struct {
	Status
	updated int64
}

// memRecord is a kv record; expires in unix ms, neverMS for never.
type memRecord struct {
	value   []byte
	expires int64
}

// Get implements Store.
func (m *Memory) Get(ctx context.Context, ns, key string) ([]byte, error) {
	if err := m.lock(ctx); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	r, ok := m.kv[[2]string{ns, key}]
	if !ok || r.expires <= time.Now().UnixMilli() {
		return nil, ErrNotFound
	}
	return cloneBytes(r.value), nil
}

// PutMedia implements Store.
func (m *Memory) PutMedia(ctx context.Context, md Media) error {
	if err := m.lock(ctx); err != nil {
		return err
	}
	defer m.mu.Unlock()
	md.CreatedAt, md.Expires = truncMS(md.CreatedAt), truncExpires(md.Expires)
	m.media[md.ID] = md
	return nil
}

// GetMedia implements Store.
func (m *Memory) GetMedia(ctx context.Context, id string) (Media, error) {
	if err := m.lock(ctx); err != nil {
		return Media{}, err
	}
	defer m.mu.Unlock()
	md, ok := m.media[id]
	if !ok {
		return Media{}, ErrNotFound
	}
	return md, nil
}

// DeleteMedia implements Store.
func (m *Memory) DeleteMedia(ctx context.Context, id string) error {
	if err := m.lock(ctx); err != nil {
		return err
	}
	defer m.mu.Unlock()
	delete(m.media, id)
	return nil
}

// ExpiredMedia implements Store. The result is ordered by expiry, then ID.
func (m *Memory) ExpiredMedia(ctx context.Context, now time.Time) ([]Media, error) {
	if now.IsZero() {
		now = time.Now()
	}
	if err := m.lock(ctx); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	var out []Media
	for id, md := range m.media {
		if expiresToMS(md.Expires) <= toMS(now) {
			out = append(out, md)
			delete(m.media, id)
		}
	}
	sortMedia(out)
	return out, nil
}

func sortMedia(ms []Media) {
	slices.SortFunc(ms, func(a, b Media) int {
		return cmp.Or(cmp.Compare(expiresToMS(a.Expires), expiresToMS(b.Expires)), cmp.Compare(a.ID, b.ID))
	})
}

// Sweep implements Store.
func (m *Memory) Sweep(ctx context.Context, req SweepRequest) error {
	now := req.Now
	if now.IsZero() {
		now = time.Now()
	}
	if err := m.lock(ctx); err != nil {
		return err
	}
	defer m.mu.Unlock()
	for name, k := range m.keys {
		if keyExpired(k, now) {
			delete(m.keys, name)
		}
	}
	maps.DeleteFunc(m.kv, func(_ [2]string, r memRecord) bool { return r.expires <= toMS(now) })
	if !req.StatusBefore.IsZero() {
		maps.DeleteFunc(m.status, func(_ string, s memStatus) bool { return s.updated < toMS(req.StatusBefore) })
	}
	if req.DoneBefore.IsZero() {
		return nil
	}
	cut := toMS(req.DoneBefore)
	m.order = slices.DeleteFunc(m.order, func(id int64) bool {
		j := m.jobs[id]
		if j.State == Done && toMS(j.updatedAt) < cut {
			delete(m.jobs, id)
			return true
		}
		return false
	})
	return nil
}

// Ping implements Store.
func (m *Memory) Ping(ctx context.Context) error {
	if err := m.lock(ctx); err != nil {
		return err
	}
	m.mu.Unlock()
	return nil
}

// Close implements Store; later calls fail with ErrClosed.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}
