package store

import (
	"strconv"
	"strings"
)

// The queries of the SQL stores. They are written once, with '?'
// placeholders (see Rebind), in SQL that SQLite and PostgreSQL both accept:
// no INSERT OR IGNORE / REPLACE, upserts with ON CONFLICT ... DO UPDATE ...
// WHERE, RETURNING instead of LastInsertId, times as integer milliseconds
// passed in as arguments (no date functions), no LIMIT -1. (One SQLite-only
// shortcut sits behind a switch: the writer's batched INSERT learns its IDs
// from the last insert rowid, see insertIDs; RETURNING remains the portable
// way and is tested.) The statements over many rows of the writer's batches
// are in sqlite_batch.go.
//
// Queue semantics do not rely on SQLite's single writer either: every state
// change of a job is a conditional UPDATE whose WHERE repeats the state it
// expects, and the callers check the affected row count.

// jobCols is the column list scanJob reads.
const jobCols = `id, queue, channel_id, contact_id, mid, payload, state, attempts,
	created_at, next_at, lease_until, last_error`

const (
	qKeyClaim = `INSERT INTO dedupe_keys (name, value, expires) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value, expires = excluded.expires
		WHERE dedupe_keys.expires <= ?`
	qKeyGet    = `SELECT name, value, expires FROM dedupe_keys WHERE name = ?`
	qKeyLookup = `SELECT name, value, expires FROM dedupe_keys WHERE name = ? AND expires > ?`

	// qJobInsert stores a pending job; its head argument is 1 when its lane
	// has no unfinished job (qLaneBusy).
	qJobInsert = `INSERT INTO jobs (queue, channel_id, contact_id, mid, payload, state,
		attempts, created_at, updated_at, next_at, lease_until, lease_token, last_error, head)
		VALUES (?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?, 0, '', '', ?) RETURNING id`

	// qJobInsertLeased stores a job leased at once: its lane was idle.
	qJobInsertLeased = `INSERT INTO jobs (queue, channel_id, contact_id, mid, payload, state,
		attempts, created_at, updated_at, next_at, lease_until, lease_token, last_error, head)
		VALUES (?, ?, ?, ?, ?, 'leased', 1, ?, ?, ?, ?, ?, '', 1) RETURNING id`
	// qLaneBusy finds any unfinished job of a lane (jobs_lane index).
	qLaneBusy = `SELECT 1 FROM jobs WHERE queue = ? AND channel_id = ? AND contact_id = ?
		AND state IN ('pending', 'leased') LIMIT 1`

	// qJobLease takes one job if it is still ready (pending and due, or
	// leased with an expired lease).
	qJobLease = `UPDATE jobs SET state = 'leased', lease_token = ?, lease_until = ?,
		attempts = attempts + 1, updated_at = ?
		WHERE id = ? AND ((state = 'pending' AND next_at <= ?) OR (state = 'leased' AND lease_until <= ?))`
	// qJobComplete and qJobKill finish the jobs of a lease and return their
	// token and IDs; the next job of their lanes becomes the head (see
	// promoteAfter).
	qJobComplete = `UPDATE jobs SET state = 'done', head = 0, last_error = ?, updated_at = ?
		WHERE lease_token = ? AND state = 'leased' RETURNING lease_token, id`
	// qLeaseIDs are a lease's jobs, in lane order.
	qLeaseIDs = `SELECT id FROM jobs WHERE lease_token = ? AND state = 'leased' ORDER BY id`
	// qJobRelease puts a lease's jobs after id back to pending.
	qJobRelease = `UPDATE jobs SET state = 'pending', lease_until = 0, updated_at = ?
		WHERE lease_token = ? AND state = 'leased' AND id > ?`
	qJobRetry = `UPDATE jobs SET state = 'pending', next_at = ?, lease_until = 0, last_error = ?, updated_at = ?
		WHERE lease_token = ? AND state = 'leased' RETURNING id`
	// qJobToken is the token of a leased job; qTokenEnd puts the jobs of an
	// expired lease that Lease takes over back to pending (jobs_token).
	qJobToken = `SELECT lease_token FROM jobs WHERE id = ? AND state = 'leased'`
	qTokenEnd = `UPDATE jobs SET state = 'pending', lease_until = 0, updated_at = ?
		WHERE lease_token = ? AND state = 'leased'`
	// qLaneBelow is the first unfinished job of the lane of a job, if it
	// comes before that job (one revived while the lane was held): a range
	// of the jobs_lane index, however long the lane.
	qLaneBelow = `SELECT MIN(l.id) FROM jobs l, jobs d WHERE d.id = ? AND l.queue = d.queue
		AND l.channel_id = d.channel_id AND l.contact_id = d.contact_id
		AND l.state IN ('pending', 'leased') AND l.id < d.id`
	qHeadMove = `UPDATE jobs SET head = CASE WHEN id = ? THEN 0 ELSE 1 END WHERE id IN (?, ?)`
	qJobKill  = `UPDATE jobs SET state = 'dead', head = 0, last_error = ?, updated_at = ?
		WHERE lease_token = ? AND state = 'leased' RETURNING lease_token, id`
	// A revived job starts over: due now, no attempts, and its age (which
	// outbound.max_age and platform.max_age count) from now.
	qJobReviveOne = `UPDATE jobs SET state = 'pending', next_at = ?, created_at = ?, lease_until = 0, attempts = 0,
		updated_at = ? WHERE id = ? AND state = 'dead'`
	qJobReviveAll = `UPDATE jobs SET state = 'pending', next_at = ?, created_at = ?, lease_until = 0, attempts = 0,
		updated_at = ? WHERE state = 'dead'`
	qJobDropOne = `DELETE FROM jobs WHERE id = ? AND state = 'dead'`
	// qDeadIDs lists the dead jobs.
	qDeadIDs = `SELECT id FROM jobs WHERE state = 'dead'`
	// qLaneUnhead clears the head mark in the lane of a job, before
	// promoteAfter sets it again on the lane's first job (a revived job may
	// come before the head). Not for a lane whose head is leased
	// (remarkHeads).
	qLaneUnhead = `UPDATE jobs SET head = 0 WHERE head = 1 AND state IN ('pending', 'leased')
		AND (queue, channel_id, contact_id) = (SELECT queue, channel_id, contact_id FROM jobs WHERE id = ?)`
	// qLaneHeld: the lane of a job has a leased job. (The state IN term
	// lets the planner use the jobs_lane index, whose WHERE it is.)
	qLaneHeld = `SELECT EXISTS (SELECT 1 FROM jobs l, jobs d WHERE d.id = ? AND l.queue = d.queue
		AND l.channel_id = d.channel_id AND l.contact_id = d.contact_id
		AND l.state IN ('pending', 'leased') AND l.state = 'leased')`

	// qJobRecover returns a queue's leased jobs to pending. next_at stays:
	// it was due when the job was leased, so the job is due now.
	qJobRecover = `UPDATE jobs SET state = 'pending', lease_until = 0, last_error = ?, updated_at = ?
		WHERE queue = ? AND state = 'leased'`
	qJobRecoverAll = `UPDATE jobs SET state = 'pending', lease_until = 0, last_error = ?, updated_at = ?
		WHERE state = 'leased'`
	// qQueueUnhead and qQueueHeads mark the first unfinished job of every
	// lane of a queue as its head, as migration 3 first did (Recover: no
	// lane is held then, and a job revived while its lane was held may come
	// before the old head).
	qQueueUnhead = `UPDATE jobs SET head = 0 WHERE queue = ? AND head = 1 AND state IN ('pending', 'leased')`
	qQueueHeads  = `UPDATE jobs SET head = 1 WHERE id IN (
		SELECT MIN(id) FROM jobs WHERE queue = ? AND state IN ('pending', 'leased')
		GROUP BY channel_id, contact_id)`
	qAllUnhead = `UPDATE jobs SET head = 0 WHERE head = 1 AND state IN ('pending', 'leased')`
	qAllHeads  = `UPDATE jobs SET head = 1 WHERE id IN (
		SELECT MIN(id) FROM jobs WHERE state IN ('pending', 'leased')
		GROUP BY queue, channel_id, contact_id)`

	qJobGet   = `SELECT ` + jobCols + ` FROM jobs WHERE id = ?`
	qJobByMID = `SELECT ` + jobCols + ` FROM jobs WHERE queue = ? AND mid = ? ORDER BY id DESC LIMIT 1`

	qStatusAdvance = `INSERT INTO status (mid, value, rank, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (mid) DO UPDATE SET value = excluded.value, rank = excluded.rank, updated_at = excluded.updated_at
		WHERE excluded.rank > status.rank`

	qStatusGet = `SELECT mid, value, rank FROM status WHERE mid = ?`

	qKVPut = `INSERT INTO kv (ns, name, value, expires) VALUES (?, ?, ?, ?)
		ON CONFLICT (ns, name) DO UPDATE SET value = excluded.value, expires = excluded.expires`
	qKVGet = `SELECT value FROM kv WHERE ns = ? AND name = ? AND expires > ?`

	mediaCols = `id, file_name, content_type, size, path, created_at, expires`
	qMediaPut = `INSERT INTO media (` + mediaCols + `) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET file_name = excluded.file_name, content_type = excluded.content_type,
		size = excluded.size, path = excluded.path, created_at = excluded.created_at, expires = excluded.expires`
	qMediaGet     = `SELECT ` + mediaCols + ` FROM media WHERE id = ?`
	qMediaDelete  = `DELETE FROM media WHERE id = ?`
	qMediaExpired = `DELETE FROM media WHERE expires <= ? RETURNING ` + mediaCols
)

// sweepChunk is the most rows one write of Sweep deletes: Sweep deletes in
// chunks, each its own write, so that the other writes run between them
// (the first sweep after a long downtime has millions of rows to delete)
// and no transaction grows the WAL by more than a chunk. A chunk of 1000
// done jobs of ~1 KB takes a few milliseconds and adds under 1 MB to the
// WAL.
const sweepChunk = 1000

// The sweep queries delete one chunk (by primary key, through the index
// their inner WHERE uses); Sweep runs each until a chunk comes out short.
// DELETE ... WHERE key IN (SELECT key ... LIMIT n) is what SQLite (without
// SQLITE_ENABLE_UPDATE_DELETE_LIMIT) and PostgreSQL both accept.
var (
	qSweepKeys = `DELETE FROM dedupe_keys WHERE name IN (
		SELECT name FROM dedupe_keys WHERE expires <= ? LIMIT ` + strconv.Itoa(sweepChunk) + `)`
	// Every dead job, a chunk per write (as the sweep), so that a long
	// list does not hold up the other writes.
	qJobDropDead = `DELETE FROM jobs WHERE id IN (
		SELECT id FROM jobs WHERE state = 'dead' LIMIT ` + strconv.Itoa(sweepChunk) + `)`
	qSweepJobs = `DELETE FROM jobs WHERE id IN (
		SELECT id FROM jobs WHERE state = 'done' AND updated_at < ? LIMIT ` + strconv.Itoa(sweepChunk) + `)`
	// The second condition lets the partial kv_expires index serve it.
	qSweepKV = `DELETE FROM kv WHERE (ns, name) IN (
		SELECT ns, name FROM kv WHERE expires <= ? AND expires < 9223372036854775807 LIMIT ` + strconv.Itoa(sweepChunk) + `)`
	qSweepStatus = `DELETE FROM status WHERE mid IN (
		SELECT mid FROM status WHERE updated_at < ? LIMIT ` + strconv.Itoa(sweepChunk) + `)`
)

// Limits of the writer's queries are literals rounded up to a power of two
// (the caller reads no more rows than it wants): SQLite plans with a bound
// LIMIT's value, so binding another value each time re-prepares the
// statement on every run.
func limitBucket(n int) string { return strconv.Itoa(roundUpPow2(n)) }

// roundUpPow2 is the smallest power of two not below n (1 for n <= 1), at
// most maxLimitBucket: a larger LIMIT is no limit to these queries, and
// doubling on towards a huge n (math.MaxInt for "no limit") would overflow
// and spin for ever inside the writer's open transaction.
func roundUpPow2(n int) int {
	b := 1
	for b < n && b < maxLimitBucket {
		b *= 2
	}
	return b
}

const maxLimitBucket = 1 << 30

// laneNextQuery lists up to limit (rounded up) active jobs of a lane after
// an id (0: from its first), in order. Arguments: queue, channel, contact,
// id.
func laneNextQuery(limit int) string {
	return `SELECT ` + jobCols + ` FROM jobs
		WHERE queue = ? AND channel_id = ? AND contact_id = ? AND state IN ('pending', 'leased') AND id > ?
		ORDER BY id LIMIT ` + limitBucket(limit)
}

// readyKind is one of the three kinds of ready lane heads.
type readyKind int

const (
	readyNew     readyKind = iota // pending, due since enqueued (next_at 0): by ID
	readyRetry                    // pending with a next_at that has come: by next_at
	readyExpired                  // leased with a lease that ran out: by lease_until
)

// readyHeadsQuery lists up to limit (rounded up) ready lane heads of a
// kind, each kind walking its index (jobs_ready, or jobs_expiring) in
// order. Arguments: queue, [channel], now (not for readyNew).
func readyHeadsQuery(kind readyKind, byChannel bool, limit int) string {
	where := []string{`head = 1`}
	switch kind {
	case readyExpired:
		where = append(where, `state = 'leased'`)
	default:
		where = append(where, `state = 'pending'`)
	}
	where = append(where, `queue = ?`)
	if byChannel {
		where = append(where, `channel_id = ?`)
	}
	order := `id`
	switch kind {
	case readyNew:
		where = append(where, `next_at = 0`)
	case readyRetry:
		where, order = append(where, `next_at > 0 AND next_at <= ?`), `next_at, id`
	case readyExpired:
		where, order = append(where, `lease_until <= ?`), `lease_until, id`
	}
	return `SELECT ` + jobCols + ` FROM jobs WHERE ` + strings.Join(where, ` AND `) +
		` ORDER BY ` + order + ` LIMIT ` + limitBucket(limit)
}

// countQuery counts the jobs of the states in want (a set of valid
// states), each part on its own partial index, done jobs only when asked.
func countQuery(want map[State]int) string {
	var parts []string
	_, p := want[Pending]
	_, l := want[Leased]
	if p || l {
		parts = append(parts, `SELECT state, COUNT(*) FROM jobs WHERE state IN ('pending', 'leased') GROUP BY state`)
	}
	for _, st := range []State{Done, Dead} {
		if _, ok := want[st]; ok {
			parts = append(parts, `SELECT '`+string(st)+`', COUNT(*) FROM jobs WHERE state = '`+string(st)+`'`)
		}
	}
	return strings.Join(parts, ` UNION ALL `)
}

// jobsQuery lists jobs for a filter, oldest first, and its arguments.
func jobsQuery(f JobFilter) (string, []any) {
	var where []string
	var args []any
	if f.Queue != "" {
		where = append(where, `queue = ?`)
		args = append(args, string(f.Queue))
	}
	switch f.State {
	case "":
	case Pending, Leased, Done, Dead:
		// A literal, so that the partial indexes on state apply.
		where = append(where, `state = '`+string(f.State)+`'`)
	default:
		where = append(where, `state = ?`)
		args = append(args, string(f.State))
	}
	if f.ChannelID != "" {
		where = append(where, `channel_id = ?`)
		args = append(args, f.ChannelID)
	}
	q := `SELECT ` + jobCols + ` FROM jobs`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, ` AND `)
	}
	q += ` ORDER BY id`
	if f.Limit > 0 {
		q += ` LIMIT ?`
		args = append(args, f.Limit)
	}
	return q, args
}

func prefixCols(prefix, cols string) string {
	parts := strings.Split(cols, ",")
	for i, p := range parts {
		parts[i] = prefix + strings.TrimSpace(p)
	}
	return strings.Join(parts, ", ")
}
