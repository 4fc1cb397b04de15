package store

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Statement batching: the writes of the hot path (EnqueueLeased without
// keys, Complete) that share a writer batch run as one statement per kind
// (completions: one UPDATE, and one more that marks the next job of their
// lanes as head) instead of one or two per write (plus a SAVEPOINT and a
// RELEASE). In the pure-Go SQLite a statement costs several times the CPU
// of the row it changes, and the single writer is the bottleneck.

// maxRowsPerStatement caps the rows (or values) of one batched statement; a
// larger group runs as several statements. Statements are prepared once per
// size (up to this many of each kind) and kept.
const maxRowsPerStatement = 32

// sizedKey names a prepared statement over n rows or values.
type sizedKey struct {
	kind int
	n    int
}

const (
	sizedComplete = iota
	sizedPromote
	sizedLaneBusy
	sizedInsert
	sizedInsertReturning
)

// sized returns the prepared statement of kind over n rows, building its
// text with build(n) the first time.
func (w *wtx) sized(kind, n int, build func(n int) string) (*sql.Stmt, error) {
	k := sizedKey{kind, n}
	if st, ok := w.s.wsized[k]; ok {
		return st, nil
	}
	st, err := w.s.wconn.PrepareContext(context.Background(), Rebind(BindQuestion, build(n)))
	if err != nil {
		return nil, err
	}
	w.s.wsized[k] = st
	return st, nil
}

// repeatJoin is n copies of s separated by ", ".
func repeatJoin(s string, n int) string {
	return strings.TrimSuffix(strings.Repeat(s+", ", n), ", ")
}

// --- Complete ---

type completeOp struct {
	token     string
	lastError string
}

// qCompleteMany completes every job leased with one of n tokens and returns
// the token and the ID of each.
func qCompleteMany(n int) string {
	return `UPDATE jobs SET state = 'done', head = 0, last_error = ?, updated_at = ?
		WHERE state = 'leased' AND lease_token IN (` + repeatJoin("?", n) + `)
		RETURNING lease_token, id`
}

// completeAll runs the Complete writes batch[idx] as one UPDATE per
// lastError (in chunks), then moves the head mark of their lanes on. A
// write whose token matched nothing, or whose token an earlier write of the
// batch already completed, gets ErrLeaseLost, as it would have one after
// the other.
func (w *wtx) completeAll(batch []*writeOp, idx []int, errs []error) error {
	touched := time.Now().UnixMilli()
	matched := map[string]bool{}
	var done []int64
	for len(idx) > 0 {
		// The writes with the same lastError as the first one left.
		lastError := batch[idx[0]].complete.lastError
		var group, rest []int
		var tokens []string // distinct
		seen := map[string]bool{}
		for _, i := range idx {
			c := batch[i].complete
			if c.lastError != lastError {
				rest = append(rest, i)
				continue
			}
			group = append(group, i)
			if !seen[c.token] {
				seen[c.token] = true
				tokens = append(tokens, c.token)
			}
		}
		idx = rest
		got, err := w.completeTokens(tokens, lastError, touched, matched)
		if err != nil {
			return err
		}
		done = append(done, got...)
		for _, i := range group {
			t := batch[i].complete.token
			if matched[t] {
				errs[i] = nil
				delete(matched, t) // a second Complete of it finds it done
			} else {
				errs[i] = ErrLeaseLost
			}
		}
	}
	return w.promoteAfter(done)
}

// completeTokens completes the jobs of tokens, adds the tokens that matched
// to matched and returns the IDs of the completed jobs.
func (w *wtx) completeTokens(tokens []string, lastError string, touched int64, matched map[string]bool) ([]int64, error) {
	var ids []int64
	for len(tokens) > 0 {
		chunk := tokens[:min(len(tokens), maxRowsPerStatement)]
		tokens = tokens[len(chunk):]
		// Pad to a power of two with the last token, so that few
		// statements cover every size.
		n := roundUpPow2(len(chunk))
		args := make([]any, 0, 2+n)
		args = append(args, lastError, touched)
		for i := range n {
			args = append(args, chunk[min(i, len(chunk)-1)])
		}
		st, err := w.sized(sizedComplete, n, qCompleteMany)
		if err != nil {
			return nil, err
		}
		rows, err := st.QueryContext(context.Background(), args...)
		if err != nil {
			return nil, err
		}
		got, err := scanTokenIDs(rows, matched)
		if err != nil {
			return nil, err
		}
		ids = append(ids, got...)
	}
	return ids, nil
}

// scanTokenIDs reads rows of (token, id), adds the tokens to matched and
// returns the IDs.
func scanTokenIDs(rows *sql.Rows, matched map[string]bool) ([]int64, error) {
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var t string
		var id int64
		if err := rows.Scan(&t, &id); err != nil {
			return nil, err
		}
		matched[t] = true
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// qPromoteAfter marks the first unfinished job of the lanes of n jobs as
// its lane's head.
func qPromoteAfter(n int) string {
	return `UPDATE jobs SET head = 1 WHERE head = 0 AND id IN (
		SELECT (SELECT MIN(j.id) FROM jobs j WHERE j.queue = d.queue AND j.channel_id = d.channel_id
			AND j.contact_id = d.contact_id AND j.state IN ('pending', 'leased'))
		FROM jobs d WHERE d.id IN (` + repeatJoin("?", n) + `))`
}

// promoteAfter marks the first unfinished job of the lanes of jobs ids as
// its lane's head: after they finished (or were revived, once qLaneUnhead
// cleared the old mark).
func (w *wtx) promoteAfter(ids []int64) error {
	for len(ids) > 0 {
		chunk := ids[:min(len(ids), maxRowsPerStatement)]
		ids = ids[len(chunk):]
		n := roundUpPow2(len(chunk)) // padded with the last ID, as in completeTokens
		st, err := w.sized(sizedPromote, n, qPromoteAfter)
		if err != nil {
			return err
		}
		args := make([]any, n)
		for i := range n {
			args[i] = chunk[min(i, len(chunk)-1)]
		}
		if _, err := st.ExecContext(context.Background(), args...); err != nil {
			return err
		}
	}
	return nil
}

// --- EnqueueLeased ---

type enqueueOp struct {
	job      NewJob
	now      time.Time
	leaseFor time.Duration
	// results
	id    int64
	lease *Lease
}

// qLanesBusy returns the k of each of n lanes (k, queue, channel, contact)
// that has an unfinished job (jobs_lane index).
func qLanesBusy(n int) string {
	return `WITH v (k, queue, channel_id, contact_id) AS (VALUES ` + repeatJoin("(?, ?, ?, ?)", n) + `)
		SELECT k FROM v WHERE EXISTS (SELECT 1 FROM jobs j
			WHERE j.queue = v.queue AND j.channel_id = v.channel_id AND j.contact_id = v.contact_id
			AND j.state IN ('pending', 'leased'))`
}

// qJobInsertMany inserts n jobs.
func qJobInsertMany(n int) string {
	return `INSERT INTO jobs (queue, channel_id, contact_id, mid, payload, state,
		attempts, created_at, updated_at, next_at, lease_until, lease_token, last_error, head)
		VALUES ` + repeatJoin("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '', ?)", n)
}

// qJobInsertManyReturning inserts n jobs and returns their IDs.
func qJobInsertManyReturning(n int) string { return qJobInsertMany(n) + ` RETURNING id` }

// enqueueAll runs the EnqueueLeased writes batch[idx] (without keys) as if
// one after the other in that order: one query finds which of their lanes
// are busy, then each job is leased if its lane is idle (and stays busy for
// the later jobs of the batch) and due, and one INSERT stores them all.
func (w *wtx) enqueueAll(batch []*writeOp, idx []int) error {
	busy := map[lane]bool{}
	var lanes []lane
	for _, i := range idx {
		e := batch[i].enqueue
		l := lane{e.job.Queue, e.job.ChannelID, e.job.ContactID}
		if _, ok := busy[l]; !ok {
			busy[l] = false
			lanes = append(lanes, l)
		}
	}
	for len(lanes) > 0 {
		chunk := lanes[:min(len(lanes), maxRowsPerStatement)]
		lanes = lanes[len(chunk):]
		st, err := w.sized(sizedLaneBusy, len(chunk), qLanesBusy)
		if err != nil {
			return err
		}
		args := make([]any, 0, 4*len(chunk))
		for k, l := range chunk {
			args = append(args, k, string(l.queue), l.channel, l.contact)
		}
		rows, err := st.QueryContext(context.Background(), args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			var k int
			if err := rows.Scan(&k); err != nil {
				rows.Close()
				return err
			}
			if k < 0 || k >= len(chunk) {
				rows.Close()
				return fmt.Errorf("lane check: row %d of %d", k, len(chunk))
			}
			busy[chunk[k]] = true
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if err := rows.Err(); err != nil {
			return err
		}
	}

	created := time.Now().UnixMilli()
	for len(idx) > 0 {
		chunk := idx[:min(len(idx), maxRowsPerStatement)]
		idx = idx[len(chunk):]
		var st *sql.Stmt
		var err error
		if w.s.returningIDs {
			st, err = w.sized(sizedInsertReturning, len(chunk), qJobInsertManyReturning)
		} else {
			st, err = w.sized(sizedInsert, len(chunk), qJobInsertMany)
		}
		if err != nil {
			return err
		}
		args := make([]any, 0, 13*len(chunk))
		for _, i := range chunk {
			e := batch[i].enqueue
			e.id, e.lease = 0, nil
			j := e.job
			l := lane{j.Queue, j.ChannelID, j.ContactID}
			next := dueMS(j.NotBefore)
			head := headMark(!busy[l])
			if busy[l] || next > toMS(e.now) {
				busy[l] = true
				args = append(args, string(j.Queue), j.ChannelID, j.ContactID, j.MID, blob(j.Payload),
					string(Pending), 0, created, created, next, int64(0), "", head)
				continue
			}
			busy[l] = true
			until := toMS(e.now.Add(e.leaseFor))
			token := newToken()
			args = append(args, string(j.Queue), j.ChannelID, j.ContactID, j.MID, blob(j.Payload),
				string(Leased), 1, created, created, next, until, token, head)
			e.lease = &Lease{Token: token, Jobs: []Job{{Queue: j.Queue, ChannelID: j.ChannelID, ContactID: j.ContactID,
				MID: j.MID, Payload: cloneBytes(j.Payload), State: Leased, Attempts: 1, CreatedAt: fromMS(created),
				NextAt: fromMS(next), LeaseUntil: fromMS(until)}}}
		}
		ids, err := w.insertIDs(st, len(chunk), args)
		if err != nil {
			return err
		}
		for k, i := range chunk {
			e := batch[i].enqueue
			e.id = ids[k]
			if e.lease != nil {
				e.lease.Jobs[0].ID = ids[k]
			}
		}
	}
	return nil
}

// insertIDs runs st, which inserts n jobs, and returns their IDs in VALUES
// order.
func (w *wtx) insertIDs(st *sql.Stmt, n int, args []any) ([]int64, error) {
	if !w.s.returningIDs {
		// SQLite: one INSERT gives its rows consecutive rowids in VALUES
		// order (AUTOINCREMENT: each is one above the largest so far), and
		// the last one is the connection's last insert rowid. Cheaper than
		// RETURNING, which collects the rows in a temporary table.
		res, err := st.ExecContext(context.Background(), args...)
		if err != nil {
			return nil, err
		}
		got, err := res.RowsAffected()
		if err != nil {
			return nil, err
		}
		last, err := res.LastInsertId()
		if err != nil {
			return nil, err
		}
		if got != int64(n) {
			return nil, fmt.Errorf("insert of %d jobs stored %d", n, got)
		}
		ids := make([]int64, n)
		for k := range ids {
			ids[k] = last - int64(n-1-k)
		}
		return ids, nil
	}
	rows, err := st.QueryContext(context.Background(), args...)
	if err != nil {
		return nil, err
	}
	ids := make([]int64, 0, n)
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, err
		}
		ids = append(ids, id)
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(ids) != n {
		return nil, fmt.Errorf("insert of %d jobs returned %d IDs", n, len(ids))
	}
	// RETURNING gives no order, but the rows got increasing IDs in VALUES
	// order (AUTOINCREMENT: each new id is above every id before it).
	slices.Sort(ids)
	return ids, nil
}
