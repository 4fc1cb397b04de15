package store

import (
	"context"
	"strings"
)

// Commits returns how many write transactions s committed, and how many
// writes ran in them.
func Commits(s *SQLite) (commits, writes int64) { return s.commits.Load(), s.writes.Load() }

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
	LeaseHeadsQuery = leaseHeadsQuery
	CountQuery      = qJobCount
	SweepJobsQuery  = qSweepJobs
	LaneNextQuery   = qLaneNext
	TokenQuery      = qJobComplete
	ReviveAllQuery  = qJobReviveAll
	JobsQuery       = jobsQuery
)

var t0 = context.Background()
