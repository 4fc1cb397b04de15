package store

import (
	"context"
	"strconv"
	"strings"
)

// Commits returns how many write transactions s committed, and how many
// writes ran in them.
func Commits(s *SQLite) (commits, writes int64) { return s.commits.Load(), s.writes.Load() }

// Isolated returns how many batches of s ran again with a savepoint per
// write because a write failed inside SQLite.
func Isolated(s *SQLite) int64 { return s.isolated.Load() }

// SetReturningIDs makes the batched inserts of s learn their IDs with
// RETURNING instead of SQLite's last insert rowid. Call it before any write.
func SetReturningIDs(s *SQLite, on bool) { s.returningIDs = on }

// FailingWrite is a write that fails inside SQLite (a NOT NULL constraint)
// after it stored a row, in whatever batch it lands: the writer must undo
// it alone.
func FailingWrite(s *SQLite) error {
	return s.write(t0, func(w *wtx) error {
		if _, err := w.exec(qKVPut, "failing-write", "k", []byte("v")); err != nil {
			return err
		}
		_, err := w.exec(`INSERT INTO kv (ns, name, value) VALUES ('failing-write', 'k2', NULL)`)
		return err
	})
}

// FailCommit makes every COMMIT of s fail with fn's error while fn returns
// one (the batch is rolled back instead). Call it before any write.
func FailCommit(s *SQLite, fn func() error) { s.failCommit = fn }

// AfterSweepChunk makes Sweep of s call fn after each chunk it deleted.
// Call it before any Sweep.
func AfterSweepChunk(s *SQLite, fn func()) { s.afterSweepChunk = fn }

// SetJournalSizeLimit sets journal_size_limit (bytes) on the writer
// connection of s.
func SetJournalSizeLimit(s *SQLite, n int) error {
	return s.write(t0, func(w *wtx) error {
		_, err := w.exec(`PRAGMA journal_size_limit = ` + strconv.Itoa(n))
		return err
	})
}

// WriterPragma reads a PRAGMA on the writer connection.
func WriterPragma(s *SQLite, name string) (v string, err error) {
	err = s.write(t0, func(w *wtx) error { return w.queryRow(`PRAGMA ` + name).Scan(&v) })
	return v, err
}

// Plan is the query plan of a query on the read pool.
func Plan(s *SQLite, query string, args ...any) (string, error) {
	rows, err := s.rdb.Query(`EXPLAIN QUERY PLAN `+query, args...)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			return "", err
		}
		out = append(out, detail)
	}
	return strings.Join(out, "\n"), rows.Err()
}

// The queries whose plans the tests check.
var (
	ReadyHeadsQuery = func(kind int, byChannel bool) string {
		return readyHeadsQuery(readyKind(kind), byChannel, 1)
	}
	PromoteQuery     = qPromoteAfter(2)
	UnheadQuery      = qLaneUnhead
	LaneHeldQuery    = qLaneHeld
	CountQuery       = func(states ...State) string { m, _ := countMap(states); return countQuery(m) }
	SweepJobsQuery   = qSweepJobs
	SweepKeysQuery   = qSweepKeys
	SweepKVQuery     = qSweepKV
	SweepStatusQuery = qSweepStatus
	LaneNextQuery    = laneNextQuery(5)
	TokenQuery       = qJobComplete
	ReviveAllQuery   = qJobReviveAll
	JobsQuery        = jobsQuery
)

var t0 = context.Background()
