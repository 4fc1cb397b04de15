package store_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bonychat/bonychat-adapter/store"
	"github.com/bonychat/bonychat-adapter/store/storetest"
)

// The writer runs the EnqueueLeased and Complete writes of a batch as one
// statement per kind; these tests hit that path with many concurrent
// writes, so that batches hold many of them, and check that every caller
// gets what one write after the other would have given it.

// TestSQLiteReturningIDs runs the behaviour suite with the batched inserts
// learning their IDs with RETURNING (the portable way) instead of SQLite's
// last insert rowid.
func TestSQLiteReturningIDs(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		path := filepath.Join(t.TempDir(), "adapter.db")
		t.Cleanup(func() { checkHeadMarks(t, path) })
		s := openSQLite(t, path)
		store.SetReturningIDs(s, true)
		return s
	})
}

func TestSQLiteBatchedEnqueueLeased(t *testing.T) {
	for _, returning := range []bool{false, true} {
		t.Run(fmt.Sprint("returning=", returning), func(t *testing.T) {
			s := openSQLite(t, filepath.Join(t.TempDir(), "adapter.db"))
			defer s.Close()
			store.SetReturningIDs(s, returning)
			testBatchedEnqueueLeased(t, s)
		})
	}
}

func testBatchedEnqueueLeased(t *testing.T, s *store.SQLite) {
	const lanes, perLane = 16, 12
	now := time.Now()
	c0, w0 := store.Commits(s)
	type result struct {
		lane, i int
		id      int64
		lease   *store.Lease
		err     error
	}
	results := make(chan result, lanes*perLane)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for l := range lanes {
		for i := range perLane {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				j := store.NewJob{Queue: store.Outbound, ChannelID: "ch", ContactID: fmt.Sprint("c", l),
					MID: fmt.Sprintf("m-%d-%d", l, i), Payload: []byte(fmt.Sprintf(`{"l":%d,"i":%d}`, l, i))}
				if i == perLane-1 {
					j.NotBefore = now.Add(time.Hour) // never leased at once
				}
				id, lease, err := s.EnqueueLeased(ctx, j, nil, now, time.Minute)
				results <- result{l, i, id, lease, err}
			}()
		}
	}
	close(start)
	wg.Wait()
	close(results)
	c1, w1 := store.Commits(s)
	t.Logf("%d writes in %d commits", w1-w0, c1-c0)

	seen := map[int64]bool{}
	leased := map[int][]result{}
	lowest := map[int]int64{}
	for r := range results {
		if r.err != nil {
			t.Fatalf("lane %d job %d: %v", r.lane, r.i, r.err)
		}
		if seen[r.id] {
			t.Fatalf("ID %d returned twice", r.id)
		}
		seen[r.id] = true
		if lo, ok := lowest[r.lane]; !ok || r.id < lo {
			lowest[r.lane] = r.id
		}
		// The returned ID is the stored job of this caller.
		j, err := s.Job(ctx, r.id)
		if err != nil {
			t.Fatalf("job %d: %v", r.id, err)
		}
		if want := fmt.Sprintf("m-%d-%d", r.lane, r.i); j.MID != want || j.ContactID != fmt.Sprint("c", r.lane) {
			t.Fatalf("ID %d returned to the caller of %s is job %s of %s", r.id, want, j.MID, j.ContactID)
		}
		if r.lease == nil {
			if j.State != store.Pending {
				t.Fatalf("job %d not leased to its caller is %s", r.id, j.State)
			}
			continue
		}
		if r.i == perLane-1 {
			t.Fatalf("job %d leased although not due", r.id)
		}
		lj := r.lease.Jobs
		if len(lj) != 1 || lj[0].ID != r.id || lj[0].MID != j.MID || lj[0].State != store.Leased || j.State != store.Leased ||
			lj[0].Attempts != 1 || j.Attempts != 1 || !lj[0].LeaseUntil.Equal(j.LeaseUntil) || string(lj[0].Payload) != string(j.Payload) {
			t.Fatalf("lease %+v of stored job %+v", r.lease, j)
		}
		leased[r.lane] = append(leased[r.lane], r)
	}
	nLeased := 0
	for l := range lanes {
		// Each lane was idle: its first job (the one before all others) is
		// leased to its caller if it is due, and no other job of the lane.
		first, err := s.Job(ctx, lowest[l])
		if err != nil {
			t.Fatal(err)
		}
		if !first.NextAt.After(now) {
			if len(leased[l]) != 1 || leased[l][0].id != lowest[l] {
				t.Fatalf("lane %d: leased %v, want its first job %d alone", l, leased[l], lowest[l])
			}
			nLeased++
		} else if len(leased[l]) != 0 {
			t.Fatalf("lane %d: leased %v behind its first job, which is not due", l, leased[l])
		}
	}
	counts, err := s.Count(ctx)
	if err != nil || counts[store.Leased] != nLeased || counts[store.Pending] != lanes*perLane-nLeased {
		t.Fatalf("Count %v, %v; want %d leased", counts, err, nLeased)
	}
}

func TestSQLiteBatchedComplete(t *testing.T) {
	s := openSQLite(t, filepath.Join(t.TempDir(), "adapter.db"))
	defer s.Close()
	now := time.Now()
	const n = 40
	var tokens []string
	var ids []int64
	for i := range n {
		id, l, err := s.EnqueueLeased(ctx, store.NewJob{Queue: store.Outbound, ChannelID: "ch", ContactID: fmt.Sprint(i)}, nil, now, time.Minute)
		if err != nil || l == nil {
			t.Fatalf("EnqueueLeased: %v %v", l, err)
		}
		tokens = append(tokens, l.Token)
		ids = append(ids, id)
	}
	// A PerLane lease: one token for several jobs.
	var platform []store.NewJob
	for i := range 3 {
		platform = append(platform, store.NewJob{Queue: store.Platform, ChannelID: "ch", ContactID: "p", MID: fmt.Sprint(i)})
	}
	if _, err := s.Enqueue(ctx, platform, nil); err != nil {
		t.Fatal(err)
	}
	ls, err := s.Lease(ctx, store.LeaseRequest{Queue: store.Platform, Now: now, For: time.Minute, Lanes: 1, PerLane: 5})
	if err != nil || len(ls) != 1 || len(ls[0].Jobs) != 3 {
		t.Fatalf("Lease: %+v %v", ls, err)
	}
	multi := ls[0].Token

	for round, bogus := range []string{"no-such-token", "1-" + strings.Repeat("0", 32)} {
		// Every token twice (the second finds it done), the multi-job
		// token twice, a bogus token of either form, all at once; half
		// the tokens with an error text.
		type call struct {
			token, lastError string
		}
		var calls []call
		if round == 0 {
			for i, tk := range tokens[:n/2] {
				calls = append(calls, call{tk, ""}, call{tk, ""})
				if i%2 == 0 {
					calls[len(calls)-1].lastError = "boom"
				}
			}
			calls = append(calls, call{multi, ""}, call{multi, ""})
		} else {
			for _, tk := range tokens[n/2:] {
				calls = append(calls, call{tk, "x"}, call{tk, ""})
			}
		}
		calls = append(calls, call{bogus, ""})
		errs := make([]error, len(calls))
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i, c := range calls {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				errs[i] = s.Complete(ctx, c.token, c.lastError)
			}()
		}
		close(start)
		wg.Wait()
		ok := map[string]int{}
		for i, c := range calls {
			switch {
			case errs[i] == nil:
				ok[c.token]++
			case !errors.Is(errs[i], store.ErrLeaseLost):
				t.Fatalf("Complete(%q): %v", c.token, errs[i])
			}
		}
		for _, c := range calls {
			want := 1
			if c.token == bogus {
				want = 0
			}
			if ok[c.token] != want {
				t.Fatalf("round %d: token %q completed %d times, want %d", round, c.token, ok[c.token], want)
			}
		}
	}
	t.Logf("%d batches ran again write by write", store.Isolated(s))
	for _, id := range ids {
		if j, err := s.Job(ctx, id); err != nil || j.State != store.Done {
			t.Fatalf("job %d: %+v %v", id, j, err)
		}
	}
	for _, j := range ls[0].Jobs {
		if got, err := s.Job(ctx, j.ID); err != nil || got.State != store.Done {
			t.Fatalf("platform job %d: %+v %v", j.ID, got, err)
		}
	}
}

// TestSQLiteBatchWithFailingWrite: a write failing inside SQLite in a batch
// of hot-path writes is undone alone; the others are stored.
func TestSQLiteBatchWithFailingWrite(t *testing.T) {
	s := openSQLite(t, filepath.Join(t.TempDir(), "adapter.db"))
	defer s.Close()
	now := time.Now()
	for round := range 5 {
		const n = 30
		var tokens []string
		for i := range n {
			_, l, err := s.EnqueueLeased(ctx, store.NewJob{Queue: store.Outbound, ChannelID: "ch", ContactID: fmt.Sprint(round, "-", i)}, nil, now, time.Minute)
			if err != nil || l == nil {
				t.Fatalf("EnqueueLeased: %v %v", l, err)
			}
			tokens = append(tokens, l.Token)
		}
		start := make(chan struct{})
		var wg sync.WaitGroup
		var failErr error
		completeErrs := make([]error, n)
		enqErrs := make([]error, n)
		enqIDs := make([]int64, n)
		wg.Add(1 + 2*n)
		go func() {
			defer wg.Done()
			<-start
			failErr = store.FailingWrite(s)
		}()
		for i := range n {
			go func() {
				defer wg.Done()
				<-start
				completeErrs[i] = s.Complete(ctx, tokens[i], "")
			}()
			go func() {
				defer wg.Done()
				<-start
				enqIDs[i], _, enqErrs[i] = s.EnqueueLeased(ctx, store.NewJob{Queue: store.Outbound, ChannelID: "ch",
					ContactID: fmt.Sprint(round, "-", i), MID: fmt.Sprint(round, "-", i)}, nil, now, time.Minute)
			}()
		}
		close(start)
		wg.Wait()
		if failErr == nil {
			t.Fatal("the failing write succeeded")
		}
		if _, err := s.Get(ctx, "failing-write", "k"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("the failing write was not undone: %v", err)
		}
		for i := range n {
			if completeErrs[i] != nil {
				t.Fatalf("Complete beside a failing write: %v", completeErrs[i])
			}
			if enqErrs[i] != nil {
				t.Fatalf("EnqueueLeased beside a failing write: %v", enqErrs[i])
			}
			if j, err := s.Job(ctx, enqIDs[i]); err != nil || j.MID != fmt.Sprint(round, "-", i) {
				t.Fatalf("job %d: %+v %v", enqIDs[i], j, err)
			}
		}
	}
	if store.Isolated(s) == 0 {
		t.Fatal("no batch ran again write by write")
	}
}
