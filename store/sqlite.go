package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // registers the pure-Go "sqlite" driver
)

// ErrClosed is returned by a store used after Close.
var ErrClosed = errors.New("store: closed")

//go:embed migrations/*.sql
var migrationFS embed.FS

const (
	// busyTimeoutMS is how long a connection waits for another one (in this
	// or another process, e.g. the jobs CLI) to release the write lock.
	busyTimeoutMS = 5000
	// maxBatch caps how many writes share one transaction.
	maxBatch = 128
	// journalSizeLimit is the size (bytes) SQLite cuts the -wal file back
	// to when the log restarts after a checkpoint; without it the file
	// keeps the size of the largest burst it ever held, for good. Such a
	// burst is a large transaction, or many writes while a long read (the
	// jobs CLI, a backup) keeps checkpoints from restarting the log. In
	// normal use the log restarts near wal_autocheckpoint's 1000 pages
	// (4 MiB) plus the batch that crossed it, a lease of at most some
	// hundred jobs: 16 MiB is well above that, so the file is not cut and
	// grown again on every restart, and small enough to give a burst's
	// disk space back at the next restart.
	journalSizeLimit = 16 << 20
)

// SQLite is the embedded durable Store: one file in WAL mode with
// synchronous=FULL, so a write is on disk (fsynced WAL) when it returns.
//
// Writes go through one writer goroutine and one connection. It takes the
// writes waiting at that moment (up to maxBatch), runs them in one
// BEGIN IMMEDIATE transaction, commits once (one fsync for the whole batch)
// and only then answers every caller with its own result. A write that
// fails with the store's own error (ErrDuplicate, ErrLeaseLost, ...) has
// changed nothing, or ran in a SAVEPOINT of its own; a write failing inside
// SQLite makes the writer undo the batch and run it again with a SAVEPOINT
// per write, so that it is undone alone. The hot writes (EnqueueLeased
// without keys, Complete) of a batch run as one statement per kind (see
// sqlite_batch.go).
// Reads use a separate pool of query-only connections, which WAL lets run
// while the writer writes.
type SQLite struct {
	path   string
	wdb    *sql.DB
	wconn  *sql.Conn
	wstmts map[string]*sql.Stmt   // owned by the writer goroutine
	wsized map[sizedKey]*sql.Stmt // the same, for statements over n rows
	rdb    *sql.DB
	rstmts sync.Map // query -> *sql.Stmt on rdb
	// returningIDs: batched inserts learn their IDs with RETURNING (as
	// PostgreSQL would) rather than from SQLite's last insert rowid (tests
	// run both).
	returningIDs bool
	// afterSweepChunk, when set (by tests), runs after each chunk Sweep
	// deleted, outside the writer.
	afterSweepChunk func()
	// failCommit, when set (by tests), is asked before each COMMIT: an
	// error it returns stands for COMMIT's (the batch is rolled back).
	failCommit func() error

	ops        chan *writeOp
	quit       chan struct{}
	writerDone chan struct{}
	closeOnce  sync.Once
	closeErr   error

	commits  atomic.Int64 // committed write transactions (batches)
	writes   atomic.Int64 // writes that ran inside them
	isolated atomic.Int64 // batches run again with a savepoint per write
}

var _ Store = (*SQLite)(nil)

// OpenSQLite opens (creating it and its folder when missing) the SQLite
// database at path and applies the pending migrations.
func OpenSQLite(path string) (*SQLite, error) { return openSQLite(path, true) }

// openSQLite opens the database at path; with upgrade false it refuses a
// database with pending migrations instead of applying them.
func openSQLite(path string, upgrade bool) (*SQLite, error) {
	if err := checkSQLitePath(path); err != nil {
		return nil, err
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("store: sqlite: create folder: %w", err)
		}
	}
	uri := sqliteURI(path)
	common := "_pragma=busy_timeout(" + strconv.Itoa(busyTimeoutMS) + ")&_pragma=foreign_keys(1)"

	wdb, err := sql.Open("sqlite", uri+"?"+common+"&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)"+
		"&_pragma=journal_size_limit("+strconv.Itoa(journalSizeLimit)+")")
	if err != nil {
		return nil, fmt.Errorf("store: sqlite: %w", err)
	}
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	wdb.SetConnMaxLifetime(0)
	wdb.SetConnMaxIdleTime(0)
	ctx := context.Background()
	wconn, err := wdb.Conn(ctx)
	if err != nil {
		wdb.Close()
		return nil, fmt.Errorf("store: sqlite: open %s: %w", path, err)
	}
	s := &SQLite{
		path:       path,
		wdb:        wdb,
		wconn:      wconn,
		wstmts:     map[string]*sql.Stmt{},
		wsized:     map[sizedKey]*sql.Stmt{},
		ops:        make(chan *writeOp),
		quit:       make(chan struct{}),
		writerDone: make(chan struct{}),
	}
	fail := func(err error) (*SQLite, error) {
		s.closeWriter()
		return nil, fmt.Errorf("store: sqlite: open %s: %w", path, err)
	}
	var mode string
	if err := wconn.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fail(err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fail(fmt.Errorf("journal_mode is %q, want wal", mode))
	}
	if err := s.migrate(ctx, upgrade); err != nil {
		return fail(err)
	}

	s.rdb, err = sql.Open("sqlite", uri+"?"+common+"&_pragma=query_only(1)")
	if err != nil {
		return fail(err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	s.rdb.SetMaxOpenConns(n)
	s.rdb.SetMaxIdleConns(n)
	s.rdb.SetConnMaxLifetime(0)
	s.rdb.SetConnMaxIdleTime(0)
	if err := s.rdb.PingContext(ctx); err != nil {
		s.rdb.Close()
		return fail(err)
	}

	go s.writer()
	return s, nil
}

// sqliteURI makes a file: URI of a path, so that any character may appear in
// it (a '?' in a plain name would start the driver's parameters).
func sqliteURI(path string) string {
	r := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23")
	return "file:" + r.Replace(filepath.ToSlash(path))
}

// Close stops the writer (after the batch it is running) and closes the
// database. Writes after Close fail with ErrClosed.
func (s *SQLite) Close() error {
	s.closeOnce.Do(func() {
		close(s.quit)
		<-s.writerDone
		err := s.closeWriter()
		s.rstmts.Range(func(_, v any) bool {
			v.(*sql.Stmt).Close()
			return true
		})
		if s.rdb != nil {
			err = errors.Join(err, s.rdb.Close())
		}
		s.closeErr = err
	})
	return s.closeErr
}

func (s *SQLite) closeWriter() error {
	for _, st := range s.wstmts {
		st.Close()
	}
	clear(s.wstmts)
	for _, st := range s.wsized {
		st.Close()
	}
	clear(s.wsized)
	return errors.Join(s.wconn.Close(), s.wdb.Close())
}

// Ping checks that both the read pool and the writer answer.
func (s *SQLite) Ping(ctx context.Context) error {
	if err := s.rdb.PingContext(ctx); err != nil {
		return fmt.Errorf("store: sqlite: %w", err)
	}
	return s.write(ctx, func(w *wtx) error {
		var one int
		return w.queryRow(`SELECT 1`).Scan(&one)
	})
}

// --- migrations ---

type migration struct {
	version int
	name    string
	sql     string
}

func loadMigrations() ([]migration, error) {
	names, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var ms []migration
	seen := map[int]string{}
	for _, n := range names {
		base := strings.TrimSuffix(filepath.Base(n), ".sql")
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name must be NNNN_name.sql", n)
		}
		if prev, dup := seen[v]; dup {
			return nil, fmt.Errorf("migrations %s and %s share version %d", prev, n, v)
		}
		seen[v] = n
		b, err := migrationFS.ReadFile(n)
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: base, sql: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	return ms, nil
}

// migrate applies the embedded migrations that schema_migrations does not
// list, in order, in one immediate transaction (so two processes opening a
// new file at once do not both apply them). With upgrade false a pending
// migration is an error (ErrSchemaBehind) and nothing is applied.
func (s *SQLite) migrate(ctx context.Context, upgrade bool) (err error) {
	ms, err := loadMigrations()
	if err != nil {
		return err
	}
	c := s.wconn
	if _, err := c.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_, _ = c.ExecContext(ctx, `ROLLBACK`)
		}
	}()
	if _, err := c.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT    NOT NULL,
		applied_at INTEGER NOT NULL)`); err != nil {
		return err
	}
	applied := map[int]bool{}
	rows, err := c.QueryContext(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return err
	}
	highest := 0
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return err
		}
		applied[v] = true
		highest = max(highest, v)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if len(ms) > 0 && highest > ms[len(ms)-1].version {
		return fmt.Errorf("database schema version %d is newer than this program knows (%d)", highest, ms[len(ms)-1].version)
	}
	for _, m := range ms {
		if applied[m.version] {
			continue
		}
		if !upgrade {
			return fmt.Errorf("%w: it is at version %d, this program needs %d", ErrSchemaBehind, highest, ms[len(ms)-1].version)
		}
		if _, err := c.ExecContext(ctx, m.sql); err != nil {
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
		if _, err := c.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
			m.version, m.name, time.Now().UnixMilli()); err != nil {
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
	}
	_, err = c.ExecContext(ctx, `COMMIT`)
	return err
}

// --- group commit ---

type writeOp struct {
	ctx  context.Context
	fn   func(*wtx) error
	done chan error
	// dirtyFail: fn may fail with one of the store's own errors
	// (ErrDuplicate, ...) after it changed something, so it runs in a
	// savepoint of its own. The other writes fail with those errors only
	// before they change anything, and otherwise only inside SQLite, after
	// which the batch is undone and run again with a savepoint per write
	// (see runBatch).
	dirtyFail bool
	// complete and enqueue mark the writes the writer runs together with
	// the others of their kind in the batch, in one statement for all of
	// them (see sqlite_batch.go); fn runs them one by one when the batch
	// runs again write by write.
	complete *completeOp
	enqueue  *enqueueOp
}

// write runs fn in the writer's next transaction and returns its result once
// that transaction committed (or failed). fn may run more than once (the
// batch runs again when a write of it fails inside SQLite): it must set its
// results afresh each time and keep them in variables the caller reads only
// when write returns nil. If fn fails with ErrDuplicate, ErrLeaseLost or
// ErrNotFound it must not have changed anything before (else set dirtyFail
// and use submit).
func (s *SQLite) write(ctx context.Context, fn func(*wtx) error) error {
	return s.submit(&writeOp{ctx: ctx, fn: fn})
}

// submit hands o to the writer and waits for its outcome.
func (s *SQLite) submit(o *writeOp) error {
	if err := o.ctx.Err(); err != nil {
		return notStored(err)
	}
	o.done = make(chan error, 1)
	select {
	case s.ops <- o:
	case <-s.quit:
		return notStored(ErrClosed)
	case <-o.ctx.Done():
		return notStored(o.ctx.Err()) // never handed over
	}
	// Once handed over, the outcome is decided by the transaction (the
	// writer answers every write it took): wait for it, so that nil means
	// durable. An error means not stored when it is marked so (NotStored);
	// a COMMIT that failed leaves it unknown.
	return <-o.done
}

// writer is the only goroutine that uses wconn once OpenSQLite returned.
//
// It takes the writes waiting at that moment and runs them; it does not
// yield or wait for more first: the writes that arrive meanwhile make the
// next batch, and as a batch spends much of its time in its fsync, batches
// grow with the load by themselves. (Yielding first made the batches
// larger, but the writer is the bottleneck, and it sat idle meanwhile.)
func (s *SQLite) writer() {
	defer close(s.writerDone)
	batch := make([]*writeOp, 0, maxBatch)
	w := &wtx{s: s}
	for {
		select {
		case o := <-s.ops:
			batch = append(batch[:0], o)
		case <-s.quit:
			return
		}
	collect:
		for len(batch) < maxBatch {
			select {
			case o := <-s.ops:
				batch = append(batch, o)
			default:
				break collect
			}
		}
		errs := s.runBatch(w, batch)
		for i, o := range batch {
			o.done <- errs[i]
		}
		clear(batch)
	}
}

// errIsolate: a write failed inside SQLite while the batch ran without a
// savepoint per write; the batch is undone and run again with them.
var errIsolate = errors.New("store: sqlite: run the batch again, one savepoint per write")

// runBatch runs the writes of batch in one transaction and returns each
// one's outcome.
func (s *SQLite) runBatch(w *wtx, batch []*writeOp) []error {
	errs := make([]error, len(batch))
	skipped := make([]bool, len(batch))
	live := 0
	for i, o := range batch {
		// Skip writes whose caller gave up before they started. Contexts
		// are not passed to the statements: an interrupted statement can
		// roll back the whole transaction, i.e. the other callers' writes.
		if err := o.ctx.Err(); err != nil {
			errs[i], skipped[i] = notStored(err), true
		} else {
			live++
		}
	}
	if live == 0 {
		return errs
	}
	fatal := s.runTx(w, batch, errs, skipped, false)
	if errors.Is(fatal, errIsolate) {
		s.isolated.Add(1)
		for i := range batch {
			if !skipped[i] {
				errs[i] = nil
			}
		}
		fatal = s.runTx(w, batch, errs, skipped, true)
	}
	for i := range batch {
		switch {
		case skipped[i]:
		case fatal != nil:
			errs[i] = fatal
		case errs[i] != nil && !ownErr(errs[i]):
			// Undone alone (its savepoint rolled back) in a batch that
			// committed.
			errs[i] = notStored(errs[i])
		}
	}
	return errs
}

// ownErr reports whether err is one of the store's own outcomes, with which
// a write (unless dirtyFail) fails before it changes anything.
func ownErr(err error) bool {
	return errors.Is(err, ErrLeaseLost) || errors.Is(err, ErrDuplicate) || errors.Is(err, ErrNotFound)
}

// runTx runs the batch's live writes in one transaction. A write's own error
// goes to errs and undoes only that write; the returned error is fatal for
// the whole batch: nothing of it was committed, and the error is marked so
// (NotStored), except a failed COMMIT's, whose outcome is unknown (its
// frames may be in the WAL, which the next open's recovery replays).
//
// isolated runs every write alone, in arrival order, each in its own
// SAVEPOINT, so that a write failing inside SQLite (a constraint, disk
// full) is undone alone.
// Otherwise only dirtyFail writes get a savepoint: the other writes run
// first, then the completions together, then the enqueues together (the
// writes of a batch are concurrent, so any order is one they could have run
// in), and a write failing inside SQLite makes runTx undo the whole
// transaction and return errIsolate.
func (s *SQLite) runTx(w *wtx, batch []*writeOp, errs []error, skipped []bool, isolated bool) (fatal error) {
	if _, err := w.exec(`BEGIN IMMEDIATE`); err != nil {
		return notStored(fmt.Errorf("store: sqlite: begin: %w", err))
	}
	defer func() {
		if fatal != nil {
			_, _ = w.exec(`ROLLBACK`)
		}
	}()
	n := 0
	var completes, enqueues []int
	for i, o := range batch {
		if skipped[i] {
			continue
		}
		n++
		switch {
		case isolated || o.dirtyFail:
		case o.complete != nil:
			completes = append(completes, i)
			continue
		case o.enqueue != nil:
			enqueues = append(enqueues, i)
			continue
		default:
			err := o.fn(w)
			if err != nil && !ownErr(err) {
				return errIsolate
			}
			errs[i] = err
			continue
		}
		if _, err := w.exec(`SAVEPOINT op`); err != nil {
			return notStored(fmt.Errorf("store: sqlite: savepoint: %w", err))
		}
		err := o.fn(w)
		if err != nil {
			// If SQLite already rolled the whole transaction back (disk
			// full, I/O error), the savepoint is gone and this fails.
			if _, rerr := w.exec(`ROLLBACK TO op`); rerr != nil {
				return notStored(fmt.Errorf("store: sqlite: %w (and rollback: %w)", err, rerr))
			}
		}
		if _, rerr := w.exec(`RELEASE op`); rerr != nil {
			return notStored(fmt.Errorf("store: sqlite: release savepoint: %w", rerr))
		}
		errs[i] = err
	}
	if len(completes) > 0 {
		if err := w.completeAll(batch, completes, errs); err != nil {
			return errIsolate
		}
	}
	if len(enqueues) > 0 {
		if err := w.enqueueAll(batch, enqueues); err != nil {
			return errIsolate
		}
	}
	if s.failCommit != nil {
		if err := s.failCommit(); err != nil {
			return fmt.Errorf("store: sqlite: commit: %w", err)
		}
	}
	if _, err := w.exec(`COMMIT`); err != nil {
		return fmt.Errorf("store: sqlite: commit: %w", err)
	}
	s.commits.Add(1)
	s.writes.Add(int64(n))
	return nil
}

// wtx runs statements on the writer connection inside the current batch.
type wtx struct{ s *SQLite }

func (w *wtx) stmt(q string) (*sql.Stmt, error) {
	if st, ok := w.s.wstmts[q]; ok {
		return st, nil
	}
	st, err := w.s.wconn.PrepareContext(context.Background(), Rebind(BindQuestion, q))
	if err != nil {
		return nil, err
	}
	w.s.wstmts[q] = st
	return st, nil
}

func (w *wtx) exec(q string, args ...any) (sql.Result, error) {
	st, err := w.stmt(q)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(context.Background(), args...)
}

// execN runs a statement and returns how many rows it changed.
func (w *wtx) execN(q string, args ...any) (int64, error) {
	res, err := w.exec(q, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (w *wtx) query(q string, args ...any) (*sql.Rows, error) {
	st, err := w.stmt(q)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(context.Background(), args...)
}

func (w *wtx) queryRow(q string, args ...any) *sql.Row {
	st, err := w.stmt(q)
	if err != nil {
		// A Row with the error: run the unprepared query, which fails alike.
		return w.s.wconn.QueryRowContext(context.Background(), q, args...)
	}
	return st.QueryRowContext(context.Background(), args...)
}

// --- reads ---

func (s *SQLite) rstmt(ctx context.Context, q string) (*sql.Stmt, error) {
	if st, ok := s.rstmts.Load(q); ok {
		return st.(*sql.Stmt), nil
	}
	st, err := s.rdb.PrepareContext(ctx, Rebind(BindQuestion, q))
	if err != nil {
		return nil, err
	}
	if prev, loaded := s.rstmts.LoadOrStore(q, st); loaded {
		st.Close()
		return prev.(*sql.Stmt), nil
	}
	return st, nil
}

func (s *SQLite) rquery(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	st, err := s.rstmt(ctx, q)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

func (s *SQLite) rqueryRow(ctx context.Context, q string, args ...any) (*sql.Row, error) {
	st, err := s.rstmt(ctx, q)
	if err != nil {
		return nil, err
	}
	return st.QueryRowContext(ctx, args...), nil
}
