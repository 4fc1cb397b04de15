package store_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bonychat/bonychat-adapter/store"
)

// doneJobPayload is about the size of a platform event.
var doneJobPayload = []byte(`{"x":"` + strings.Repeat("a", 1000) + `"}`)

// fillDoneJobs adds n jobs done an hour ago to the database at path (in
// transactions of its own, beside the store), then checkpoints and
// truncates the WAL, so that the WAL holds only what comes next.
func fillDoneJobs(t *testing.T, db *sql.DB, n int) {
	t.Helper()
	fillJobs(t, db, n, store.Done)
}

// fillJobs is fillDoneJobs for jobs in any finished state.
func fillJobs(t *testing.T, db *sql.DB, n int, state store.State) {
	t.Helper()
	done := time.Now().Add(-time.Hour).UnixMilli()
	for added := 0; added < n; {
		k := min(5000, n-added)
		if _, err := db.Exec(`INSERT INTO jobs (queue, channel_id, contact_id, mid, payload, state, attempts,
				created_at, updated_at, next_at, lease_until, lease_token, last_error, head)
			WITH RECURSIVE c(i) AS (SELECT ? UNION ALL SELECT i + 1 FROM c WHERE i < ?)
			SELECT 'platform', 'demo', 'c' || (i % 1000), 'm' || i, ?, ?, 1, ?, ?, 0, 0, '', '', 0 FROM c`,
			added, added+k-1, doneJobPayload, string(state), done, done); err != nil {
			t.Fatal(err)
		}
		added += k
	}
	var busy, logFrames, checkpointed int
	if err := db.QueryRow(`PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &logFrames, &checkpointed); err != nil || busy != 0 {
		t.Fatalf("wal_checkpoint(TRUNCATE): busy %d, %v", busy, err)
	}
}

func walSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// countDone counts the done jobs.
func countDone(t *testing.T, s store.Store) int {
	t.Helper()
	counts, err := s.Count(ctx, store.Done)
	if err != nil {
		t.Fatal(err)
	}
	return counts[store.Done]
}

// TestSQLiteWALIsCutBackAfterABurst: a sweep while a long read (the jobs
// CLI, a backup) keeps the log from restarting grows the -wal file past
// journal_size_limit; once the read ends, the next writes cut it back to
// the limit rather than keep the burst's size for good. (The limit is set
// small here, so that a small burst shows it; the store's is 16 MiB.)
func TestSQLiteWALIsCutBackAfterABurst(t *testing.T) {
	const n, limit = 5000, 1 << 20 // ~5 MB of done jobs
	path := filepath.Join(t.TempDir(), "adapter.db")
	s := openSQLite(t, path)
	defer s.Close()
	if err := store.SetJournalSizeLimit(s, limit); err != nil {
		t.Fatal(err)
	}
	db := rawDB(t, path)
	fillDoneJobs(t, db, n)
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	var jobs int
	if err := tx.QueryRow(`SELECT COUNT(*) FROM jobs`).Scan(&jobs); err != nil {
		t.Fatal(err)
	}
	if err := s.Sweep(ctx, store.SweepRequest{Now: time.Now(), DoneBefore: time.Now()}); err != nil {
		t.Fatal(err)
	}
	burst := walSize(t, path)
	if burst <= limit+2<<20 {
		t.Fatalf("the WAL grew to %.1f MiB during the read; the test needs a burst well above the limit", float64(burst)/(1<<20))
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	// A write (that changes something) after the log was checkpointed to
	// its end, with no reader in it, restarts the log and cuts the file.
	for i := range 20 {
		if err := s.Put(ctx, "after", fmt.Sprint(i), doneJobPayload); err != nil {
			t.Fatal(err)
		}
	}
	if got := walSize(t, path); got > limit+1<<20 {
		t.Errorf("WAL is %.1f MiB after the read ended and later writes (%.1f MiB during it); want at most the limit and 1 MiB",
			float64(got)/(1<<20), float64(burst)/(1<<20))
	}
	if left := countDone(t, s); left != 0 {
		t.Errorf("%d done jobs left after the sweep", left)
	}
}

// TestSQLiteWritesRunBetweenSweepChunks: a sweep of many rows does not hold
// the single writer until it is done: a write submitted while it runs
// completes between its chunks.
func TestSQLiteWritesRunBetweenSweepChunks(t *testing.T) {
	const n = 3000 // three chunks
	path := filepath.Join(t.TempDir(), "adapter.db")
	s := openSQLite(t, path)
	defer s.Close()
	fillDoneJobs(t, rawDB(t, path), n)

	// After its first chunk of done jobs, the sweep (paused in the hook, so
	// that the order does not depend on timing) waits for an Enqueue
	// submitted then, a minute at most, to fail rather than hang: were the
	// writer still the sweep's, the Enqueue could not complete before the
	// sweep returned.
	var chunks, enqueued, leftAtEnqueue atomic.Int64
	var enqueueErr atomic.Value
	store.AfterSweepChunk(s, func() {
		chunks.Add(1)
		if enqueued.Load() != 0 || enqueueErr.Load() != nil || countDone(t, s) == n {
			return // after the Enqueue, or before the done jobs (keys and records come first)
		}
		done := make(chan error, 1)
		go func() {
			_, err := s.Enqueue(ctx, []store.NewJob{{Queue: store.Outbound, ChannelID: "ch", ContactID: "c", MID: "during"}}, nil)
			done <- err
		}()
		select {
		case err := <-done:
			if err != nil {
				enqueueErr.Store(err)
				return
			}
			enqueued.Store(1)
			leftAtEnqueue.Store(int64(countDone(t, s)))
		case <-time.After(time.Minute):
		}
	})
	if err := s.Sweep(ctx, store.SweepRequest{Now: time.Now(), DoneBefore: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err, _ := enqueueErr.Load().(error); err != nil {
		t.Fatalf("Enqueue during the sweep: %v", err)
	}
	if enqueued.Load() != 1 {
		t.Fatalf("an Enqueue submitted during the sweep did not complete between two chunks (%d chunks)", chunks.Load())
	}
	if left := leftAtEnqueue.Load(); left == 0 || left >= n {
		t.Errorf("%d of %d done jobs were left when the Enqueue completed; want some deleted and some not yet", left, n)
	}
	if left := countDone(t, s); left != 0 {
		t.Errorf("%d done jobs left after the sweep", left)
	}
	if j, err := s.JobByMID(ctx, store.Outbound, "during"); err != nil || j.State != store.Pending {
		t.Errorf("the job enqueued during the sweep: %+v, %v", j, err)
	}
	t.Logf("the sweep deleted %d done jobs in %d chunks", n, chunks.Load())
}

// TestSQLiteSweepStopsBetweenChunksWhenCanceled: a sweep whose context is
// done stops before its next chunk; what it deleted stays deleted.
func TestSQLiteSweepStopsBetweenChunksWhenCanceled(t *testing.T) {
	const n = 3000
	path := filepath.Join(t.TempDir(), "adapter.db")
	s := openSQLite(t, path)
	defer s.Close()
	fillDoneJobs(t, rawDB(t, path), n)
	c, cancel := context.WithCancel(ctx)
	defer cancel()
	store.AfterSweepChunk(s, func() {
		if countDone(t, s) < n {
			cancel()
		}
	})
	if err := s.Sweep(c, store.SweepRequest{Now: time.Now(), DoneBefore: time.Now()}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sweep canceled after a chunk: %v, want context.Canceled", err)
	}
	if left := countDone(t, s); left != n-1000 {
		t.Errorf("%d of %d done jobs left after a canceled sweep; want all but one chunk of 1000", left, n)
	}
}

// TestSQLiteDropOfEveryDeadJobGoesOnPastOneChunk: Drop(nil) deletes dead
// jobs a chunk per write, and keeps going until none is left.
func TestSQLiteDropOfEveryDeadJobGoesOnPastOneChunk(t *testing.T) {
	const n = 2500 // two full chunks and a part
	path := filepath.Join(t.TempDir(), "adapter.db")
	s := openSQLite(t, path)
	defer s.Close()
	fillJobs(t, rawDB(t, path), n, store.Dead)
	fillJobs(t, rawDB(t, path), 10, store.Done)
	got, err := s.Drop(ctx, nil)
	if err != nil || got != n {
		t.Fatalf("Drop(nil) = %d, %v; want %d", got, err, n)
	}
	counts, err := s.Count(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if counts[store.Dead] != 0 || counts[store.Done] != 10 {
		t.Errorf("after Drop(nil): %v; want no dead job and the 10 done ones", counts)
	}
}
