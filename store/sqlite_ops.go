package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// rowScanner is *sql.Row or *sql.Rows.
type rowScanner interface{ Scan(dest ...any) error }

func scanJob(r rowScanner) (Job, error) {
	var j Job
	var queue, state string
	var created, next, until int64
	if err := r.Scan(&j.ID, &queue, &j.ChannelID, &j.ContactID, &j.MID, &j.Payload, &state, &j.Attempts,
		&created, &next, &until, &j.LastError); err != nil {
		return Job{}, err
	}
	j.Queue, j.State = Queue(queue), State(state)
	j.Payload = cloneBytes(j.Payload)
	j.CreatedAt, j.NextAt, j.LeaseUntil = fromMS(created), fromMS(next), fromMS(until)
	return j, nil
}

func scanJobs(rows *sql.Rows, err error) ([]Job, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Job
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	return out, rows.Err()
}

func scanMedia(r rowScanner) (Media, error) {
	var m Media
	var created, expires int64
	if err := r.Scan(&m.ID, &m.FileName, &m.ContentType, &m.Size, &m.Path, &created, &expires); err != nil {
		return Media{}, err
	}
	m.CreatedAt, m.Expires = fromMS(created), expiresFromMS(expires)
	return m, nil
}

func wrapErr(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrDuplicate), errors.Is(err, ErrLeaseLost), errors.Is(err, ErrNotFound),
		errors.Is(err, ErrClosed), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded),
		strings.HasPrefix(err.Error(), "store: "):
		return err
	}
	return fmt.Errorf("store: sqlite: %s: %w", op, err)
}

func blob(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// Enqueue implements Store.
func (s *SQLite) Enqueue(ctx context.Context, jobs []NewJob, keys []Key) ([]int64, error) {
	for _, j := range jobs {
		if err := checkNewJob(j); err != nil {
			return nil, err
		}
	}
	var ids []int64
	err := s.submit(&writeOp{ctx: ctx, dirtyFail: len(keys) > 1, fn: func(w *wtx) error {
		now := time.Now().UnixMilli()
		if err := w.claimKeys(keys, now); err != nil {
			return err
		}
		ids = make([]int64, 0, len(jobs))
		for _, j := range jobs {
			id, err := w.insertPending(j, now)
			if err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return nil
	}})
	if err != nil {
		return nil, wrapErr("enqueue", err)
	}
	return ids, nil
}

// EnqueueLeased implements Store. Under SQLite's single writer the lane
// check and the insert cannot interleave with another writer; a database
// with concurrent writers must lock the lane (e.g. an advisory lock).
func (s *SQLite) EnqueueLeased(ctx context.Context, j NewJob, keys []Key, now time.Time, leaseFor time.Duration) (int64, *Lease, error) {
	if err := checkLeasedJob(j); err != nil {
		return 0, nil, err
	}
	if leaseFor <= 0 {
		return 0, nil, errors.New("store: enqueue leased: leaseFor must be positive")
	}
	e := &enqueueOp{job: j, now: now, leaseFor: leaseFor}
	o := &writeOp{ctx: ctx, dirtyFail: len(keys) > 1, fn: func(w *wtx) error {
		e.id, e.lease = 0, nil
		created := time.Now().UnixMilli()
		if err := w.claimKeys(keys, created); err != nil {
			return err
		}
		busy, err := w.laneBusy(j)
		if err != nil {
			return err
		}
		if busy || dueMS(j.NotBefore) > toMS(now) {
			e.id, err = w.insertMarked(j, created, !busy)
			return err
		}
		token, until := newToken(), now.Add(leaseFor)
		if err := w.queryRow(qJobInsertLeased, string(j.Queue), j.ChannelID, j.ContactID, j.MID, blob(j.Payload),
			created, created, dueMS(j.NotBefore), toMS(until), token).Scan(&e.id); err != nil {
			return err
		}
		e.lease = &Lease{Token: token, Jobs: []Job{{ID: e.id, Queue: j.Queue, ChannelID: j.ChannelID, ContactID: j.ContactID,
			MID: j.MID, Payload: cloneBytes(j.Payload), State: Leased, Attempts: 1, CreatedAt: fromMS(created),
			NextAt: fromMS(dueMS(j.NotBefore)), LeaseUntil: fromMS(toMS(until))}}}
		return nil
	}}
	if len(keys) == 0 {
		// Without keys it cannot fail but inside SQLite: the writer may
		// store it with the other such writes of its batch in one INSERT.
		o.enqueue = e
	}
	err := s.submit(o)
	if err != nil {
		return 0, nil, wrapErr("enqueue leased", err)
	}
	return e.id, e.lease, nil
}

// laneBusy reports whether the lane of j has an unfinished job.
func (w *wtx) laneBusy(j NewJob) (bool, error) {
	var one int
	err := w.queryRow(qLaneBusy, string(j.Queue), j.ChannelID, j.ContactID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// headMark is the head column's value for a job that is (or is not) the
// first unfinished one of its lane.
func headMark(first bool) int {
	if first {
		return 1
	}
	return 0
}

// insertPending stores a pending job, marked as its lane's head when the
// lane has no unfinished job, and returns its ID.
func (w *wtx) insertPending(j NewJob, now int64) (int64, error) {
	busy, err := w.laneBusy(j)
	if err != nil {
		return 0, err
	}
	id, err := w.insertMarked(j, now, !busy)
	if err != nil || j.Status == nil {
		return id, err
	}
	_, err = w.exec(qStatusAdvance, j.Status.MID, j.Status.Value, j.Status.Rank, now)
	return id, err
}

// insertMarked stores a pending job, marked as head when first (its lane
// has no other unfinished job), and returns its ID.
func (w *wtx) insertMarked(j NewJob, now int64, first bool) (int64, error) {
	var id int64
	err := w.queryRow(qJobInsert, string(j.Queue), j.ChannelID, j.ContactID, j.MID, blob(j.Payload),
		now, now, dueMS(j.NotBefore), headMark(first)).Scan(&id)
	return id, err
}

// finishLease runs q (qJobComplete or qJobKill) on the jobs of a lease and
// marks the next job of their lanes as head; ErrLeaseLost (having changed
// nothing) when the lease holds no job.
func (w *wtx) finishLease(q string, args ...any) error {
	rows, err := w.query(q, args...)
	if err != nil {
		return err
	}
	ids, err := scanTokenIDs(rows, map[string]bool{})
	if err != nil {
		return err
	}
	if len(ids) == 0 {
		return ErrLeaseLost
	}
	return w.promoteAfter(ids)
}

// claimKeys records keys, or fails with ErrDuplicate if one is taken.
func (w *wtx) claimKeys(keys []Key, now int64) error {
	for _, k := range keys {
		n, err := w.execN(qKeyClaim, k.Name, blob(k.Value), expiresToMS(k.Expires), now)
		if err != nil {
			return err
		}
		if n == 0 {
			return ErrDuplicate
		}
	}
	return nil
}

func checkNewJob(j NewJob) error {
	if j.Queue == "" {
		return errors.New("store: enqueue: job without queue")
	}
	return nil
}

// checkLeasedJob checks a job for EnqueueLeased, which takes no status.
func checkLeasedJob(j NewJob) error {
	if j.Status != nil {
		return errors.New("store: enqueue leased: a job with a status is stored with Enqueue")
	}
	return checkNewJob(j)
}

// normalizeLease fills the defaults of a LeaseRequest.
func normalizeLease(req LeaseRequest) (LeaseRequest, error) {
	if req.Queue == "" {
		return req, errors.New("store: lease: no queue")
	}
	if req.For <= 0 {
		return req, errors.New("store: lease: For must be positive")
	}
	if req.Now.IsZero() {
		req.Now = time.Now()
	}
	req.Lanes = max(req.Lanes, 1)
	req.PerLane = max(req.PerLane, 1)
	return req, nil
}

// ready reports whether a job may be leased at now (ms).
func ready(j Job, now int64) bool {
	switch j.State {
	case Pending:
		return toMS(j.NextAt) <= now
	case Leased:
		return toMS(j.LeaseUntil) <= now
	}
	return false
}

// Lease implements Store.
func (s *SQLite) Lease(ctx context.Context, req LeaseRequest) ([]Lease, error) {
	req, err := normalizeLease(req)
	if err != nil {
		return nil, err
	}
	var out []Lease
	err = s.write(ctx, func(w *wtx) error {
		out = nil
		now := toMS(req.Now)
		until := toMS(req.Now.Add(req.For))
		touched := time.Now().UnixMilli()
		heads, err := w.readyHeads(req)
		if err != nil {
			return err
		}
		for _, head := range heads {
			lane, err := w.laneToLease(head, req.PerLane, now, touched)
			if err != nil {
				return err
			}
			token := newToken()
			l := Lease{Token: token}
			for _, j := range lane {
				// Conditional: a job another writer took since the read
				// is not updated (cannot happen under SQLite's write
				// lock; keeps the statement safe for other databases).
				n, err := w.execN(qJobLease, token, until, touched, j.ID, now, now)
				if err != nil {
					return err
				}
				if n != 1 {
					break
				}
				j.State, j.Attempts, j.LeaseUntil = Leased, j.Attempts+1, fromMS(until)
				l.Jobs = append(l.Jobs, j)
			}
			if len(l.Jobs) > 0 {
				out = append(out, l)
			}
		}
		return nil
	})
	if err != nil {
		return nil, wrapErr("lease", err)
	}
	return out, nil
}

// laneToLease returns the jobs of a ready head's lane that Lease takes: up
// to perLane, in ID order, while they are ready. A head whose lease ran out
// is taken over: every job of that lease goes back to pending (its holder
// can complete none of them: ErrLeaseLost) and the lane starts again from
// its first unfinished job, which a job revived while the lease was held
// may be.
func (w *wtx) laneToLease(head Job, perLane int, now, touched int64) ([]Job, error) {
	after, limit := head.ID, perLane-1
	if head.State == Leased {
		var token string
		if err := w.queryRow(qJobToken, head.ID).Scan(&token); err != nil {
			return nil, err
		}
		if _, err := w.exec(qTokenEnd, touched, token); err != nil {
			return nil, err
		}
		if err := w.headToFirst(head.ID); err != nil {
			return nil, err
		}
		after, limit = 0, perLane
	}
	lane := []Job{}
	if after == head.ID {
		lane = append(lane, head)
	}
	if limit > 0 {
		next, err := scanJobs(w.query(laneNextQuery(limit), string(head.Queue), head.ChannelID, head.ContactID, after))
		if err != nil {
			return nil, err
		}
		for _, j := range next[:min(len(next), limit)] {
			if !ready(j, now) {
				break
			}
			lane = append(lane, j)
		}
	}
	return lane, nil
}

// readyHeads returns up to req.Lanes ready lane heads in the order they
// became ready (see compareReady). Each kind of ready head (see readyKind)
// comes from its own index in that order, up to req.Lanes of each, so the
// cost does not grow with the jobs waiting for their time.
func (w *wtx) readyHeads(req LeaseRequest) ([]Job, error) {
	args := []any{string(req.Queue)}
	if req.ChannelID != "" {
		args = append(args, req.ChannelID)
	}
	var heads []Job
	for _, kind := range []readyKind{readyNew, readyRetry, readyExpired} {
		a := args
		if kind != readyNew {
			a = append(a[:len(a):len(a)], toMS(req.Now))
		}
		js, err := scanJobs(w.query(readyHeadsQuery(kind, req.ChannelID != "", req.Lanes), a...))
		if err != nil {
			return nil, err
		}
		heads = append(heads, js...)
	}
	slices.SortFunc(heads, compareReady)
	return heads[:min(len(heads), req.Lanes)], nil
}

// Complete implements Store. The writer completes the tokens of a batch
// with the same lastError in one UPDATE.
func (s *SQLite) Complete(ctx context.Context, token string, lastError string) error {
	return wrapErr("complete", s.submit(&writeOp{ctx: ctx, complete: &completeOp{token: token, lastError: lastError},
		fn: func(w *wtx) error { return w.finishLease(qJobComplete, lastError, time.Now().UnixMilli(), token) }}))
}

// CompleteWith implements Store.
func (s *SQLite) CompleteWith(ctx context.Context, token string, lastError string, follow []NewJob) error {
	for _, j := range follow {
		if err := checkNewJob(j); err != nil {
			return err
		}
	}
	return wrapErr("complete with", s.write(ctx, func(w *wtx) error {
		now := time.Now().UnixMilli()
		if err := w.finishLease(qJobComplete, lastError, now, token); err != nil {
			return err
		}
		for _, j := range follow {
			if _, err := w.insertPending(j, now); err != nil {
				return err
			}
		}
		return nil
	}))
}

// Release implements Store.
func (s *SQLite) Release(ctx context.Context, token string, keep int) error {
	if keep < 1 {
		return fmt.Errorf("store: release: keep %d, want at least 1", keep)
	}
	return wrapErr("release", s.write(ctx, func(w *wtx) error {
		ids, err := scanIDs(w.query(qLeaseIDs, token))
		switch {
		case err != nil:
			return err
		case len(ids) == 0:
			return ErrLeaseLost
		case keep >= len(ids):
			return nil
		}
		_, err = w.exec(qJobRelease, time.Now().UnixMilli(), token, ids[keep-1])
		return err
	}))
}

// Retry implements Store.
func (s *SQLite) Retry(ctx context.Context, token string, next time.Time, lastError string) error {
	return wrapErr("retry", s.write(ctx, func(w *wtx) error {
		ids, err := scanIDs(w.query(qJobRetry, retryMS(next), lastError, time.Now().UnixMilli(), token))
		if err == nil && len(ids) == 0 {
			return ErrLeaseLost
		}
		if err != nil {
			return err
		}
		// The lane's first unfinished job may now be one revived while the
		// lease was held.
		return w.headToFirst(slices.Min(ids))
	}))
}

// Kill implements Store.
func (s *SQLite) Kill(ctx context.Context, token string, reason string) error {
	return wrapErr("kill", s.write(ctx, func(w *wtx) error {
		return w.finishLease(qJobKill, reason, time.Now().UnixMilli(), token)
	}))
}

// Revive implements Store. Revived jobs start over: attempts 0, due at now,
// created now (their max_age counts from the replay). The last error (the
// reason they died) stays until they run again.
func (s *SQLite) Revive(ctx context.Context, ids []int64, now time.Time) (int, error) {
	if now.IsZero() {
		now = time.Now()
	}
	var total int
	err := s.write(ctx, func(w *wtx) error {
		total = 0
		at, touched := dueMS(now), time.Now().UnixMilli()
		revive := ids
		if len(ids) == 0 {
			var err error
			if revive, err = scanIDs(w.query(qDeadIDs)); err != nil {
				return err
			}
			n, err := w.execN(qJobReviveAll, at, at, touched)
			total = int(n)
			if err != nil {
				return err
			}
		}
		for _, id := range ids {
			n, err := w.execN(qJobReviveOne, at, at, touched, id)
			if err != nil {
				return err
			}
			total += int(n)
		}
		return w.remarkHeads(revive)
	})
	if err != nil {
		return 0, wrapErr("revive", err)
	}
	return total, nil
}

// Drop implements Store. Dead jobs hold no lane's head mark (Kill clears
// it), so deleting them moves nothing.
func (s *SQLite) Drop(ctx context.Context, ids []int64) (int, error) {
	if len(ids) > 0 {
		var total int
		err := s.write(ctx, func(w *wtx) error {
			total = 0
			for _, id := range ids {
				n, err := w.execN(qJobDropOne, id)
				if err != nil {
					return err
				}
				total += int(n)
			}
			return nil
		})
		if err != nil {
			return 0, wrapErr("drop", err)
		}
		return total, nil
	}
	return s.dropAllDead(ctx)
}

// dropAllDead deletes every dead job, sweepChunk per write.
func (s *SQLite) dropAllDead(ctx context.Context) (int, error) {
	total := 0
	for {
		var n int64
		err := s.write(ctx, func(w *wtx) error {
			var err error
			n, err = w.execN(qJobDropDead)
			return err
		})
		if err != nil {
			return total, wrapErr("drop", err)
		}
		total += int(n)
		if n < sweepChunk {
			return total, nil
		}
	}
}

// scanIDs reads rows of one ID.
func scanIDs(rows *sql.Rows, err error) ([]int64, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// remarkHeads moves the head mark of the lanes of jobs ids to their first
// unfinished job, which a revived job may now be. A lane with a leased job
// keeps its mark there: a second head would be a second lease in the lane,
// and the lease's end promotes the lane's first unfinished job (the
// revived one) anyway.
func (w *wtx) remarkHeads(ids []int64) error {
	var moved []int64
	for _, id := range ids {
		var held bool
		if err := w.queryRow(qLaneHeld, id).Scan(&held); err != nil {
			return err
		}
		if held {
			continue
		}
		if _, err := w.exec(qLaneUnhead, id); err != nil {
			return err
		}
		moved = append(moved, id)
	}
	return w.promoteAfter(moved)
}

// headToFirst moves the head mark from head, the first job of a lease that
// just ended, to the lane's first unfinished job if one comes before it (a
// job revived while the lease was held). Cheap however long the lane.
func (w *wtx) headToFirst(head int64) error {
	var first sql.NullInt64
	if err := w.queryRow(qLaneBelow, head).Scan(&first); err != nil || !first.Valid {
		return err
	}
	_, err := w.exec(qHeadMove, head, head, first.Int64)
	return err
}

// Recover implements Store. Every queue when q is empty. The jobs keep their
// attempts and their next_at (which was due when they were leased).
func (s *SQLite) Recover(ctx context.Context, q Queue, lastError string) (int, error) {
	var n int64
	err := s.write(ctx, func(w *wtx) error {
		var err error
		touched := time.Now().UnixMilli()
		if q == "" {
			n, err = w.execN(qJobRecoverAll, lastError, touched)
		} else {
			n, err = w.execN(qJobRecover, lastError, touched, string(q))
		}
		if err != nil {
			return err
		}
		// No lane of the queue is held now: each one's first unfinished
		// job is its head (a job revived while its lane was held may come
		// before the old head).
		if q == "" {
			if _, err := w.exec(qAllUnhead); err != nil {
				return err
			}
			_, err = w.exec(qAllHeads)
			return err
		}
		if _, err := w.exec(qQueueUnhead, string(q)); err != nil {
			return err
		}
		_, err = w.exec(qQueueHeads, string(q))
		return err
	})
	if err != nil {
		return 0, wrapErr("recover", err)
	}
	return int(n), nil
}

// Jobs implements Store.
func (s *SQLite) Jobs(ctx context.Context, f JobFilter) ([]Job, error) {
	q, args := jobsQuery(f)
	jobs, err := scanJobs(s.rquery(ctx, q, args...))
	return jobs, wrapErr("jobs", err)
}

func (s *SQLite) oneJob(ctx context.Context, op, q string, args ...any) (Job, error) {
	row, err := s.rqueryRow(ctx, q, args...)
	if err != nil {
		return Job{}, wrapErr(op, err)
	}
	j, err := scanJob(row)
	if errors.Is(err, sql.ErrNoRows) {
		return Job{}, ErrNotFound
	}
	return j, wrapErr(op, err)
}

// Job implements Store.
func (s *SQLite) Job(ctx context.Context, id int64) (Job, error) {
	return s.oneJob(ctx, "job", qJobGet, id)
}

// JobByMID implements Store.
func (s *SQLite) JobByMID(ctx context.Context, q Queue, mID string) (Job, error) {
	return s.oneJob(ctx, "job by mId", qJobByMID, string(q), mID)
}

// Count implements Store.
func (s *SQLite) Count(ctx context.Context, states ...State) (map[State]int, error) {
	out, err := countMap(states)
	if err != nil {
		return nil, err
	}
	rows, err := s.rquery(ctx, countQuery(out))
	if err != nil {
		return nil, wrapErr("count", err)
	}
	defer rows.Close()
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, wrapErr("count", err)
		}
		if _, ok := out[State(st)]; ok {
			out[State(st)] = n
		}
	}
	return out, wrapErr("count", rows.Err())
}

// RecordKey implements Store.
func (s *SQLite) RecordKey(ctx context.Context, k Key, now time.Time) (Key, error) {
	if now.IsZero() {
		now = time.Now()
	}
	var got Key
	err := s.write(ctx, func(w *wtx) error {
		n, err := w.execN(qKeyClaim, k.Name, blob(k.Value), expiresToMS(k.Expires), toMS(now))
		if err != nil {
			return err
		}
		if n == 1 {
			got = Key{Name: k.Name, Value: cloneBytes(k.Value), Expires: truncExpires(k.Expires)}
			return nil
		}
		got, err = scanKey(w.queryRow(qKeyGet, k.Name))
		if err != nil {
			return err
		}
		return ErrDuplicate
	})
	if err != nil && !errors.Is(err, ErrDuplicate) {
		return Key{}, wrapErr("record key", err)
	}
	return got, err
}

func scanKey(r rowScanner) (Key, error) {
	var k Key
	var expires int64
	if err := r.Scan(&k.Name, &k.Value, &expires); err != nil {
		return Key{}, err
	}
	k.Value = cloneBytes(k.Value)
	k.Expires = expiresFromMS(expires)
	return k, nil
}

// LookupKey implements Store.
func (s *SQLite) LookupKey(ctx context.Context, name string, now time.Time) (Key, error) {
	if now.IsZero() {
		now = time.Now()
	}
	row, err := s.rqueryRow(ctx, qKeyLookup, name, toMS(now))
	if err != nil {
		return Key{}, wrapErr("lookup key", err)
	}
	k, err := scanKey(row)
	if errors.Is(err, sql.ErrNoRows) {
		return Key{}, ErrNotFound
	}
	return k, wrapErr("lookup key", err)
}

// AdvanceStatus implements Store.
func (s *SQLite) AdvanceStatus(ctx context.Context, st Status) (bool, error) {
	var changed bool
	err := s.write(ctx, func(w *wtx) error {
		n, err := w.execN(qStatusAdvance, st.MID, st.Value, st.Rank, time.Now().UnixMilli())
		changed = n > 0
		return err
	})
	if err != nil {
		return false, wrapErr("advance status", err)
	}
	return changed, nil
}

// StatusOf implements Store.
func (s *SQLite) StatusOf(ctx context.Context, mID string) (Status, error) {
	row, err := s.rqueryRow(ctx, qStatusGet, mID)
	if err != nil {
		return Status{}, wrapErr("status", err)
	}
	var st Status
	if err := row.Scan(&st.MID, &st.Value, &st.Rank); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Status{}, ErrNotFound
		}
		return Status{}, wrapErr("status", err)
	}
	return st, nil
}

// Put implements Store.
func (s *SQLite) Put(ctx context.Context, ns, key string, value []byte) error {
	return s.PutUntil(ctx, ns, key, value, time.Time{})
}

// PutUntil implements Store.
func (s *SQLite) PutUntil(ctx context.Context, ns, key string, value []byte, expires time.Time) error {
	return wrapErr("put", s.write(ctx, func(w *wtx) error {
		_, err := w.exec(qKVPut, ns, key, blob(value), expiresToMS(expires))
		return err
	}))
}

// Get implements Store.
func (s *SQLite) Get(ctx context.Context, ns, key string) ([]byte, error) {
	row, err := s.rqueryRow(ctx, qKVGet, ns, key, time.Now().UnixMilli())
	if err != nil {
		return nil, wrapErr("get", err)
	}
	var v []byte
	if err := row.Scan(&v); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, ErrNotFound
		}
		return nil, wrapErr("get", err)
	}
	return cloneBytes(v), nil
}

// PutMedia implements Store.
func (s *SQLite) PutMedia(ctx context.Context, m Media) error {
	return wrapErr("put media", s.write(ctx, func(w *wtx) error {
		_, err := w.exec(qMediaPut, m.ID, m.FileName, m.ContentType, m.Size, m.Path,
			toMS(m.CreatedAt), expiresToMS(m.Expires))
		return err
	}))
}

// GetMedia implements Store.
func (s *SQLite) GetMedia(ctx context.Context, id string) (Media, error) {
	row, err := s.rqueryRow(ctx, qMediaGet, id)
	if err != nil {
		return Media{}, wrapErr("get media", err)
	}
	m, err := scanMedia(row)
	if errors.Is(err, sql.ErrNoRows) {
		return Media{}, ErrNotFound
	}
	return m, wrapErr("get media", err)
}

// DeleteMedia implements Store.
func (s *SQLite) DeleteMedia(ctx context.Context, id string) error {
	return wrapErr("delete media", s.write(ctx, func(w *wtx) error {
		_, err := w.exec(qMediaDelete, id)
		return err
	}))
}

// ExpiredMedia implements Store. The result is ordered by expiry, then ID.
func (s *SQLite) ExpiredMedia(ctx context.Context, now time.Time) ([]Media, error) {
	if now.IsZero() {
		now = time.Now()
	}
	var out []Media
	err := s.write(ctx, func(w *wtx) error {
		out = nil
		rows, err := w.query(qMediaExpired, toMS(now))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			m, err := scanMedia(rows)
			if err != nil {
				return err
			}
			out = append(out, m)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, wrapErr("expired media", err)
	}
	sortMedia(out)
	return out, nil
}

// Sweep implements Store. It deletes in chunks of at most sweepChunk rows,
// each chunk a write of its own (see sweepChunk), and stops between chunks
// once ctx is done; what it deleted until then stays deleted.
func (s *SQLite) Sweep(ctx context.Context, req SweepRequest) error {
	now := req.Now
	if now.IsZero() {
		now = time.Now()
	}
	type sweep struct {
		q   string
		arg int64
	}
	sweeps := []sweep{{qSweepKeys, toMS(now)}, {qSweepKV, toMS(now)}}
	if !req.DoneBefore.IsZero() {
		sweeps = append(sweeps, sweep{qSweepJobs, toMS(req.DoneBefore)})
	}
	if !req.StatusBefore.IsZero() {
		sweeps = append(sweeps, sweep{qSweepStatus, toMS(req.StatusBefore)})
	}
	for _, sw := range sweeps {
		for {
			// write fails with ctx's error, before it hands the chunk over,
			// once ctx is done.
			var n int64
			err := s.write(ctx, func(w *wtx) (err error) {
				n, err = w.execN(sw.q, sw.arg)
				return err
			})
			if err != nil {
				return wrapErr("sweep", err)
			}
			if s.afterSweepChunk != nil {
				s.afterSweepChunk()
			}
			if n < sweepChunk {
				break
			}
		}
	}
	return nil
}
