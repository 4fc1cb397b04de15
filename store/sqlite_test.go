package store_test

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bonychat/bonychat-adapter/store"
	"github.com/bonychat/bonychat-adapter/store/storetest"
)

var ctx = context.Background()

func openSQLite(t testing.TB, path string) *store.SQLite {
	t.Helper()
	s, err := store.OpenSQLite(path)
	if err != nil {
		t.Fatalf("OpenSQLite: %v", err)
	}
	return s
}

func TestSQLite(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		path := filepath.Join(t.TempDir(), "adapter.db")
		t.Cleanup(func() { checkHeadMarks(t, path) }) // runs after the suite closed the store
		return openSQLite(t, path)
	})
}

// qBadHeadMarks finds the jobs whose head mark is wrong: an unfinished job
// must be marked exactly when it is the first unfinished job of its lane,
// a finished one never.
const qBadHeadMarks = `SELECT id, state, head FROM jobs j WHERE state IN ('pending', 'leased') AND head <>
		CASE WHEN id = (SELECT MIN(k.id) FROM jobs k WHERE k.queue = j.queue AND k.channel_id = j.channel_id
			AND k.contact_id = j.contact_id AND k.state IN ('pending', 'leased')) THEN 1 ELSE 0 END
	UNION ALL SELECT id, state, head FROM jobs WHERE state IN ('done', 'dead') AND head <> 0`

// checkHeadMarks fails t if a job of the database at path has a wrong head
// mark (Lease would start a lane with the wrong job, or not at all).
func checkHeadMarks(t *testing.T, path string) {
	t.Helper()
	rows, err := rawDB(t, path).Query(qBadHeadMarks)
	if err != nil {
		t.Fatalf("check head marks: %v", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, head int64
		var state string
		if err := rows.Scan(&id, &state, &head); err != nil {
			t.Fatal(err)
		}
		t.Errorf("job %d (%s) has head mark %d", id, state, head)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
}

func TestSQLiteCreatesFolderAndUsesWAL(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "odd ?#% name", "adapter.db")
	s := openSQLite(t, path)
	defer s.Close()
	if _, err := s.Enqueue(ctx, []store.NewJob{{Queue: store.Outbound, ChannelID: "ch", ContactID: "c"}}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database file: %v", err)
	}
	db := rawDB(t, path)
	var jobs int
	if err := db.QueryRow(`SELECT COUNT(*) FROM jobs`).Scan(&jobs); err != nil || jobs != 1 {
		t.Fatalf("jobs in %s: %d, %v", path, jobs, err)
	}
	var mode string
	if err := db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal_mode %q, %v; want wal", mode, err)
	}
}

func TestSQLiteReopenPersists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "adapter.db")
	now := time.Now().UTC().Truncate(time.Millisecond)
	s := openSQLite(t, path)
	ids, err := s.Enqueue(ctx, []store.NewJob{
		{Queue: store.Outbound, ChannelID: "ch", ContactID: "c", MID: "m1", Payload: []byte(`{"a":1}`)},
		{Queue: store.Outbound, ChannelID: "ch", ContactID: "c", MID: "m2", Payload: []byte(`{"a":2}`)},
	}, []store.Key{{Name: "idem", Value: []byte("m1"), Expires: now.Add(time.Hour)}})
	if err != nil {
		t.Fatal(err)
	}
	ls, err := s.Lease(ctx, store.LeaseRequest{Queue: store.Outbound, Now: now, For: time.Minute, Lanes: 1, PerLane: 1})
	if err != nil || len(ls) != 1 {
		t.Fatalf("Lease: %v %v", ls, err)
	}
	if err := s.Put(ctx, "ns", "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AdvanceStatus(ctx, store.Status{MID: "m1", Value: "sent", Rank: 1}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "ns", "k", nil); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Put after Close: %v, want ErrClosed", err)
	}

	s = openSQLite(t, path)
	defer s.Close()
	j, err := s.Job(ctx, ids[0])
	if err != nil || j.State != store.Leased || j.Attempts != 1 || string(j.Payload) != `{"a":1}` ||
		!j.LeaseUntil.Equal(now.Add(time.Minute)) {
		t.Fatalf("job 1 after reopen: %+v, %v", j, err)
	}
	if j, err := s.Job(ctx, ids[1]); err != nil || j.State != store.Pending || j.MID != "m2" {
		t.Fatalf("job 2 after reopen: %+v, %v", j, err)
	}
	if k, err := s.LookupKey(ctx, "idem", now); err != nil || string(k.Value) != "m1" {
		t.Fatalf("key after reopen: %+v, %v", k, err)
	}
	if _, err := s.Enqueue(ctx, nil, []store.Key{{Name: "idem", Expires: now.Add(time.Hour)}}); !errors.Is(err, store.ErrDuplicate) {
		t.Fatalf("key reuse after reopen: %v", err)
	}
	if v, err := s.Get(ctx, "ns", "k"); err != nil || string(v) != "v" {
		t.Fatalf("Get after reopen: %q, %v", v, err)
	}
	if st, err := s.StatusOf(ctx, "m1"); err != nil || st.Rank != 1 {
		t.Fatalf("status after reopen: %+v, %v", st, err)
	}
	// The lease survived: the holder can still complete it, then job 2 runs.
	if err := s.Complete(ctx, ls[0].Token, ""); err != nil {
		t.Fatalf("Complete after reopen: %v", err)
	}
	ls, err = s.Lease(ctx, store.LeaseRequest{Queue: store.Outbound, Now: now, For: time.Minute, Lanes: 1, PerLane: 1})
	if err != nil || len(ls) != 1 || ls[0].Jobs[0].ID != ids[1] {
		t.Fatalf("Lease after reopen: %+v, %v", ls, err)
	}
	// New IDs keep growing.
	more, err := s.Enqueue(ctx, []store.NewJob{{Queue: store.Outbound, ChannelID: "ch", ContactID: "c"}}, nil)
	if err != nil || more[0] <= ids[1] {
		t.Fatalf("Enqueue after reopen: %v, %v", more, err)
	}
}

func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	uri := "file:" + strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(filepath.ToSlash(path))
	db, err := sql.Open("sqlite", uri+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// A store a newer version has upgraded is refused, by the server and the
// CLI alike, and left as it is: an older program would write the old way
// into it (README, "Upgrading").
func TestSQLiteRefusesAStoreANewerVersionUpgraded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "adapter.db")
	if err := openSQLite(t, path).Close(); err != nil {
		t.Fatal(err)
	}
	db := rawDB(t, path)
	if _, err := db.Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, 'future', 0)`); err != nil {
		t.Fatal(err)
	}
	for name, open := range map[string]func(string) (store.Store, error){
		"server": func(p string) (store.Store, error) { return store.OpenSQLite(p) },
		"CLI":    func(p string) (store.Store, error) { return store.OpenExisting("sqlite:" + p) },
	} {
		s, err := open(path)
		if err == nil {
			s.Close()
			t.Fatalf("%s: a store at schema version 9999 was opened", name)
		}
		if !strings.Contains(err.Error(), "database schema version 9999 is newer than this program knows") {
			t.Errorf("%s: error %q does not say the store is newer", name, err)
		}
	}
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM schema_migrations WHERE version = 9999`).Scan(&n); err != nil || n != 1 {
		t.Errorf("the newer version's row: %d, %v; want it kept", n, err)
	}
}

func TestSQLiteMigrationsIdempotent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "adapter.db")
	files, err := filepath.Glob("migrations/*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("migrations: %v %v", files, err)
	}
	for range 3 {
		s := openSQLite(t, path)
		if _, err := s.Enqueue(ctx, []store.NewJob{{Queue: store.Platform, ChannelID: "ch", ContactID: "c"}}, nil); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	db := rawDB(t, path)
	var n, maxV int
	if err := db.QueryRow(`SELECT COUNT(*), MAX(version) FROM schema_migrations`).Scan(&n, &maxV); err != nil {
		t.Fatal(err)
	}
	if n != len(files) {
		t.Fatalf("schema_migrations has %d rows for %d migrations", n, len(files))
	}
	want, _ := strconv.Atoi(strings.SplitN(filepath.Base(files[len(files)-1]), "_", 2)[0])
	if maxV != want {
		t.Fatalf("schema version %d, want %d", maxV, want)
	}
	var jobs int
	if err := db.QueryRow(`SELECT COUNT(*) FROM jobs`).Scan(&jobs); err != nil || jobs != 3 {
		t.Fatalf("jobs %d, %v; want 3", jobs, err)
	}
	// A schema from a newer program is refused, not downgraded.
	if _, err := db.Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, 'future', 0)`); err != nil {
		t.Fatal(err)
	}
	if s, err := store.OpenSQLite(path); err == nil {
		s.Close()
		t.Fatal("OpenSQLite accepted a newer schema")
	}
}

// TestSQLiteUpgradeKeepsRecordsAndStatuses: a database at schema version 1
// (before records and statuses could expire) is upgraded in place; its
// records never expire and its statuses count as updated at the upgrade.
func TestSQLiteUpgradeKeepsRecordsAndStatuses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "adapter.db")
	v1, err := os.ReadFile("migrations/0001_init.sql")
	if err != nil {
		t.Fatal(err)
	}
	db := rawDB(t, path)
	for _, q := range []string{
		`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`,
		string(v1),
		`INSERT INTO schema_migrations VALUES (1, '0001_init', 0)`,
		`INSERT INTO kv (ns, name, value) VALUES ('mailgun-contact', 'x', 'jane@example.com')`,
		`INSERT INTO status (mid, value, rank) VALUES ('m1', 'delivered', 2)`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%.40s: %v", q, err)
		}
	}
	db.Close()

	s := openSQLite(t, path)
	defer s.Close()
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	must("Sweep", s.Sweep(ctx, store.SweepRequest{Now: time.Now().Add(1000 * 24 * time.Hour), StatusBefore: time.Now().Add(-time.Hour)}))
	v, err := s.Get(ctx, "mailgun-contact", "x")
	must("Get the old record", err)
	if string(v) != "jane@example.com" {
		t.Errorf("old record = %q", v)
	}
	st, err := s.StatusOf(ctx, "m1")
	must("StatusOf the old status", err)
	if st.Value != "delivered" {
		t.Errorf("old status = %q", st.Value)
	}
}

// createSchema makes the database at path as a program that knew only the
// named migrations would have.
func createSchema(t *testing.T, path string, migrations ...string) {
	t.Helper()
	db := rawDB(t, path)
	stmts := []string{`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`}
	for _, m := range migrations {
		b, err := os.ReadFile("migrations/" + m + ".sql")
		if err != nil {
			t.Fatal(err)
		}
		stmts = append(stmts, string(b), fmt.Sprintf(`INSERT INTO schema_migrations VALUES (%s, '%s', 0)`, m[:4], m))
	}
	for _, q := range stmts {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%.40s: %v", q, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// The jobs commands (OpenExisting) never upgrade a store: the server that
// may be running on it is the older version, which would go on writing the
// old way into the new schema. They refuse it, saying to start the new
// server first, and leave its schema as it was; the server (Open) upgrades
// it.
func TestOpenExistingRefusesAnOlderSchemaAndLeavesItAsItWas(t *testing.T) {
	path := filepath.Join(t.TempDir(), "adapter.db")
	createSchema(t, path, "0001_init", "0002_expiry")
	version := func() int {
		var v int
		if err := rawDB(t, path).QueryRow(`SELECT MAX(version) FROM schema_migrations`).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}

	s, err := store.OpenExisting("sqlite:" + path)
	if !errors.Is(err, store.ErrSchemaBehind) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("OpenExisting of a schema-2 store = %v, want ErrSchemaBehind", err)
	}
	if !strings.Contains(err.Error(), "start this version's server first") {
		t.Errorf("error %q does not say what to do", err)
	}
	if v := version(); v != 2 {
		t.Fatalf("schema version after OpenExisting = %d, want 2 (untouched)", v)
	}

	s, err = store.Open("sqlite:" + path)
	if err != nil {
		t.Fatalf("Open (the server) of a schema-2 store: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if v := version(); v <= 2 {
		t.Fatalf("schema version after Open = %d, want upgraded", v)
	}
	s, err = store.OpenExisting("sqlite:" + path)
	if err != nil {
		t.Fatalf("OpenExisting of an upgraded store: %v", err)
	}
	s.Close()
}

// TestSQLiteUpgradeMarksLaneHeads: a database at schema version 2 with
// unfinished jobs gets the head marks of migration 3, and Lease goes on
// with each lane's first unfinished job.
func TestSQLiteUpgradeMarksLaneHeads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "adapter.db")
	createSchema(t, path, "0001_init", "0002_expiry")
	db := rawDB(t, path)
	insert := `INSERT INTO jobs (queue, channel_id, contact_id, mid, payload, state, created_at, updated_at, lease_until, lease_token)
		VALUES ('outbound', 'ch', ?, ?, x'', ?, 1, 1, ?, ?)`
	for _, j := range []struct{ contact, mid, state string }{
		{"a", "a1", "done"}, {"a", "a2", "pending"}, {"a", "a3", "pending"},
		{"b", "b1", "dead"}, {"b", "b2", "leased"}, {"b", "b3", "pending"},
	} {
		until, token := 0, ""
		if j.state == "leased" {
			until, token = 1, "t-"+j.mid // expired long ago
		}
		if _, err := db.Exec(insert, j.contact, j.mid, j.state, until, token); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	s := openSQLite(t, path)
	ls, err := s.Lease(ctx, store.LeaseRequest{Queue: store.Outbound, Now: time.Now(), For: time.Minute, Lanes: 5})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range ls {
		for _, j := range l.Jobs {
			got = append(got, j.MID)
		}
	}
	if fmt.Sprint(got) != "[a2 b2]" {
		t.Fatalf("leased %v after the upgrade, want [a2 b2]", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	checkHeadMarks(t, path)
}

// Two stores on one file (as the server and the jobs CLI are) must never
// hand one job to two workers.
func TestSQLiteTwoStoresNeverDoubleLease(t *testing.T) {
	path := filepath.Join(t.TempDir(), "adapter.db")
	a, b := openSQLite(t, path), openSQLite(t, path)
	defer a.Close()
	defer b.Close()
	const lanes, perLane = 20, 10
	var jobs []store.NewJob
	for i := range perLane {
		for l := range lanes {
			jobs = append(jobs, store.NewJob{Queue: store.Outbound, ChannelID: "ch", ContactID: fmt.Sprint(l), MID: fmt.Sprint(l, "-", i)})
		}
	}
	in, err := a.Enqueue(ctx, jobs, nil)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		runs  = map[int64]int{}
		order = map[string][]int64{}
		done  atomic.Int64
		wg    sync.WaitGroup
	)
	contact := map[int64]string{}
	for i, id := range in {
		contact[id] = jobs[i].ContactID
	}
	deadline := time.Now().Add(30 * time.Second)
	for w := range 8 {
		s := []*store.SQLite{a, b}[w%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for done.Load() < int64(len(in)) {
				if time.Now().After(deadline) {
					t.Errorf("worker %d: timed out at %d of %d", w, done.Load(), len(in))
					return
				}
				ls, err := s.Lease(ctx, store.LeaseRequest{Queue: store.Outbound, Now: time.Now(), For: time.Hour, Lanes: 2, PerLane: 2})
				if err != nil {
					t.Errorf("worker %d: Lease: %v", w, err)
					return
				}
				if len(ls) == 0 {
					time.Sleep(time.Millisecond)
					continue
				}
				for _, l := range ls {
					mu.Lock()
					for _, j := range l.Jobs {
						runs[j.ID]++
						order[contact[j.ID]] = append(order[contact[j.ID]], j.ID)
					}
					mu.Unlock()
					if err := s.Complete(ctx, l.Token, ""); err != nil {
						t.Errorf("worker %d: Complete: %v", w, err)
						return
					}
					done.Add(int64(len(l.Jobs)))
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for _, id := range in {
		if runs[id] != 1 {
			t.Errorf("job %d leased %d times", id, runs[id])
		}
	}
	for l := range lanes {
		var want []int64
		for i, id := range in {
			if jobs[i].ContactID == fmt.Sprint(l) {
				want = append(want, id)
			}
		}
		if got := order[fmt.Sprint(l)]; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("lane %d ran %v, want %v", l, got, want)
		}
	}
}

func TestSQLiteGroupCommit(t *testing.T) {
	s := openSQLite(t, filepath.Join(t.TempDir(), "adapter.db"))
	defer s.Close()
	c0, w0 := store.Commits(s)

	// 200 concurrent enqueues; half of them share one dedupe key, so one of
	// those succeeds and 99 fail with ErrDuplicate inside the same batches
	// as successful writes.
	const n = 200
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			var keys []store.Key
			if i%2 == 0 {
				keys = []store.Key{{Name: "same", Expires: time.Now().Add(time.Hour)}}
			} else {
				keys = []store.Key{{Name: fmt.Sprint("own-", i), Expires: time.Now().Add(time.Hour)}}
			}
			_, errs[i] = s.Enqueue(ctx, []store.NewJob{{Queue: store.Outbound, ChannelID: "ch", ContactID: fmt.Sprint(i), MID: fmt.Sprint(i)}}, keys)
		}()
	}
	close(start)
	wg.Wait()
	c1, w1 := store.Commits(s)
	ok, dup := 0, 0
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, store.ErrDuplicate) && i%2 == 0:
			dup++
		default:
			t.Fatalf("enqueue %d: %v", i, err)
		}
	}
	if ok != n/2+1 || dup != n/2-1 {
		t.Fatalf("%d stored, %d duplicates; want %d and %d", ok, dup, n/2+1, n/2-1)
	}
	counts, err := s.Count(ctx)
	if err != nil || counts[store.Pending] != n/2+1 {
		t.Fatalf("Count %v, %v; want %d pending", counts, err, n/2+1)
	}
	commits, writes := c1-c0, w1-w0
	t.Logf("%d writes in %d commits", writes, commits)
	if writes != n {
		t.Fatalf("%d writes ran, want %d", writes, n)
	}
	if commits > n/4 {
		t.Fatalf("%d concurrent writes took %d commits; group commit should batch them", n, commits)
	}
}

func TestSQLiteCanceledContext(t *testing.T) {
	s := openSQLite(t, filepath.Join(t.TempDir(), "adapter.db"))
	defer s.Close()
	c, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Enqueue(c, []store.NewJob{{Queue: store.Outbound, ChannelID: "ch", ContactID: "c"}}, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Enqueue with a canceled context: %v", err)
	}
	if counts, _ := s.Count(ctx); counts[store.Pending] != 0 {
		t.Fatalf("a canceled enqueue stored a job: %v", counts)
	}
}

func TestOpenDSN(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x", "adapter.db")
	s, err := store.Open("sqlite:" + path)
	if err != nil {
		t.Fatalf("Open(sqlite:): %v", err)
	}
	if _, ok := s.(*store.SQLite); !ok {
		t.Fatalf("Open(sqlite:) returned %T", s)
	}
	s.Close()
	m, err := store.Open("memory:")
	if err != nil {
		t.Fatalf("Open(memory:): %v", err)
	}
	if _, ok := m.(*store.Memory); !ok {
		t.Fatalf("Open(memory:) returned %T", m)
	}
	m.Close()
	// A DSN is never quoted back: a password may sit in its user info, its
	// query or a keyword (only a SQLite path, which holds none, is).
	for dsn, want := range map[string]string{
		"postgres://u:secret@db/x":                       "not supported yet",
		"postgres://db/app?user=app&password=secret":     "not supported yet",
		"postgresql:///app?host=/run/pg&password=secret": "not supported yet",
		"host=db user=app password=secret dbname=app":    "want sqlite:PATH",
		"user=app password=secret hostaddr=fe80::1":      "want sqlite:PATH",
		"user=app password=secret:x host=db":             "want sqlite:PATH",
		"mysql://u:secret@x":                             "unknown store",
		"adapter.db":                                     "want sqlite:PATH",
		"sqlite:":                                        "needs a path",
	} {
		_, err := store.Open(dsn)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Open(%q) = %v, want an error saying %q", dsn, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("Open(%q) error shows the password: %v", dsn, err)
		}
	}
}

// TestSQLiteAcknowledgedWritesSurviveSIGKILL runs a child process that
// writes from many goroutines (plain enqueues, and enqueue-leased then
// complete as /message does) and reports each write acknowledged; it is
// killed with SIGKILL mid-stream, and every acknowledged write must be in
// the file.
func TestSQLiteAcknowledgedWritesSurviveSIGKILL(t *testing.T) {
	if path := os.Getenv("STORE_TEST_KILL_CHILD"); path != "" {
		killChild(path)
		return
	}
	path := filepath.Join(t.TempDir(), "adapter.db")
	cmd, out := startKillChild(t, "TestSQLiteAcknowledgedWritesSurviveSIGKILL", "STORE_TEST_KILL_CHILD", path)
	acked := readKillChildAcks(out, func(a killChildAcks) bool { return a.queued >= 300 && len(a.completed) >= 500 })
	if err := cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if acked.queued < 300 || len(acked.completed) < 500 {
		t.Fatalf("child acknowledged only %d enqueues and %d completions", acked.queued, len(acked.completed))
	}
	s := openSQLite(t, path)
	defer s.Close()
	for id, mid := range acked.enqueued {
		j, err := s.Job(ctx, id)
		if err != nil || j.MID != mid {
			t.Fatalf("acknowledged job %d (%s) after SIGKILL: %+v, %v", id, mid, j, err)
		}
		if acked.completed[id] && j.State != store.Done {
			t.Fatalf("acknowledged completion of job %d lost after SIGKILL: %s", id, j.State)
		}
	}
	t.Logf("%d enqueues and %d completions acknowledged before the kill", len(acked.enqueued), len(acked.completed))
}

// killChildAcks is what the child reported before the kill.
type killChildAcks struct {
	enqueued  map[int64]string // job ID -> mId
	completed map[int64]bool
	queued    int // plain enqueues among enqueued
}

// readKillChildAcks reads the child's "enqueued|queued ID MID" and
// "completed ID" lines until enough says so or the output ends.
func readKillChildAcks(out io.Reader, enough func(killChildAcks) bool) killChildAcks {
	a := killChildAcks{enqueued: map[int64]string{}, completed: map[int64]bool{}}
	sc := bufio.NewScanner(out)
	for sc.Scan() && !enough(a) {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		id, err := strconv.ParseInt(f[1], 10, 64)
		switch {
		case err != nil:
		case f[0] == "completed":
			a.completed[id] = true
		case len(f) == 3 && (f[0] == "enqueued" || f[0] == "queued"):
			a.enqueued[id] = f[2]
			if f[0] == "queued" {
				a.queued++
			}
		}
	}
	return a
}

// killChild writes until it is killed: 8 goroutines enqueue (a platform
// event's path), 16 enqueue leased and complete (the /message path).
func killChild(path string) {
	s, err := store.OpenSQLite(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var mu sync.Mutex
	w := bufio.NewWriter(os.Stdout)
	say := func(format string, args ...any) {
		mu.Lock()
		fmt.Fprintf(w, format, args...)
		w.Flush()
		mu.Unlock()
	}
	must := func(what string, err error) {
		if err != nil {
			fmt.Fprintln(os.Stderr, what+":", err)
			os.Exit(2)
		}
	}
	for g := range 8 {
		go func() {
			for i := 0; ; i++ {
				mid := fmt.Sprint("q", g, "-", i)
				ids, err := s.Enqueue(ctx, []store.NewJob{{Queue: store.Platform, ChannelID: "ch", ContactID: fmt.Sprint("q", g), MID: mid}}, nil)
				must("Enqueue", err)
				say("queued %d %s\n", ids[0], mid)
			}
		}()
	}
	for g := range 16 {
		go func() {
			for i := 0; ; i++ {
				mid := fmt.Sprint(g, "-", i)
				id, l, err := s.EnqueueLeased(ctx, store.NewJob{Queue: store.Outbound, ChannelID: "ch", ContactID: fmt.Sprint(g), MID: mid},
					nil, time.Now(), time.Minute)
				if err == nil && l == nil {
					err = errors.New("no lease for an idle contact")
				}
				must("EnqueueLeased", err)
				say("enqueued %d %s\n", id, mid)
				must("Complete", s.Complete(ctx, l.Token, ""))
				say("completed %d\n", id)
			}
		}()
	}
	select {}
}

func TestSQLitePragmasAndPlan(t *testing.T) {
	s := openSQLite(t, filepath.Join(t.TempDir(), "adapter.db"))
	defer s.Close()
	for name, want := range map[string]string{"journal_mode": "wal", "synchronous": "2", "foreign_keys": "1", "busy_timeout": "5000", "journal_size_limit": "16777216"} {
		if got, err := store.WriterPragma(s, name); err != nil || got != want {
			t.Errorf("PRAGMA %s = %q, %v; want %q", name, got, err, want)
		}
	}
	check := func(what, want, q string, args ...any) {
		t.Helper()
		plan, err := store.Plan(s, q, args...)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		t.Logf("%s:\n%s", what, plan)
		for _, w := range strings.Split(want, ",") {
			if !strings.Contains(plan, w) {
				t.Errorf("%s does not use %s:\n%s", what, w, plan)
			}
		}
		if strings.Contains(plan, "SCAN jobs\n") || strings.HasSuffix(plan, "SCAN jobs") {
			t.Errorf("%s scans the whole table:\n%s", what, plan)
		}
	}
	for kind, index := range []string{"jobs_ready", "jobs_ready", "jobs_expiring"} {
		for _, c := range []bool{true, false} {
			args := []any{"outbound"}
			if c {
				args = append(args, "ch")
			}
			if kind > 0 {
				args = append(args, 0)
			}
			check(fmt.Sprintf("ready heads (kind %d, channel %v)", kind, c), index, store.ReadyHeadsQuery(kind, c), args...)
		}
	}
	check("lane next", "jobs_lane", store.LaneNextQuery, "outbound", "ch", "c", 1)
	check("promote", "jobs_lane", store.PromoteQuery, 1, 2)
	check("unhead", "jobs_lane", store.UnheadQuery, 1)
	check("lane held", "jobs_lane", store.LaneHeldQuery, 1)
	check("count", "jobs_lane,jobs_done,jobs_dead", store.CountQuery())
	readiness := store.CountQuery(store.Pending, store.Leased, store.Dead)
	check("count for readiness", "jobs_lane,jobs_dead", readiness)
	if strings.Contains(readiness, "done") {
		t.Errorf("the readiness count reads the done jobs: %s", readiness)
	}
	check("sweep", "jobs_done,INTEGER PRIMARY KEY", store.SweepJobsQuery, 0)
	check("sweep keys", "dedupe_keys_expires,sqlite_autoindex_dedupe_keys_1", store.SweepKeysQuery, 0)
	check("by token", "jobs_token", "SELECT id FROM jobs WHERE lease_token = ? AND state = 'leased'", "t")
	check("sweep records", "kv_expires,sqlite_autoindex_kv_1", store.SweepKVQuery, 0)
	check("sweep statuses", "status_updated,sqlite_autoindex_status_1", store.SweepStatusQuery, 0)
	q, args := store.JobsQuery(store.JobFilter{State: store.Dead, Limit: 10})
	check("dead jobs", "jobs_dead", q, args...)
}

// TestSQLiteTwoProcessesNeverDoubleLease: this process and a child work the
// same file at once (as the server and the jobs CLI do); no job runs twice.
func TestSQLiteTwoProcessesNeverDoubleLease(t *testing.T) {
	if path := os.Getenv("STORE_TEST_WORKER_CHILD"); path != "" {
		s := openSQLite(t, path)
		defer s.Close()
		fmt.Println("ready")
		var mu sync.Mutex
		leaseLoop(t, s, 4, func(id int64) {
			mu.Lock()
			fmt.Printf("run %d\n", id)
			mu.Unlock()
			time.Sleep(200 * time.Microsecond)
		})
		return
	}
	path := filepath.Join(t.TempDir(), "adapter.db")
	s := openSQLite(t, path)
	defer s.Close()
	var jobs []store.NewJob
	for i := range 200 {
		jobs = append(jobs, store.NewJob{Queue: store.Outbound, ChannelID: "ch", ContactID: fmt.Sprint(i % 20), MID: fmt.Sprint(i)})
	}
	in, err := s.Enqueue(ctx, jobs, nil)
	if err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(os.Args[0], "-test.run=^TestSQLiteTwoProcessesNeverDoubleLease$", "-test.count=1")
	cmd.Env = append(os.Environ(), "STORE_TEST_WORKER_CHILD="+path)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	runs := map[int64]int{}
	var mu sync.Mutex
	childDone, ready := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(childDone)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "ready" {
				close(ready)
			}
			if id, ok := strings.CutPrefix(sc.Text(), "run "); ok {
				n, _ := strconv.ParseInt(id, 10, 64)
				mu.Lock()
				runs[n]++
				mu.Unlock()
			}
		}
	}()
	select {
	case <-ready:
	case <-childDone:
		t.Fatal("child ended before it was ready")
	}
	mine := 0
	leaseLoop(t, s, 4, func(id int64) {
		mu.Lock()
		runs[id]++
		mine++
		mu.Unlock()
		time.Sleep(200 * time.Microsecond)
	})
	<-childDone
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
	for _, id := range in {
		if runs[id] != 1 {
			t.Errorf("job %d ran %d times", id, runs[id])
		}
	}
	t.Logf("this process ran %d jobs, the child %d", mine, len(in)-mine)
}

// leaseLoop leases and completes outbound jobs from workers goroutines
// until no job is pending or leased.
func leaseLoop(t *testing.T, s store.Store, workers int, run func(id int64)) {
	var wg sync.WaitGroup
	deadline := time.Now().Add(30 * time.Second)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				ls, err := s.Lease(ctx, store.LeaseRequest{Queue: store.Outbound, Now: time.Now(), For: time.Hour, Lanes: 2, PerLane: 2})
				if err != nil {
					t.Errorf("Lease: %v", err)
					return
				}
				if len(ls) == 0 {
					c, err := s.Count(ctx)
					if err != nil {
						t.Errorf("Count: %v", err)
						return
					}
					if c[store.Pending]+c[store.Leased] == 0 {
						return
					}
					time.Sleep(time.Millisecond)
					continue
				}
				for _, l := range ls {
					for _, j := range l.Jobs {
						run(j.ID)
					}
					if err := s.Complete(ctx, l.Token, ""); err != nil {
						t.Errorf("Complete: %v", err)
						return
					}
				}
			}
			t.Errorf("jobs left after 30s")
		}()
	}
	wg.Wait()
}

// startKillChild re-runs this test binary as a child that runs test with
// env=path set, and returns it with its standard output.
func startKillChild(t *testing.T, test, env, path string) (*exec.Cmd, io.ReadCloser) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), env+"="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, out
}

// holdWriteLock takes the database's write lock from another connection
// (as the jobs CLI or a backup may) and returns its release.
func holdWriteLock(t *testing.T, path string) (release func()) {
	t.Helper()
	conn, err := rawDB(t, path).Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			_, _ = conn.ExecContext(ctx, `ROLLBACK`)
			conn.Close()
		})
	}
	t.Cleanup(release)
	return release
}

// hasJob reports whether a job with this mId is stored.
func hasJob(t *testing.T, s store.Store, mid string) bool {
	t.Helper()
	_, err := s.JobByMID(ctx, store.Platform, mid)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

func platformJob(mid string) []store.NewJob {
	return []store.NewJob{{Queue: store.Platform, ChannelID: "ch", ContactID: "c", MID: mid}}
}

// A write whose caller gives up (its context ends) while it waits for the
// group-commit writer is never stored, and says so (NotStored); one the
// writer already took is stored even if its caller gave up meanwhile, and
// answers nil. So an error marked NotStored never hides a stored write.
func TestSQLiteAGivenUpWriteIsStoredExactlyWhenTheWriterTookIt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "adapter.db")
	s := openSQLite(t, path)
	defer s.Close()
	release := holdWriteLock(t, path)

	// "taken": the writer takes it at once and waits in BEGIN for the lock.
	takenCtx, cancelTaken := context.WithCancel(ctx)
	takenErr := make(chan error, 1)
	go func() {
		_, err := s.Enqueue(takenCtx, platformJob("taken"), nil)
		takenErr <- err
	}()
	time.Sleep(100 * time.Millisecond)
	// "waiting": the writer is busy with "taken"; its caller gives up first.
	waitCtx, cancelWait := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancelWait()
	_, waitErr := s.Enqueue(waitCtx, platformJob("waiting"), nil)
	cancelTaken() // too late: the writer has it
	release()

	if !errors.Is(waitErr, context.DeadlineExceeded) || !store.NotStored(waitErr) {
		t.Fatalf("a write given up while waiting for the writer: %v (NotStored %v), want DeadlineExceeded, NotStored",
			waitErr, store.NotStored(waitErr))
	}
	if hasJob(t, s, "waiting") {
		t.Fatal("a write the writer never took was stored")
	}
	if err := <-takenErr; err != nil {
		t.Fatalf("a write the writer took before its caller gave up: %v, want nil (it commits anyway)", err)
	}
	if !hasJob(t, s, "taken") {
		t.Fatal("a write answered nil is not stored")
	}
}

// A database locked for longer than the busy timeout (the jobs CLI, a
// backup) refuses the transaction at BEGIN: nothing of it was written.
func TestSQLiteAWriteRefusedByALockedDatabaseIsNotStored(t *testing.T) {
	t.Parallel() // waits out the 5 s busy timeout
	path := filepath.Join(t.TempDir(), "adapter.db")
	s := openSQLite(t, path)
	defer s.Close()
	release := holdWriteLock(t, path)
	_, err := s.Enqueue(ctx, platformJob("locked"), nil)
	release()
	if err == nil || !store.NotStored(err) {
		t.Fatalf("Enqueue on a locked database: %v (NotStored %v), want an error marked NotStored", err, store.NotStored(err))
	}
	if hasJob(t, s, "locked") {
		t.Fatal("a write refused at BEGIN was stored")
	}
}

// A write that fails inside SQLite is undone alone, and the others of its
// batch commit: it stored nothing, and says so.
func TestSQLiteAWriteUndoneAloneIsNotStored(t *testing.T) {
	s := openSQLite(t, filepath.Join(t.TempDir(), "adapter.db"))
	defer s.Close()
	err := store.FailingWrite(s)
	if err == nil || !store.NotStored(err) {
		t.Fatalf("a write failing inside SQLite: %v (NotStored %v), want an error marked NotStored", err, store.NotStored(err))
	}
	if _, err := s.Get(ctx, "failing-write", "k"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the failed write's first row: %v, want it undone", err)
	}
}

// A failed COMMIT leaves the outcome unknown (the transaction may be in
// the WAL, and the next open's recovery would replay it): its error is
// not marked NotStored, so no caller throws away what it may link.
func TestSQLiteAFailedCommitIsNotVouchedFor(t *testing.T) {
	s := openSQLite(t, filepath.Join(t.TempDir(), "adapter.db"))
	defer s.Close()
	var fail atomic.Bool
	fail.Store(true)
	store.FailCommit(s, func() error {
		if fail.Load() {
			return errors.New("disk I/O error")
		}
		return nil
	})
	_, err := s.Enqueue(ctx, platformJob("commit"), []store.Key{{Name: "inbound:ch:SM1", Expires: time.Now().Add(time.Hour)}})
	if err == nil || store.NotStored(err) {
		t.Fatalf("Enqueue whose COMMIT failed: %v (NotStored %v), want an error not marked NotStored", err, store.NotStored(err))
	}
	fail.Store(false)
	if _, err := s.Enqueue(ctx, platformJob("after"), nil); err != nil {
		t.Fatalf("the writer after a failed COMMIT: %v", err)
	}
}
