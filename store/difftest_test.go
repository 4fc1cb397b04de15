package store_test

// Model-based differential test: a seeded random sequence of operations is
// applied to Memory and SQLite in lockstep, and every observable result (and
// the whole job table, counts, keys, statuses) is compared after each op.
//
//	go test ./store -run TestDifferential -difftest.seeds=200 -difftest.ops=500
//	go test ./store -run TestDifferential/seed=17 -v   # replay one seed, trace on failure

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bonychat/bonychat-adapter/store"
)

var (
	diffSeeds = flag.Int("difftest.seeds", 0, "seeds of TestDifferential (0: 8, or 3 with -race or -short)")
	diffOps   = flag.Int("difftest.ops", 250, "operations per seed of TestDifferential")
	diffFirst = flag.Int("difftest.first", 1, "first seed of TestDifferential")
	diffTrace = flag.Int("difftest.trace", 40, "ops of the trace shown on failure")
)

// diffRace is set in builds with the race detector (difftest_race_test.go).
var diffRace bool

func TestDifferential(t *testing.T) {
	seeds := *diffSeeds
	if seeds == 0 {
		seeds = 8
		if diffRace || testing.Short() {
			seeds = 3
		}
	}
	for seed := *diffFirst; seed < *diffFirst+seeds; seed++ {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			t.Parallel()
			runDiff(t, uint64(seed), *diffOps)
		})
	}
}

type tokPair struct{ m, s string }

type diffWorld struct {
	t     *testing.T
	rng   *rand.Rand
	m     *store.Memory
	s     *store.SQLite
	wall0 time.Time // wall clock at start: Enqueue keys, Get and updated_at use it
	now   time.Time // the fake clock (far from the wall clock)
	marks []time.Time
	toks  []tokPair
	maxID int64
	trace []string
}

var (
	dQueues   = []store.Queue{store.Outbound, store.Platform}
	dChannels = []string{"ch1", "ch2"}
	dContacts = []string{"a", "b", "c"}
	dMIDs     = []string{"m0", "m1", "m2", "m3"}
	dKeys     = []string{"k0", "k1", "k2", "k3"}
	dNS       = []string{"ns0", "ns1"}
	dMedia    = []string{"md0", "md1", "md2"}
)

func runDiff(t *testing.T, seed uint64, nops int) {
	m := store.NewMemory()
	s, err := store.OpenSQLite(filepath.Join(t.TempDir(), "diff.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(); m.Close() })
	w := &diffWorld{t: t, rng: rand.New(rand.NewPCG(seed, seed*7919)), m: m, s: s,
		wall0: time.Now().UTC().Truncate(time.Millisecond)}
	// The fake clock is 30 days before or after the wall clock, so that
	// wall-clock times (CreatedAt of new jobs, key checks of Enqueue) never
	// fall between the two stores' calls.
	if w.rng.IntN(2) == 0 {
		w.now = w.wall0.Add(30 * 24 * time.Hour)
	} else {
		w.now = w.wall0.Add(-30 * 24 * time.Hour)
	}
	defer func() {
		if t.Failed() {
			tail := w.trace[max(0, len(w.trace)-*diffTrace):]
			t.Logf("seed %d, last %d ops:\n%s", seed, len(tail), strings.Join(tail, "\n"))
			if testing.Verbose() {
				jm, _ := w.m.Jobs(ctx, store.JobFilter{})
				js, _ := w.s.Jobs(ctx, store.JobFilter{})
				t.Logf("fake now %s\nmemory jobs:\n%s\nsqlite jobs:\n%s", w.now.Format("15:04:05.000"), fmtJobTable(jm), fmtJobTable(js))
			}
		}
	}()
	for i := 0; i < nops && !t.Failed(); i++ {
		w.step(i)
		if !t.Failed() {
			w.compareState(i)
		}
	}
	if !t.Failed() {
		w.compareState(7) // everything, at the end
	}
}

func (w *diffWorld) logf(format string, args ...any) {
	w.trace = append(w.trace, fmt.Sprintf(format, args...))
}

func (w *diffWorld) fail(op int, format string, args ...any) {
	w.t.Helper()
	w.t.Errorf("op %d: %s", op, fmt.Sprintf(format, args...))
}

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

func (w *diffWorld) dur(max time.Duration) time.Duration {
	return time.Duration(w.rng.Int64N(int64(max/time.Second)+1)) * time.Second
}

func (w *diffWorld) newJob() store.NewJob {
	r := w.rng
	j := store.NewJob{Queue: pick(r, dQueues), ChannelID: pick(r, dChannels), ContactID: pick(r, dContacts),
		MID: pick(r, dMIDs)}
	if r.IntN(3) > 0 {
		j.Payload = []byte(fmt.Sprintf(`{"n":%d}`, r.IntN(100)))
	}
	switch r.IntN(6) {
	case 0:
		j.NotBefore = w.now.Add(w.dur(3 * time.Minute))
	case 1:
		j.NotBefore = w.now.Add(-w.dur(3 * time.Minute))
	case 2:
		j.NotBefore = w.now.Add(time.Duration(r.IntN(2000)) * time.Microsecond) // sub-ms
	}
	return j
}

func (w *diffWorld) keyExpiry() time.Time {
	switch w.rng.IntN(5) {
	case 0:
		return time.Time{}
	case 1:
		return time.Now().Add(-time.Hour) // expired for Enqueue's wall-clock check
	case 2:
		return time.Now().Add(time.Hour)
	default:
		return w.now.Add(w.dur(3 * time.Minute)) // a window on the fake clock
	}
}

func (w *diffWorld) keys(max int) []store.Key {
	var ks []store.Key
	for range w.rng.IntN(max + 1) {
		ks = append(ks, store.Key{Name: pick(w.rng, dKeys), Value: []byte(fmt.Sprint(w.rng.IntN(10))), Expires: w.keyExpiry()})
	}
	return ks
}

func (w *diffWorld) pickTok() tokPair {
	if len(w.toks) == 0 || w.rng.IntN(12) == 0 {
		return tokPair{"bogus", "bogus"}
	}
	// Mostly recent leases, sometimes old (stale) ones.
	if w.rng.IntN(3) > 0 {
		return w.toks[len(w.toks)-1-w.rng.IntN(min(4, len(w.toks)))]
	}
	return pick(w.rng, w.toks)
}

func (w *diffWorld) wallCut() time.Time {
	switch w.rng.IntN(4) {
	case 0:
		return time.Time{}
	case 1:
		return w.wall0.Add(-time.Hour)
	case 2:
		return time.Now().Add(time.Hour)
	}
	if len(w.marks) == 0 {
		return time.Time{}
	}
	return pick(w.rng, w.marks)
}

// errClass names an error for comparison.
func errClass(err error) string {
	for _, e := range []error{store.ErrDuplicate, store.ErrLeaseLost, store.ErrNotFound, store.ErrClosed} {
		if errors.Is(err, e) {
			return e.Error()
		}
	}
	if err != nil {
		return "other error"
	}
	return "nil"
}

func (w *diffWorld) sameErr(op int, what string, em, es error) bool {
	w.t.Helper()
	if errClass(em) != errClass(es) {
		w.fail(op, "%s: memory error %v, sqlite error %v", what, em, es)
		return false
	}
	return true
}

// normJob clears what legitimately differs: CreatedAt from each store's own
// wall clock (a revived job's CreatedAt is on the fake clock and compared).
func (w *diffWorld) normJob(j store.Job) store.Job {
	if d := j.CreatedAt.Sub(w.wall0); d > -24*time.Hour && d < 24*time.Hour {
		j.CreatedAt = time.Time{}
	}
	if len(j.Payload) == 0 {
		j.Payload = nil
	}
	return j
}

func (w *diffWorld) normJobs(js []store.Job) []store.Job {
	out := make([]store.Job, len(js))
	for i, j := range js {
		out[i] = w.normJob(j)
	}
	return out
}

func (w *diffWorld) sameLeases(op int, what string, lm, ls []store.Lease) {
	w.t.Helper()
	if len(lm) != len(ls) {
		w.fail(op, "%s: memory %s, sqlite %s", what, fmtLeases(lm), fmtLeases(ls))
		return
	}
	for i := range lm {
		if !reflect.DeepEqual(w.normJobs(lm[i].Jobs), w.normJobs(ls[i].Jobs)) {
			w.fail(op, "%s: lease %d: memory %s, sqlite %s", what, i, fmtLeases(lm), fmtLeases(ls))
			return
		}
		w.toks = append(w.toks, tokPair{lm[i].Token, ls[i].Token})
	}
}

func fmtLeases(ls []store.Lease) string {
	var parts []string
	for _, l := range ls {
		var ids []string
		for _, j := range l.Jobs {
			ids = append(ids, fmt.Sprintf("%d(a%d %s)", j.ID, j.Attempts, j.LeaseUntil.Format("15:04:05.000")))
		}
		parts = append(parts, "["+strings.Join(ids, " ")+"]")
	}
	return "{" + strings.Join(parts, " ") + "}"
}

func (w *diffWorld) step(op int) {
	r := w.rng
	m, s := w.m, w.s
	switch k := r.IntN(100); {
	case k < 6: // advance the fake clock
		d := time.Duration(r.IntN(90_000)) * time.Millisecond
		switch r.IntN(10) {
		case 0:
			d = time.Duration(r.IntN(10)) * time.Minute
		case 1:
			d = time.Duration(r.IntN(3000)) * time.Microsecond // sub-millisecond
		}
		w.now = w.now.Add(d)
		w.logf("%d: clock +%v", op, d)
	case k < 8: // a wall-clock mark for Sweep cutoffs
		time.Sleep(3 * time.Millisecond)
		w.marks = append(w.marks, time.Now())
		time.Sleep(3 * time.Millisecond)
		w.logf("%d: mark", op)
	case k < 20:
		var jobs []store.NewJob
		for range 1 + r.IntN(3) {
			j := w.newJob()
			if r.IntN(4) == 0 {
				j.Status = &store.Status{MID: pick(r, dMIDs), Value: fmt.Sprint("v", r.IntN(9)), Rank: r.IntN(5)}
			}
			if r.IntN(60) == 0 {
				j.Queue = ""
			}
			jobs = append(jobs, j)
		}
		ks := w.keys(2)
		w.logf("%d: Enqueue %s keys %s", op, fmtNewJobs(jobs), fmtKeys(ks))
		im, em := m.Enqueue(ctx, jobs, ks)
		is, es := s.Enqueue(ctx, jobs, ks)
		if w.sameErr(op, "Enqueue", em, es) && !slices.Equal(im, is) {
			w.fail(op, "Enqueue ids: memory %v, sqlite %v", im, is)
		}
	case k < 32:
		j := w.newJob()
		if r.IntN(40) == 0 {
			j.Status = &store.Status{MID: "m0", Value: "x", Rank: 1}
		}
		ks := w.keys(1)
		leaseFor := w.dur(2*time.Minute) + time.Second
		w.logf("%d: EnqueueLeased %s keys %s for %v", op, fmtNewJobs([]store.NewJob{j}), fmtKeys(ks), leaseFor)
		im, lm, em := m.EnqueueLeased(ctx, j, ks, w.now, leaseFor)
		is, ls, es := s.EnqueueLeased(ctx, j, ks, w.now, leaseFor)
		if !w.sameErr(op, "EnqueueLeased", em, es) {
			return
		}
		if im != is || (lm == nil) != (ls == nil) {
			w.fail(op, "EnqueueLeased: memory %d %v, sqlite %d %v", im, lm != nil, is, ls != nil)
			return
		}
		if lm != nil {
			w.sameLeases(op, "EnqueueLeased", []store.Lease{*lm}, []store.Lease{*ls})
			w.checkOneHolder(op, "memory", m, []store.Lease{*lm})
			w.checkOneHolder(op, "sqlite", s, []store.Lease{*ls})
		}
	case k < 50:
		req := store.LeaseRequest{Queue: pick(r, dQueues), Now: w.now, For: w.dur(3*time.Minute) + time.Second,
			Lanes: r.IntN(4), PerLane: r.IntN(5)}
		if r.IntN(4) == 0 {
			req.ChannelID = pick(r, dChannels)
		}
		w.logf("%d: Lease %s ch=%q lanes=%d per=%d for %v", op, req.Queue, req.ChannelID, req.Lanes, req.PerLane, req.For)
		lm, em := m.Lease(ctx, req)
		ls, es := s.Lease(ctx, req)
		if w.sameErr(op, "Lease", em, es) {
			w.sameLeases(op, "Lease", lm, ls)
		}
		w.checkOneHolder(op, "memory", m, lm)
		w.checkOneHolder(op, "sqlite", s, ls)
		w.logf("    -> %s", fmtLeases(lm))
	case k < 60:
		tp := w.pickTok()
		le := pick(r, []string{"", "e1"})
		w.logf("%d: Complete %s", op, w.tokName(tp))
		w.sameErr(op, "Complete", m.Complete(ctx, tp.m, le), s.Complete(ctx, tp.s, le))
	case k < 65:
		tp := w.pickTok()
		var follow []store.NewJob
		for range r.IntN(3) {
			j := w.newJob()
			if r.IntN(3) == 0 {
				j.Status = &store.Status{MID: pick(r, dMIDs), Value: "f", Rank: r.IntN(5)}
			}
			if r.IntN(30) == 0 { // a follow-up the store refuses
				j.Queue = ""
			}
			follow = append(follow, j)
		}
		w.logf("%d: CompleteWith %s follow %s", op, w.tokName(tp), fmtNewJobs(follow))
		w.sameErr(op, "CompleteWith", m.CompleteWith(ctx, tp.m, "cw", follow), s.CompleteWith(ctx, tp.s, "cw", follow))
	case k < 71:
		tp := w.pickTok()
		keep := r.IntN(4)
		w.logf("%d: Release %s keep %d", op, w.tokName(tp), keep)
		w.sameErr(op, "Release", m.Release(ctx, tp.m, keep), s.Release(ctx, tp.s, keep))
	case k < 77:
		tp := w.pickTok()
		var next time.Time
		switch r.IntN(4) {
		case 0:
		case 1:
			next = w.now.Add(-w.dur(time.Minute))
		default:
			next = w.now.Add(w.dur(3 * time.Minute))
		}
		w.logf("%d: Retry %s next %s", op, w.tokName(tp), next.Format("15:04:05.000"))
		w.sameErr(op, "Retry", m.Retry(ctx, tp.m, next, "r"), s.Retry(ctx, tp.s, next, "r"))
	case k < 81:
		tp := w.pickTok()
		w.logf("%d: Kill %s", op, w.tokName(tp))
		w.sameErr(op, "Kill", m.Kill(ctx, tp.m, "k"), s.Kill(ctx, tp.s, "k"))
	case k < 83:
		ids := w.someIDs()
		w.logf("%d: Revive %v", op, ids)
		nm, em := m.Revive(ctx, ids, w.now)
		ns, es := s.Revive(ctx, ids, w.now)
		if w.sameErr(op, "Revive", em, es) && nm != ns {
			w.fail(op, "Revive: memory %d, sqlite %d", nm, ns)
		}
	case k < 84:
		ids := w.someIDs()
		w.logf("%d: Drop %v", op, ids)
		nm, em := m.Drop(ctx, ids)
		ns, es := s.Drop(ctx, ids)
		if w.sameErr(op, "Drop", em, es) && nm != ns {
			w.fail(op, "Drop: memory %d, sqlite %d", nm, ns)
		}
	case k < 85:
		q := pick(r, []store.Queue{"", store.Outbound, store.Platform})
		w.logf("%d: Recover %q", op, q)
		nm, em := m.Recover(ctx, q, "rec")
		ns, es := s.Recover(ctx, q, "rec")
		if w.sameErr(op, "Recover", em, es) && nm != ns {
			w.fail(op, "Recover: memory %d, sqlite %d", nm, ns)
		}
	case k < 89:
		key := store.Key{Name: pick(r, dKeys), Value: []byte(fmt.Sprint(r.IntN(10))), Expires: w.keyExpiry()}
		w.logf("%d: RecordKey %s", op, fmtKeys([]store.Key{key}))
		km, em := m.RecordKey(ctx, key, w.now)
		ks, es := s.RecordKey(ctx, key, w.now)
		if w.sameErr(op, "RecordKey", em, es) && !reflect.DeepEqual(km, ks) {
			w.fail(op, "RecordKey: memory %+v, sqlite %+v", km, ks)
		}
	case k < 92:
		st := store.Status{MID: pick(r, dMIDs), Value: fmt.Sprint("v", r.IntN(9)), Rank: r.IntN(5)}
		w.logf("%d: AdvanceStatus %+v", op, st)
		am, em := m.AdvanceStatus(ctx, st)
		as, es := s.AdvanceStatus(ctx, st)
		if w.sameErr(op, "AdvanceStatus", em, es) && am != as {
			w.fail(op, "AdvanceStatus: memory %v, sqlite %v", am, as)
		}
	case k < 94:
		ns, key, val := pick(r, dNS), pick(r, dKeys), []byte(fmt.Sprint(r.IntN(10)))
		var exp time.Time
		switch r.IntN(4) {
		case 1:
			exp = time.Now().Add(-time.Hour)
		case 2:
			exp = time.Now().Add(time.Hour)
		case 3:
			exp = w.now.Add(w.dur(3 * time.Minute))
		}
		w.logf("%d: PutUntil %s/%s %v", op, ns, key, exp)
		w.sameErr(op, "PutUntil", m.PutUntil(ctx, ns, key, val, exp), s.PutUntil(ctx, ns, key, val, exp))
	case k < 95:
		md := store.Media{ID: pick(r, dMedia), FileName: "f", ContentType: "image/png", Size: r.Int64N(100),
			Path: "p", CreatedAt: w.now}
		if r.IntN(3) > 0 {
			md.Expires = w.now.Add(w.dur(3 * time.Minute))
		}
		w.logf("%d: PutMedia %s", op, md.ID)
		w.sameErr(op, "PutMedia", m.PutMedia(ctx, md), s.PutMedia(ctx, md))
	case k < 96:
		id := pick(r, dMedia)
		w.logf("%d: DeleteMedia %s", op, id)
		w.sameErr(op, "DeleteMedia", m.DeleteMedia(ctx, id), s.DeleteMedia(ctx, id))
		gm, em := m.GetMedia(ctx, id)
		gs, es := s.GetMedia(ctx, id)
		if w.sameErr(op, "GetMedia", em, es) && !reflect.DeepEqual(gm, gs) {
			w.fail(op, "GetMedia after DeleteMedia: memory %+v, sqlite %+v", gm, gs)
		}
	case k < 97:
		w.logf("%d: ExpiredMedia", op)
		mm, em := m.ExpiredMedia(ctx, w.now)
		ms, es := s.ExpiredMedia(ctx, w.now)
		if w.sameErr(op, "ExpiredMedia", em, es) && !reflect.DeepEqual(mm, ms) {
			w.fail(op, "ExpiredMedia: memory %+v, sqlite %+v", mm, ms)
		}
	case k < 99:
		req := store.SweepRequest{Now: w.now, DoneBefore: w.wallCut(), StatusBefore: w.wallCut()}
		w.logf("%d: Sweep done<%v status<%v", op, !req.DoneBefore.IsZero(), !req.StatusBefore.IsZero())
		w.sameErr(op, "Sweep", m.Sweep(ctx, req), s.Sweep(ctx, req))
	default:
		f := store.JobFilter{Limit: r.IntN(4)}
		if r.IntN(2) == 0 {
			f.Queue = pick(r, dQueues)
		}
		if r.IntN(2) == 0 {
			f.State = pick(r, []store.State{store.Pending, store.Leased, store.Done, store.Dead, "bogus"})
		}
		if r.IntN(2) == 0 {
			f.ChannelID = pick(r, dChannels)
		}
		w.logf("%d: Jobs %+v", op, f)
		jm, em := m.Jobs(ctx, f)
		js, es := s.Jobs(ctx, f)
		if w.sameErr(op, "Jobs", em, es) && !reflect.DeepEqual(w.normJobs(jm), w.normJobs(js)) {
			w.fail(op, "Jobs(%+v) differ", f)
		}
	}
}

func (w *diffWorld) tokName(tp tokPair) string {
	for i, x := range w.toks {
		if x == tp {
			return fmt.Sprint("lease#", i)
		}
	}
	return tp.m
}

func fmtNewJobs(js []store.NewJob) string {
	var parts []string
	for _, j := range js {
		s := fmt.Sprintf("%s/%s/%s %s", j.Queue, j.ChannelID, j.ContactID, j.MID)
		if !j.NotBefore.IsZero() {
			s += " nb=" + j.NotBefore.Format("15:04:05.000")
		}
		if j.Status != nil {
			s += fmt.Sprintf(" st=%d", j.Status.Rank)
		}
		parts = append(parts, s)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func fmtKeys(ks []store.Key) string {
	var parts []string
	for _, k := range ks {
		parts = append(parts, k.Name+"@"+k.Expires.Format("01-02 15:04:05"))
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// compareState compares everything a caller can read.
func (w *diffWorld) compareState(op int) {
	m, s := w.m, w.s
	jm, em := m.Jobs(ctx, store.JobFilter{})
	js, es := s.Jobs(ctx, store.JobFilter{})
	if !w.sameErr(op, "Jobs", em, es) {
		return
	}
	nm, ns := w.normJobs(jm), w.normJobs(js)
	if !reflect.DeepEqual(nm, ns) {
		for i := 0; i < max(len(nm), len(ns)); i++ {
			var a, b store.Job
			if i < len(nm) {
				a = nm[i]
			}
			if i < len(ns) {
				b = ns[i]
			}
			if !reflect.DeepEqual(a, b) {
				w.fail(op, "job table differs:\n  memory %+v\n  sqlite %+v", a, b)
				return
			}
		}
	}
	for _, j := range jm {
		w.maxID = max(w.maxID, j.ID)
	}
	if op%8 != 7 {
		// The job table (above) after every op; the rest now and then,
		// and RecordKey, AdvanceStatus, ExpiredMedia compare their answers.
		return
	}
	cm, em := m.Count(ctx)
	cs, es := s.Count(ctx)
	if w.sameErr(op, "Count", em, es) && !reflect.DeepEqual(cm, cs) {
		w.fail(op, "Count: memory %v, sqlite %v", cm, cs)
	}
	for _, name := range dKeys {
		km, em := m.LookupKey(ctx, name, w.now)
		ks, es := s.LookupKey(ctx, name, w.now)
		if w.sameErr(op, "LookupKey "+name, em, es) && !reflect.DeepEqual(km, ks) {
			w.fail(op, "LookupKey %s: memory %+v, sqlite %+v", name, km, ks)
		}
	}
	for _, mid := range dMIDs {
		sm, em := m.StatusOf(ctx, mid)
		ss, es := s.StatusOf(ctx, mid)
		if w.sameErr(op, "StatusOf "+mid, em, es) && sm != ss {
			w.fail(op, "StatusOf %s: memory %+v, sqlite %+v", mid, sm, ss)
		}
		for _, q := range dQueues {
			a, em := m.JobByMID(ctx, q, mid)
			b, es := s.JobByMID(ctx, q, mid)
			if w.sameErr(op, "JobByMID", em, es) && !reflect.DeepEqual(w.normJob(a), w.normJob(b)) {
				w.fail(op, "JobByMID(%s, %s): memory %d, sqlite %d", q, mid, a.ID, b.ID)
			}
		}
	}
	for _, ns := range dNS {
		for _, key := range dKeys {
			vm, em := m.Get(ctx, ns, key)
			vs, es := s.Get(ctx, ns, key)
			if w.sameErr(op, "Get", em, es) && !bytes.Equal(vm, vs) {
				w.fail(op, "Get %s/%s: memory %q, sqlite %q", ns, key, vm, vs)
			}
		}
	}
	for _, id := range dMedia {
		a, em := m.GetMedia(ctx, id)
		b, es := s.GetMedia(ctx, id)
		if w.sameErr(op, "GetMedia", em, es) && !reflect.DeepEqual(a, b) {
			w.fail(op, "GetMedia %s: memory %+v, sqlite %+v", id, a, b)
		}
	}
}

// checkOneHolder: the jobs just leased (ids) are the only live (unexpired)
// leased jobs of their lanes: a lane is never held by two leases at once.
func (w *diffWorld) checkOneHolder(op int, name string, st store.Store, ls []store.Lease) {
	w.t.Helper()
	all, err := st.Jobs(ctx, store.JobFilter{State: store.Leased})
	if err != nil {
		w.fail(op, "%s: Jobs: %v", name, err)
		return
	}
	type laneKey struct {
		q       store.Queue
		ch, con string
	}
	for _, l := range ls {
		mine := map[int64]bool{}
		for _, j := range l.Jobs {
			mine[j.ID] = true
		}
		lk := laneKey{l.Jobs[0].Queue, l.Jobs[0].ChannelID, l.Jobs[0].ContactID}
		for _, j := range all {
			if (laneKey{j.Queue, j.ChannelID, j.ContactID}) == lk && !mine[j.ID] && j.LeaseUntil.After(w.now) {
				w.fail(op, "%s: lease %s given while job %d of its lane is leased until %v", name, fmtLeases([]store.Lease{l}),
					j.ID, j.LeaseUntil.Format("15:04:05.000"))
			}
		}
	}
}

func fmtJobTable(js []store.Job) string {
	var b strings.Builder
	for _, j := range js {
		if j.State == store.Done {
			continue
		}
		fmt.Fprintf(&b, "  %3d %s/%s/%s %-7s a%d next=%s until=%s created=%s\n", j.ID, j.Queue, j.ChannelID, j.ContactID, j.State,
			j.Attempts, j.NextAt.Format("15:04:05.000"), j.LeaseUntil.Format("15:04:05.000"), j.CreatedAt.Format("01-02 15:04:05.000"))
	}
	return b.String()
}

// someIDs picks job IDs for Revive and Drop: none (every dead job) a third
// of the time, else one to three, missing ones included.
func (w *diffWorld) someIDs() []int64 {
	var ids []int64
	if w.rng.IntN(3) > 0 {
		for range 1 + w.rng.IntN(3) {
			ids = append(ids, 1+w.rng.Int64N(w.maxID+2))
		}
	}
	return ids
}
