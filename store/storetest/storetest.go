// Package storetest is the behaviour suite every store.Store must pass:
//
//	func TestMyStore(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { return openMine(t) })
//	}
//
// open is called once per subtest and must return an empty store; Run
// closes it when the subtest ends.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bonychat/bonychat-adapter/store"
)

// Run runs the behaviour suite against stores made by open.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"EnqueueLeaseComplete", testEnqueueLeaseComplete},
		{"EnqueueLeasedTakesAnIdleLaneOnly", testEnqueueLeased},
		{"CompleteWithEnqueuesTheFollowUp", testCompleteWith},
		{"ConcurrentEnqueueLeasedLeasesAnIdleLaneOnce", testEnqueueLeasedRace},
		{"CompleteWithIsOneStep", testCompleteWithOneStep},
		{"LaneOrder", testLaneOrder},
		{"LanesInParallel", testLanesInParallel},
		{"LanesLimitOldestHeadFirst", testLanesLimit},
		{"ChannelFilter", testChannelFilter},
		{"PerLaneBatch", testPerLaneBatch},
		{"ReleaseShortensABatch", testRelease},
		{"NotBefore", testNotBefore},
		{"LeaseExpiry", testLeaseExpiry},
		{"ExpiredLeaseStillCompletable", testExpiredLeaseCompletable},
		{"RetrySchedule", testRetrySchedule},
		{"DeadAndRevive", testDeadAndRevive},
		{"DropDeletesOnlyDeadJobs", testDropDeletesOnlyDead},
		{"RevivedJobGoesBeforeLaterOnes", testReviveBeforeLater},
		{"RevivedJobWaitsForItsLanesLease", testReviveWhileLeased},
		{"ExpiredBatchIsTakenOverWhole", testExpiredBatchTakenOver},
		{"RevivedJobRunsFirstWhenAnExpiredLeaseIsTakenOver", testReviveThenExpiry},
		{"ATakenOverLaneWhoseFirstJobIsNotDueGivesNoLease", testReviveForLaterThenExpiry},
		{"RevivedJobsRunInIDOrderAfterARetry", testReviveThenRetry},
		{"ReleaseKeepsTheFirstJobsOfARevivedLane", testReviveThenRelease},
		{"NotBeforeBefore1970IsDue", testNotBeforeBefore1970},
		{"RecoverRestartsEveryLaneFromItsFirstJob", testRecoverRestartsLanes},
		{"ManyWaitingJobsDoNotHideAReadyLane", testWaitingJobsDoNotHide},
		{"Recover", testRecover},
		{"JobsFilter", testJobsFilter},
		{"JobByMID", testJobByMID},
		{"DedupeWindow", testDedupeWindow},
		{"RecordKeyLookupKey", testRecordKey},
		{"AdvanceStatusOnlyForward", testAdvanceStatus},
		{"AJobsStatusIsRecordedWithIt", testJobStatus},
		{"PutGet", testPutGet},
		{"Media", testMedia},
		{"DeleteMedia", testDeleteMedia},
		{"FailedWritesThatStoredNothingSaySo", testNotStored},
		{"Sweep", testSweep},
		{"RecordsExpireAndAreSwept", testRecordExpiry},
		{"OldStatusesAreSwept", testStatusSweep},
		{"SweepDeletesMoreThanOneChunk", testSweepManyChunks},
		{"LeaseLostBogusToken", testBogusToken},
		{"ConcurrentWorkersNeverRunAJobTwice", testConcurrentWorkers},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tc.fn(t, s)
		})
	}
}

var ctx = context.Background()

// base is the Now the tests lease at; jobs without NotBefore are due at any time.
func base() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

func job(q store.Queue, channel, contact, mid string) store.NewJob {
	return store.NewJob{Queue: q, ChannelID: channel, ContactID: contact, MID: mid, Payload: []byte(`{"mId":"` + mid + `"}`)}
}

func enqueue(t *testing.T, s store.Store, jobs ...store.NewJob) []int64 {
	t.Helper()
	ids, err := s.Enqueue(ctx, jobs, nil)
	if err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	if len(ids) != len(jobs) {
		t.Fatalf("Enqueue returned %d ids for %d jobs", len(ids), len(jobs))
	}
	return ids
}

func lease(t *testing.T, s store.Store, req store.LeaseRequest) []store.Lease {
	t.Helper()
	if req.For == 0 {
		req.For = time.Minute
	}
	if req.Lanes == 0 {
		req.Lanes = 10
	}
	if req.PerLane == 0 {
		req.PerLane = 1
	}
	ls, err := s.Lease(ctx, req)
	if err != nil {
		t.Fatalf("Lease: %v", err)
	}
	seen := map[string]bool{}
	for _, l := range ls {
		if len(l.Token) < 32 {
			t.Fatalf("lease token %q is shorter than 128 bits of hex", l.Token)
		}
		if seen[l.Token] {
			t.Fatalf("two leases share token %q", l.Token)
		}
		seen[l.Token] = true
		if len(l.Jobs) == 0 {
			t.Fatalf("lease %s has no jobs", l.Token)
		}
		for _, j := range l.Jobs {
			if j.State != store.Leased {
				t.Fatalf("leased job %d has state %q", j.ID, j.State)
			}
		}
	}
	return ls
}

// ids lists the job IDs of leases, lease by lease.
func ids(ls []store.Lease) [][]int64 {
	var out [][]int64
	for _, l := range ls {
		var x []int64
		for _, j := range l.Jobs {
			x = append(x, j.ID)
		}
		out = append(out, x)
	}
	return out
}

func wantIDs(t *testing.T, what string, ls []store.Lease, want ...[]int64) {
	t.Helper()
	got := ids(ls)
	if len(want) == 0 && len(got) == 0 {
		return
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("%s: leased %v, want %v", what, got, want)
	}
}

func getJob(t *testing.T, s store.Store, id int64) store.Job {
	t.Helper()
	j, err := s.Job(ctx, id)
	if err != nil {
		t.Fatalf("Job(%d): %v", id, err)
	}
	return j
}

func wantState(t *testing.T, s store.Store, id int64, st store.State) store.Job {
	t.Helper()
	j := getJob(t, s, id)
	if j.State != st {
		t.Fatalf("job %d: state %q, want %q", id, j.State, st)
	}
	return j
}

func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: error %v, want %v", what, err, want)
	}
}

func testEnqueueLeaseComplete(t *testing.T, s store.Store) {
	before := time.Now().Add(-time.Second)
	nj := job(store.Outbound, "ch1", "c1", "m1")
	id := enqueue(t, s, nj)[0]
	j := wantState(t, s, id, store.Pending)
	if j.Queue != store.Outbound || j.ChannelID != "ch1" || j.ContactID != "c1" || j.MID != "m1" ||
		!bytes.Equal(j.Payload, nj.Payload) || j.Attempts != 0 {
		t.Fatalf("stored job %+v does not match %+v", j, nj)
	}
	if j.CreatedAt.Before(before) || j.CreatedAt.After(time.Now().Add(time.Second)) || j.CreatedAt.Location() != time.UTC {
		t.Fatalf("CreatedAt %v is not the UTC time of the enqueue", j.CreatedAt)
	}

	now := base()
	ls := lease(t, s, store.LeaseRequest{Queue: store.Outbound, Now: now, For: time.Minute})
	wantIDs(t, "lease", ls, []int64{id})
	lj := ls[0].Jobs[0]
	if lj.Attempts != 1 || !lj.LeaseUntil.Equal(now.Add(time.Minute)) || !bytes.Equal(lj.Payload, nj.Payload) {
		t.Fatalf("leased job %+v: want attempts 1, lease until %v, the payload", lj, now.Add(time.Minute))
	}
	j = wantState(t, s, id, store.Leased)
	if j.Attempts != 1 || !j.LeaseUntil.Equal(now.Add(time.Minute)) {
		t.Fatalf("stored leased job %+v", j)
	}
	// The other queue has nothing.
	wantIDs(t, "platform", lease(t, s, store.LeaseRequest{Queue: store.Platform, Now: now}))
	// Leased: nothing more to lease.
	wantIDs(t, "again", lease(t, s, store.LeaseRequest{Queue: store.Outbound, Now: now}))

	must(t, "Complete", s.Complete(ctx, ls[0].Token, "delivered late"))
	j = wantState(t, s, id, store.Done)
	if j.LastError != "delivered late" {
		t.Fatalf("LastError %q", j.LastError)
	}
	wantErr(t, "second Complete", s.Complete(ctx, ls[0].Token, ""), store.ErrLeaseLost)
	wantErr(t, "Retry after Complete", s.Retry(ctx, ls[0].Token, now, ""), store.ErrLeaseLost)
	wantErr(t, "Kill after Complete", s.Kill(ctx, ls[0].Token, ""), store.ErrLeaseLost)
	wantIDs(t, "after complete", lease(t, s, store.LeaseRequest{Queue: store.Outbound, Now: now}))
	_, err := s.Job(ctx, id+1000)
	wantErr(t, "Job(missing)", err, store.ErrNotFound)
	must(t, "Ping", s.Ping(ctx))
}

func testLaneOrder(t *testing.T, s store.Store) {
	now := base()
	in := enqueue(t, s,
		job(store.Outbound, "ch", "c", "1"), job(store.Outbound, "ch", "c", "2"),
		job(store.Outbound, "ch", "c", "3"), job(store.Outbound, "ch", "c", "4"))
	if !slices.IsSorted(in) || in[0] == in[1] {
		t.Fatalf("ids %v are not increasing", in)
	}
	req := store.LeaseRequest{Queue: store.Outbound, Now: now, For: time.Minute}

	// Job 1 leased: job 2 is not leasable.
	l1 := lease(t, s, req)
	wantIDs(t, "first", l1, []int64{in[0]})
	wantIDs(t, "while 1 leased", lease(t, s, req))

	// Retry in the future: 1 is pending but not due, and it blocks 2.
	must(t, "Retry", s.Retry(ctx, l1[0].Token, now.Add(time.Minute), "try later"))
	wantState(t, s, in[0], store.Pending)
	wantIDs(t, "while 1 pending, not due", lease(t, s, req))
	wantIDs(t, "still before due", lease(t, s, store.LeaseRequest{Queue: store.Outbound, Now: now.Add(59 * time.Second)}))

	// Due: 1 again, not 2.
	later := now.Add(time.Minute)
	l1 = lease(t, s, store.LeaseRequest{Queue: store.Outbound, Now: later})
	wantIDs(t, "1 due", l1, []int64{in[0]})
	must(t, "Complete 1", s.Complete(ctx, l1[0].Token, ""))

	// 2 after 1 is done.
	l2 := lease(t, s, store.LeaseRequest{Queue: store.Outbound, Now: later})
	wantIDs(t, "after 1 done", l2, []int64{in[1]})
	wantIDs(t, "while 2 leased", lease(t, s, store.LeaseRequest{Queue: store.Outbound, Now: later}))

	// Kill unblocks the lane.
	must(t, "Kill 2", s.Kill(ctx, l2[0].Token, "hopeless"))
	l3 := lease(t, s, store.LeaseRequest{Queue: store.Outbound, Now: later})
	wantIDs(t, "after 2 dead", l3, []int64{in[2]})
	must(t, "Complete 3", s.Complete(ctx, l3[0].Token, ""))
	l4 := lease(t, s, store.LeaseRequest{Queue: store.Outbound, Now: later})
	wantIDs(t, "4", l4, []int64{in[3]})
}

func testLanesInParallel(t *testing.T, s store.Store) {
	now := base()
	in := enqueue(t, s,
		job(store.Outbound, "ch", "a", "a1"), job(store.Outbound, "ch", "a", "a2"),
		job(store.Outbound, "ch", "b", "b1"), job(store.Outbound, "ch2", "a", "x1"),
		job(store.Platform, "ch", "a", "p1"), job(store.Outbound, "ch", "b", "b2"))
	ls := lease(t, s, store.LeaseRequest{Queue: store.Outbound, Now: now, Lanes: 10})
	// One job per lane, oldest head first; the platform lane is another queue.
	wantIDs(t, "three lanes", ls, []int64{in[0]}, []int64{in[2]}, []int64{in[3]})
	wantIDs(t, "all busy", lease(t, s, store.LeaseRequest{Queue: store.Outbound, Now: now}))
	pl := lease(t, s, store.LeaseRequest{Queue: store.Platform, Now: now})
	wantIDs(t, "platform lane", pl, []int64{in[4]})

	// Finishing lane b lets its next job go while lane a stays blocked.
	must(t, "Complete b1", s.Complete(ctx, ls[1].Token, ""))
	wantIDs(t, "b2", lease(t, s, store.LeaseRequest{Queue: store.Outbound, Now: now}), []int64{in[5]})
}

func testLanesLimit(t *testing.T, s store.Store) {
	now := base()
	in := enqueue(t, s,
		job(store.Outbound, "ch", "a", "a1"), job(store.Outbound, "ch", "b", "b1"),
		job(store.Outbound, "ch", "c", "c1"), job(store.Outbound, "ch", "a", "a2"))
	wantIDs(t, "two oldest lanes", lease(t, s, store.LeaseRequest{Queue: store.Outbound, Now: now, Lanes: 2}),
		[]int64{in[0]}, []int64{in[1]})
	wantIDs(t, "the third", lease(t, s, store.LeaseRequest{Queue: store.Outbound, Now: now, Lanes: 2}),
		[]int64{in[2]})
}

func testChannelFilter(t *testing.T, s store.Store) {
	now := base()
	in := enqueue(t, s,
		job(store.Outbound, "ch1", "a", "1"), job(store.Outbound, "ch2", "a", "2"), job(store.Outbound, "ch2", "b", "3"))
	wantIDs(t, "ch2 only", lease(t, s, store.LeaseRequest{Queue: store.Outbound, Now: now, ChannelID: "ch2"}),
		[]int64{in[1]}, []int64{in[2]})
	wantIDs(t, "ch3 empty", lease(t, s, store.LeaseRequest{Queue: store.Outbound, Now: now, ChannelID: "ch3"}))
	wantIDs(t, "rest", lease(t, s, store.LeaseRequest{Queue: store.Outbound, Now: now}), []int64{in[0]})
}

func testPerLaneBatch(t *testing.T, s store.Store) {
	now := base()
	var jobs []store.NewJob
	for i := range 5 {
		jobs = append(jobs, job(store.Platform, "ch", "c", fmt.Sprint("e", i)))
	}
	in := enqueue(t, s, jobs...)
	other := enqueue(t, s, job(store.Platform, "ch", "d", "d1"))[0]

	req := store.LeaseRequest{Queue: store.Platform, Now: now, For: time.Minute, Lanes: 10, PerLane: 3}
	ls := lease(t, s, req)
	wantIDs(t, "first batch", ls, in[:3], []int64{other})
	wantIDs(t, "lanes busy", lease(t, s, req))
	for _, j := range ls[0].Jobs {
		if j.Attempts != 1 || !j.LeaseUntil.Equal(now.Add(time.Minute)) {
			t.Fatalf("batched job %+v", j)
		}
	}
	must(t, "Complete batch", s.Complete(ctx, ls[0].Token, ""))
	must(t, "Complete lane d", s.Complete(ctx, ls[1].Token, ""))
	for _, id := range in[:3] {
		wantState(t, s, id, store.Done)
	}
	ls = lease(t, s, req)
	wantIDs(t, "second batch", ls, in[3:])
	must(t, "Complete rest", s.Complete(ctx, ls[0].Token, ""))

	// A batch stops at the first job that is not due.
	in = enqueue(t, s,
		job(store.Platform, "ch", "e", "e1"), job(store.Platform, "ch", "e", "e2"),
		store.NewJob{Queue: store.Platform, ChannelID: "ch", ContactID: "e", MID: "e3", NotBefore: now.Add(time.Hour)},
		job(store.Platform, "ch", "e", "e4"))
	req.PerLane = 20
	ls = lease(t, s, req)
	wantIDs(t, "stops before the job not due", ls, in[:2])
	must(t, "Complete e1, e2", s.Complete(ctx, ls[0].Token, ""))
	wantIDs(t, "e3 not due blocks e4", lease(t, s, req))
	req.Now = now.Add(time.Hour)
	wantIDs(t, "e3 and e4", lease(t, s, req), in[2:])
}

// testRelease: a lease shortened to its first jobs holds only those; the
// rest wait behind them in their lane, and come next, in order.
func testRelease(t *testing.T, s store.Store) {
	now := base()
	var jobs []store.NewJob
	for i := range 5 {
		jobs = append(jobs, job(store.Platform, "ch", "a", fmt.Sprint(i)))
	}
	in := enqueue(t, s, jobs...)
	req := store.LeaseRequest{Queue: store.Platform, Now: now, PerLane: 20}
	ls := lease(t, s, req)
	wantIDs(t, "the batch", ls, in)
	if err := s.Release(ctx, ls[0].Token, 0); err == nil {
		t.Fatal("Release keeping no job did not fail")
	}
	must(t, "Release", s.Release(ctx, ls[0].Token, 2))
	must(t, "Release keeping more than held", s.Release(ctx, ls[0].Token, 9))
	for i, id := range in {
		want := store.Pending
		if i < 2 {
			want = store.Leased
		}
		wantState(t, s, id, want)
	}
	wantIDs(t, "nothing while the lane's lease is held", lease(t, s, req))
	must(t, "Kill the kept", s.Kill(ctx, ls[0].Token, "refused"))
	wantState(t, s, in[0], store.Dead)
	wantState(t, s, in[2], store.Pending)
	wantIDs(t, "the released ones next, in order", lease(t, s, req), in[2:])
	wantErr(t, "Release of a bogus token", s.Release(ctx, "no-such-token", 1), store.ErrLeaseLost)
}

func testNotBefore(t *testing.T, s store.Store) {
	now := base()
	at := now.Add(10 * time.Minute)
	in := enqueue(t, s,
		store.NewJob{Queue: store.Outbound, ChannelID: "ch", ContactID: "c", MID: "late", NotBefore: at},
		job(store.Outbound, "ch", "c", "after"))
	if j := getJob(t, s, in[0]); !j.NextAt.Equal(at) {
		t.Fatalf("NextAt %v, want %v", j.NextAt, at)
	}
	wantIDs(t, "not yet", lease(t, s, store.LeaseRequest{Queue: store.Outbound, Now: now}))
	wantIDs(t, "1ms before", lease(t, s, store.LeaseRequest{Queue: store.Outbound, Now: at.Add(-time.Millisecond)}))
	wantIDs(t, "at NotBefore", lease(t, s, store.LeaseRequest{Queue: store.Outbound, Now: at}), []int64{in[0]})
}

func testLeaseExpiry(t *testing.T, s store.Store) {
	now := base()
	id := enqueue(t, s, job(store.Outbound, "ch", "c", "m"))[0]
	old := lease(t, s, store.LeaseRequest{Queue: store.Outbound, Now: now, For: time.Minute})
	wantIDs(t, "first", old, []int64{id})
	wantIDs(t, "before expiry", lease(t, s, store.LeaseRequest{Queue: store.Outbound, Now: now.Add(59 * time.Second)}))
	again := lease(t, s, store.LeaseRequest{Queue: store.Outbound, Now: now.Add(time.Minute), For: time.Minute})
	wantIDs(t, "after expiry", again, []int64{id})
	if again[0].Token == old[0].Token {
		t.Fatal("re-lease kept the old token")
	}
	if j := again[0].Jobs[0]; j.Attempts != 2 || !j.LeaseUntil.Equal(now.Add(2*time.Minute)) {
		t.Fatalf("re-leased job %+v: want attempts 2, lease until %v", j, now.Add(2*time.Minute))
	}
	wantErr(t, "Complete with the old token", s.Complete(ctx, old[0].Token, ""), store.ErrLeaseLost)
	wantErr(t, "Retry with the old token", s.Retry(ctx, old[0].Token, now, ""), store.ErrLeaseLost)
	wantErr(t, "Kill with the old token", s.Kill(ctx, old[0].Token, ""), store.ErrLeaseLost)
	wantState(t, s, id, store.Leased)
	must(t, "Complete with the new token", s.Complete(ctx, again[0].Token, ""))
	wantState(t, s, id, store.Done)

	// An expired batch is re-leased whole.
	in := enqueue(t, s, job(store.Platform, "ch", "c", "1"), job(store.Platform, "ch", "c", "2"))
	b := lease(t, s, store.LeaseRequest{Queue: store.Platform, Now: now, For: time.Minute, PerLane: 5})
	wantIDs(t, "batch", b, in)
	b2 := lease(t, s, store.LeaseRequest{Queue: store.Platform, Now: now.Add(2 * time.Minute), For: time.Minute, PerLane: 5})
	wantIDs(t, "expired batch", b2, in)
	wantErr(t, "old batch token", s.Complete(ctx, b[0].Token, ""), store.ErrLeaseLost)
	must(t, "Complete batch", s.Complete(ctx, b2[0].Token, ""))
}

func testExpiredLeaseCompletable(t *testing.T, s store.Store) {
	now := base()
	id := enqueue(t, s, job(store.Outbound, "ch", "c", "m"))[0]
	l := lease(t, s, store.LeaseRequest{Queue: store.Outbound, Now: now, For: time.Second})
	wantIDs(t, "lease", l, []int64{id})
	// The lease has expired (by the clock of the test) but nobody took it over.
	must(t, "Complete after expiry", s.Complete(ctx, l[0].Token, ""))
	wantState(t, s, id, store.Done)
	wantIDs(t, "nothing left", lease(t, s, store.LeaseRequest{Queue: store.Outbound, Now: now.Add(time.Hour)}))
}

func testRetrySchedule(t *testing.T, s store.Store) {
	now := base()
	id := enqueue(t, s, job(store.Outbound, "ch", "c", "m"))[0]
	at := now
	for attempt := 1; attempt <= 3; attempt++ {
		l := lease(t, s, store.LeaseRequest{Queue: store.Outbound, Now: at})
		wantIDs(t, fmt.Sprint("attempt ", attempt), l, []int64{id})
		if got := l[0].Jobs[0].Attempts; got != attempt {
			t.Fatalf("attempt %d: Attempts %d", attempt, got)
		}
		next := at.Add(time.Duration(attempt) * time.Minute)
		must(t, "Retry", s.Retry(ctx, l[0].Token, next, fmt.Sprint("failure ", attempt)))
		j := wantState(t, s, id, store.Pending)
		if !j.NextAt.Equal(next) || j.LastError != fmt.Sprint("failure ", attempt) || j.Attempts != attempt {
			t.Fatalf("after retry %d: %+v, want next %v", attempt, j, next)
		}
		wantIDs(t, "not due", lease(t, s, store.LeaseRequest{Queue: store.Outbound, Now: next.Add(-time.Millisecond)}))
		at = next
	}
	l := lease(t, s, store.LeaseRequest{Queue: store.Outbound, Now: at})
	if l[0].Jobs[0].Attempts != 4 || l[0].Jobs[0].LastError != "failure 3" {
		t.Fatalf("fourth lease: %+v", l[0].Jobs[0])
	}
	must(t, "Complete", s.Complete(ctx, l[0].Token, ""))
	if j := wantState(t, s, id, store.Done); j.Attempts != 4 {
		t.Fatalf("Attempts %d after 4 leases", j.Attempts)
	}
}

// testReviveBeforeLater: a revived job is its lane's first again, ahead of
// the jobs enqueued after it, and the lane goes on with those afterwards.
func testReviveBeforeLater(t *testing.T, s store.Store) {
	now := base()
	in := enqueue(t, s, job(store.Outbound, "ch", "a", "1"), job(store.Outbound, "ch", "a", "2"), job(store.Outbound, "ch", "a", "3"))
	ls := lease(t, s, store.LeaseRequest{Queue: store.Outbound, Now: now})
	wantIDs(t, "first", ls, []int64{in[0]})
	must(t, "Kill 1", s.Kill(ctx, ls[0].Token, "rejected"))
	ls = lease(t, s, store.LeaseRequest{Queue: store.Outbound, Now: now})
	wantIDs(t, "the lane goes on after a dead job", ls, []int64{in[1]})
	must(t, "Complete 2", s.Complete(ctx, ls[0].Token, ""))

	n, err := s.Revive(ctx, []int64{in[0]}, now)
	if err != nil || n != 1 {
		t.Fatalf("Revive: %d, %v", n, err)
	}
	ls = lease(t, s, store.LeaseRequest{Queue: store.Outbound, Now: now})
	wantIDs(t, "revived before the later job", ls, []int64{in[0]})
	wantIDs(t, "the later job waits", lease(t, s, store.LeaseRequest{Queue: store.Outbound, Now: now}))
	must(t, "Complete 1", s.Complete(ctx, ls[0].Token, ""))
	wantIDs(t, "then the later job", lease(t, s, store.LeaseRequest{Queue: store.Outbound, Now: now}), []int64{in[2]})
}

// testReviveWhileLeased: a job revived while a later job of its lane is
// leased (a post in flight when the operator runs "jobs retry") does not
// make a second lease in the lane; it runs as soon as that lease ends,
// before the jobs behind it. Revived by ID, and as every dead job.
func testReviveWhileLeased(t *testing.T, s store.Store) {
	for _, all := range []bool{false, true} {
		now := base()
		contact := fmt.Sprintf("revive-all-%v", all)
		in := enqueue(t, s, job(store.Platform, "ch", contact, "1"), job(store.Platform, "ch", contact, "2"),
			job(store.Platform, "ch", contact, "3"))
		req := store.LeaseRequest{Queue: store.Platform, Now: now, PerLane: 1}
		ls := lease(t, s, req)
		wantIDs(t, "first", ls, []int64{in[0]})
		must(t, "Kill 1", s.Kill(ctx, ls[0].Token, "rejected"))
		inFlight := lease(t, s, req)
		wantIDs(t, "the lane goes on after a dead job", inFlight, []int64{in[1]})

		revive := []int64{in[0]}
		if all {
			revive = nil
		}
		if n, err := s.Revive(ctx, revive, now); err != nil || n != 1 {
			t.Fatalf("Revive %v: %d, %v", revive, n, err)
		}
		wantIDs(t, "no second lease while the lane's lease is held", lease(t, s, req))
		wantState(t, s, in[1], store.Leased)
		must(t, "Complete 2", s.Complete(ctx, inFlight[0].Token, ""))
		ls = lease(t, s, req)
		wantIDs(t, "the revived job runs next", ls, []int64{in[0]})
		must(t, "Complete 1", s.Complete(ctx, ls[0].Token, ""))
		ls = lease(t, s, req)
		wantIDs(t, "then the later job", ls, []int64{in[2]})
		must(t, "Complete 3", s.Complete(ctx, ls[0].Token, ""))
	}
}

// deadFirst enqueues n jobs in one lane and kills the first, as a refused
// event dies; it returns their IDs and leaves the lane going on with the
// second.
func deadFirst(t *testing.T, s store.Store, n int, now time.Time) []int64 {
	t.Helper()
	var jobs []store.NewJob
	for i := range n {
		jobs = append(jobs, job(store.Platform, "ch", "c", fmt.Sprint(i+1)))
	}
	in := enqueue(t, s, jobs...)
	ls := lease(t, s, store.LeaseRequest{Queue: store.Platform, Now: now})
	wantIDs(t, "first", ls, []int64{in[0]})
	must(t, "Kill 1", s.Kill(ctx, ls[0].Token, "rejected"))
	return in
}

// testExpiredBatchTakenOver: a Lease that takes over an expired batch
// lease, even only its first job (a smaller PerLane), ends that lease
// whole: its holder can complete none of its jobs (ErrLeaseLost) and the
// rest are pending again, behind the taken one.
func testExpiredBatchTakenOver(t *testing.T, s store.Store) {
	now := base()
	in := enqueue(t, s, job(store.Platform, "ch", "c", "1"), job(store.Platform, "ch", "c", "2"))
	a := lease(t, s, store.LeaseRequest{Queue: store.Platform, Now: now, PerLane: 2})
	wantIDs(t, "batch", a, in)
	later := now.Add(2 * time.Minute)
	b := lease(t, s, store.LeaseRequest{Queue: store.Platform, Now: later, PerLane: 1})
	wantIDs(t, "take-over of the first job", b, []int64{in[0]})
	wantErr(t, "Complete of the taken-over batch", s.Complete(ctx, a[0].Token, ""), store.ErrLeaseLost)
	wantState(t, s, in[1], store.Pending)
	wantIDs(t, "the lane is held by the take-over", lease(t, s, store.LeaseRequest{Queue: store.Platform, Now: later}))
	must(t, "Complete the take-over", s.Complete(ctx, b[0].Token, ""))
	wantIDs(t, "then the second job", lease(t, s, store.LeaseRequest{Queue: store.Platform, Now: later}), []int64{in[1]})
}

// testReviveThenExpiry: a job revived while a later job of its lane is
// leased runs first once that lease runs out and the lane is taken over:
// the lane starts again from its first job, in ID order.
func testReviveThenExpiry(t *testing.T, s store.Store) {
	in, later := revivedWhileHeld(t, s)
	wantIDs(t, "taken over, in ID order", lease(t, s, store.LeaseRequest{Queue: store.Platform, Now: later, PerLane: 5}), in)
}

// testReviveForLaterThenExpiry: a job revived to be due later while a
// later job of its lane is leased; that lease runs out and is taken over
// before the revived job is due. The lane waits for it, and Lease hands
// out nothing: never a lease without jobs (a worker reads its first).
func testReviveForLaterThenExpiry(t *testing.T, s store.Store) {
	now := base()
	in := deadFirst(t, s, 2, now)
	wantIDs(t, "the lane goes on", lease(t, s, store.LeaseRequest{Queue: store.Platform, Now: now}), []int64{in[1]})
	if n, err := s.Revive(ctx, []int64{in[0]}, now.Add(time.Hour)); err != nil || n != 1 {
		t.Fatalf("Revive for later: %d, %v", n, err)
	}
	wantIDs(t, "taken over before the revived job is due",
		lease(t, s, store.LeaseRequest{Queue: store.Platform, Now: now.Add(2 * time.Minute), PerLane: 5}))
	wantIDs(t, "once it is due, in ID order",
		lease(t, s, store.LeaseRequest{Queue: store.Platform, Now: now.Add(2 * time.Hour), PerLane: 5}), in)
}

// revivedWhileHeld enqueues three jobs in one lane, kills the first and
// revives it while the second is leased; it returns their IDs and a time
// after that lease ran out.
func revivedWhileHeld(t *testing.T, s store.Store) ([]int64, time.Time) {
	t.Helper()
	now := base()
	in := deadFirst(t, s, 3, now)
	wantIDs(t, "the lane goes on", lease(t, s, store.LeaseRequest{Queue: store.Platform, Now: now}), []int64{in[1]})
	revive(t, s, in[0], now)
	return in, now.Add(2 * time.Minute)
}

// revive revives one dead job.
func revive(t *testing.T, s store.Store, id int64, now time.Time) {
	t.Helper()
	if n, err := s.Revive(ctx, []int64{id}, now); err != nil || n != 1 {
		t.Fatalf("Revive %d: %d, %v", id, n, err)
	}
}

// testReviveThenRetry: a job revived while a later job of its lane is
// leased runs first once that job is retried; and of two jobs revived at
// different times, the earlier in the lane runs first.
func testReviveThenRetry(t *testing.T, s store.Store) {
	now := base()
	in := enqueue(t, s, job(store.Platform, "ch", "c", "1"), job(store.Platform, "ch", "c", "2"),
		job(store.Platform, "ch", "c", "3"), job(store.Platform, "ch", "c", "4"))
	req := store.LeaseRequest{Queue: store.Platform, Now: now}
	for i := range 2 {
		ls := lease(t, s, req)
		wantIDs(t, "in order", ls, []int64{in[i]})
		must(t, "Kill", s.Kill(ctx, ls[0].Token, "rejected"))
	}
	inFlight := lease(t, s, req)
	wantIDs(t, "the lane goes on after its dead jobs", inFlight, []int64{in[2]})
	revive(t, s, in[0], now)
	must(t, "Retry 3", s.Retry(ctx, inFlight[0].Token, now, "timeout"))
	revive(t, s, in[1], now)
	for _, want := range in {
		ls := lease(t, s, req)
		wantIDs(t, "the lane in ID order", ls, []int64{want})
		must(t, "Complete", s.Complete(ctx, ls[0].Token, ""))
	}
}

// testReviveThenRelease: a batch that takes over a revived lane is in ID
// order, and Release keeps its first jobs: the lane stays held by them
// alone.
func testReviveThenRelease(t *testing.T, s store.Store) {
	in, later := revivedWhileHeld(t, s)
	batch := lease(t, s, store.LeaseRequest{Queue: store.Platform, Now: later, PerLane: 5})
	wantIDs(t, "taken over, in ID order", batch, in)
	must(t, "Release to 1", s.Release(ctx, batch[0].Token, 1))
	wantState(t, s, in[0], store.Leased)
	wantIDs(t, "no second lease in the lane", lease(t, s, store.LeaseRequest{Queue: store.Platform, Now: later, PerLane: 5}))
}

// testNotBeforeBefore1970: a job due before 1970 (a clock gone wrong)
// is long due, not never.
func testNotBeforeBefore1970(t *testing.T, s store.Store) {
	j := job(store.Outbound, "ch", "c", "old")
	j.NotBefore = time.Date(1969, 7, 20, 20, 17, 0, 0, time.UTC)
	in := enqueue(t, s, j)
	wantIDs(t, "due", lease(t, s, store.LeaseRequest{Queue: store.Outbound, Now: base()}), in)
}

// testRecoverRestartsLanes: after Recover of every queue (q empty), each
// lane goes on from its first unfinished job, in any queue: a job revived
// while its lane was held runs before the job that held it.
func testRecoverRestartsLanes(t *testing.T, s store.Store) {
	now := base()
	q := store.Queue("custom")
	in := enqueue(t, s, job(q, "ch", "c", "1"), job(q, "ch", "c", "2"))
	req := store.LeaseRequest{Queue: q, Now: now}
	ls := lease(t, s, req)
	must(t, "Kill 1", s.Kill(ctx, ls[0].Token, "rejected"))
	wantIDs(t, "the lane goes on", lease(t, s, req), []int64{in[1]})
	revive(t, s, in[0], now)
	if n, err := s.Recover(ctx, "", "interrupted"); err != nil || n != 1 {
		t.Fatalf("Recover: %d, %v", n, err)
	}
	req.PerLane = 2
	wantIDs(t, "after Recover, in ID order", lease(t, s, req), in)
}

// testWaitingJobsDoNotHide: lanes whose first job waits for a retry, with
// more jobs behind it, are passed over, and a ready lane among them is
// found; then the lanes whose retry came due first go first.
func testWaitingJobsDoNotHide(t *testing.T, s store.Store) {
	now := base()
	var jobs []store.NewJob
	for l := range 10 {
		for i := range 5 {
			jobs = append(jobs, job(store.Platform, "ch", fmt.Sprint("busy", l), fmt.Sprint(l, "-", i)))
		}
	}
	busy := enqueue(t, s, jobs...)
	ls := lease(t, s, store.LeaseRequest{Queue: store.Platform, Now: now, Lanes: 10})
	if len(ls) != 10 {
		t.Fatalf("leased %d lanes, want 10", len(ls))
	}
	for i, l := range ls {
		must(t, "Retry", s.Retry(ctx, l.Token, now.Add(time.Duration(10-i)*time.Minute), "BonyChat down"))
	}
	ready := enqueue(t, s, job(store.Platform, "ch", "ready", "r"), job(store.Outbound, "ch", "busy0", "o"))
	rl := lease(t, s, store.LeaseRequest{Queue: store.Platform, Now: now, Lanes: 3})
	wantIDs(t, "the ready lane", rl, []int64{ready[0]})
	must(t, "Complete", s.Complete(ctx, rl[0].Token, ""))
	ol := lease(t, s, store.LeaseRequest{Queue: store.Outbound, Now: now, Lanes: 3})
	wantIDs(t, "the other queue", ol, []int64{ready[1]})
	must(t, "Complete", s.Complete(ctx, ol[0].Token, ""))
	// All retries due: the lanes due first go first, each from its first job.
	ls = lease(t, s, store.LeaseRequest{Queue: store.Platform, Now: now.Add(time.Hour), Lanes: 2})
	wantIDs(t, "due first", ls, []int64{busy[45]}, []int64{busy[40]})
}

func testDeadAndRevive(t *testing.T, s store.Store) {
	now := base()
	in := enqueue(t, s,
		job(store.Outbound, "ch", "a", "1"), job(store.Outbound, "ch", "b", "2"), job(store.Outbound, "ch", "c", "3"))
	ls := lease(t, s, store.LeaseRequest{Queue: store.Outbound, Now: now})
	wantIDs(t, "three", ls, []int64{in[0]}, []int64{in[1]}, []int64{in[2]})
	must(t, "Kill 1", s.Kill(ctx, ls[0].Token, "rejected: bad number"))
	must(t, "Kill 2", s.Kill(ctx, ls[1].Token, "expired"))
	must(t, "Complete 3", s.Complete(ctx, ls[2].Token, ""))

	dead, err := s.Jobs(ctx, store.JobFilter{State: store.Dead})
	must(t, "Jobs(dead)", err)
	if len(dead) != 2 || dead[0].ID != in[0] || dead[1].ID != in[1] ||
		dead[0].State != store.Dead || dead[0].LastError != "rejected: bad number" || dead[1].LastError != "expired" {
		t.Fatalf("dead jobs %+v", dead)
	}
	counts, err := s.Count(ctx)
	must(t, "Count", err)
	if counts[store.Dead] != 2 || counts[store.Done] != 1 || counts[store.Pending] != 0 || counts[store.Leased] != 0 {
		t.Fatalf("Count %v", counts)
	}
	// Only the states asked for (a readiness probe leaves the done ones out).
	counts, err = s.Count(ctx, store.Dead, store.Pending)
	must(t, "Count(dead, pending)", err)
	if len(counts) != 2 || counts[store.Dead] != 2 || counts[store.Pending] != 0 {
		t.Fatalf("Count(dead, pending) %v", counts)
	}
	if _, err := s.Count(ctx, "gone"); err == nil {
		t.Fatal("Count of an unknown state did not fail")
	}
	// Dead jobs are not leased.
	wantIDs(t, "dead not leased", lease(t, s, store.LeaseRequest{Queue: store.Outbound, Now: now.Add(time.Hour)}))

	later := now.Add(time.Minute)
	n, err := s.Revive(ctx, []int64{in[0], in[2], in[2] + 100}, later)
	must(t, "Revive(id)", err)
	if n != 1 {
		t.Fatalf("Revive(dead, done, missing) revived %d, want 1", n)
	}
	j := wantState(t, s, in[0], store.Pending)
	if !j.NextAt.Equal(later) || !j.CreatedAt.Equal(later) || j.Attempts != 0 {
		t.Fatalf("revived NextAt %v CreatedAt %v attempts %d, want %v, %v, 0 (it starts over)", j.NextAt, j.CreatedAt, j.Attempts, later, later)
	}
	wantState(t, s, in[1], store.Dead)
	wantState(t, s, in[2], store.Done)
	ls = lease(t, s, store.LeaseRequest{Queue: store.Outbound, Now: later})
	wantIDs(t, "revived", ls, []int64{in[0]})
	must(t, "Kill again", s.Kill(ctx, ls[0].Token, "still bad"))

	n, err = s.Revive(ctx, nil, later)
	must(t, "Revive(all)", err)
	if n != 2 {
		t.Fatalf("Revive(all) revived %d, want 2", n)
	}
	counts, err = s.Count(ctx)
	must(t, "Count", err)
	if counts[store.Dead] != 0 || counts[store.Pending] != 2 || counts[store.Done] != 1 {
		t.Fatalf("Count after revive %v", counts)
	}
	n, err = s.Revive(ctx, nil, later)
	must(t, "Revive(none dead)", err)
	if n != 0 {
		t.Fatalf("Revive with nothing dead revived %d", n)
	}
}

// testDropDeletesOnlyDead: Drop deletes the dead jobs it is given (or all
// of them) and leaves every other job as it was; the lane of a dropped job
// goes on leasing its next one.
func testDropDeletesOnlyDead(t *testing.T, s store.Store) {
	now := base()
	in := enqueue(t, s, job(store.Platform, "ch", "a", "1"), job(store.Platform, "ch", "b", "2"),
		job(store.Platform, "ch", "c", "3"), job(store.Platform, "ch", "a", "4"), job(store.Platform, "ch", "d", "5"))
	ls := lease(t, s, store.LeaseRequest{Queue: store.Platform, Now: now})
	wantIDs(t, "heads", ls, []int64{in[0]}, []int64{in[1]}, []int64{in[2]}, []int64{in[4]})
	must(t, "Kill a", s.Kill(ctx, ls[0].Token, "refused"))
	must(t, "Kill b", s.Kill(ctx, ls[1].Token, "refused"))
	must(t, "Kill c", s.Kill(ctx, ls[2].Token, "refused"))
	must(t, "Complete d", s.Complete(ctx, ls[3].Token, ""))

	n, err := s.Drop(ctx, []int64{in[0], in[3], in[4], in[4] + 100})
	must(t, "Drop(ids)", err)
	if n != 1 {
		t.Fatalf("Drop(dead, pending, done, missing) deleted %d, want 1", n)
	}
	if _, err := s.Job(ctx, in[0]); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("dropped job still there: %v", err)
	}
	wantState(t, s, in[3], store.Pending)
	wantState(t, s, in[4], store.Done)
	// The next job of the dropped one's lane is leased as before.
	ls = lease(t, s, store.LeaseRequest{Queue: store.Platform, Now: now})
	wantIDs(t, "after drop", ls, []int64{in[3]})

	n, err = s.Drop(ctx, nil)
	must(t, "Drop(all)", err)
	if n != 2 {
		t.Fatalf("Drop(all) deleted %d, want 2", n)
	}
	counts, err := s.Count(ctx)
	must(t, "Count", err)
	if counts[store.Dead] != 0 || counts[store.Leased] != 1 || counts[store.Done] != 1 {
		t.Fatalf("Count after drop %v", counts)
	}
	if n, err := s.Drop(ctx, nil); err != nil || n != 0 {
		t.Fatalf("Drop with nothing dead: %d, %v", n, err)
	}
}

func testRecover(t *testing.T, s store.Store) {
	now := base()
	in := enqueue(t, s,
		job(store.Outbound, "ch", "a", "1"), job(store.Outbound, "ch", "a", "2"),
		job(store.Outbound, "ch", "b", "3"), job(store.Platform, "ch", "a", "4"))
	ol := lease(t, s, store.LeaseRequest{Queue: store.Outbound, Now: now, For: time.Hour})
	wantIDs(t, "outbound", ol, []int64{in[0]}, []int64{in[2]})
	pl := lease(t, s, store.LeaseRequest{Queue: store.Platform, Now: now, For: time.Hour})
	wantIDs(t, "platform", pl, []int64{in[3]})

	n, err := s.Recover(ctx, store.Outbound, "interrupted")
	must(t, "Recover", err)
	if n != 2 {
		t.Fatalf("Recover returned %d, want 2", n)
	}
	for _, id := range []int64{in[0], in[2]} {
		if j := wantState(t, s, id, store.Pending); j.LastError != "interrupted" || j.Attempts != 1 {
			t.Fatalf("recovered job %+v", j)
		}
	}
	wantState(t, s, in[3], store.Leased)
	wantErr(t, "Complete with a recovered token", s.Complete(ctx, ol[0].Token, ""), store.ErrLeaseLost)
	// Due at once, in lane order.
	wantIDs(t, "re-leased", lease(t, s, store.LeaseRequest{Queue: store.Outbound, Now: now}),
		[]int64{in[0]}, []int64{in[2]})
	must(t, "platform lease intact", s.Complete(ctx, pl[0].Token, ""))
}

func testJobsFilter(t *testing.T, s store.Store) {
	now := base()
	in := enqueue(t, s,
		job(store.Outbound, "ch1", "a", "1"), job(store.Outbound, "ch2", "a", "2"),
		job(store.Platform, "ch1", "a", "3"), job(store.Outbound, "ch1", "b", "4"))
	ls := lease(t, s, store.LeaseRequest{Queue: store.Outbound, Now: now, ChannelID: "ch2"})
	must(t, "Complete", s.Complete(ctx, ls[0].Token, ""))

	check := func(f store.JobFilter, want ...int64) {
		t.Helper()
		got, err := s.Jobs(ctx, f)
		must(t, "Jobs", err)
		var g []int64
		for _, j := range got {
			g = append(g, j.ID)
		}
		if fmt.Sprint(g) != fmt.Sprint(want) {
			t.Fatalf("Jobs(%+v) = %v, want %v", f, g, want)
		}
	}
	check(store.JobFilter{}, in...)
	check(store.JobFilter{Queue: store.Outbound}, in[0], in[1], in[3])
	check(store.JobFilter{Queue: store.Platform}, in[2])
	check(store.JobFilter{ChannelID: "ch1"}, in[0], in[2], in[3])
	check(store.JobFilter{State: store.Done}, in[1])
	check(store.JobFilter{State: store.Pending}, in[0], in[2], in[3])
	check(store.JobFilter{State: store.Pending, Queue: store.Outbound, ChannelID: "ch1"}, in[0], in[3])
	check(store.JobFilter{Limit: 2}, in[0], in[1])
	check(store.JobFilter{Queue: store.Outbound, Limit: 2}, in[0], in[1])
	check(store.JobFilter{State: store.Dead})
	all, err := s.Jobs(ctx, store.JobFilter{})
	must(t, "Jobs", err)
	if string(all[2].Payload) != `{"mId":"3"}` || all[2].MID != "3" || all[2].Queue != store.Platform {
		t.Fatalf("listed job %+v", all[2])
	}
}

func testJobByMID(t *testing.T, s store.Store) {
	in := enqueue(t, s,
		job(store.Outbound, "ch", "a", "m1"), job(store.Platform, "ch", "a", "m1"),
		job(store.Outbound, "ch", "b", "m1"), job(store.Outbound, "ch", "a", "m2"))
	j, err := s.JobByMID(ctx, store.Outbound, "m1")
	must(t, "JobByMID", err)
	if j.ID != in[2] || j.ContactID != "b" {
		t.Fatalf("JobByMID(outbound, m1) = job %d, want the newest, %d", j.ID, in[2])
	}
	j, err = s.JobByMID(ctx, store.Platform, "m1")
	must(t, "JobByMID", err)
	if j.ID != in[1] {
		t.Fatalf("JobByMID(platform, m1) = job %d, want %d", j.ID, in[1])
	}
	_, err = s.JobByMID(ctx, store.Platform, "m2")
	wantErr(t, "JobByMID(platform, m2)", err, store.ErrNotFound)
	_, err = s.JobByMID(ctx, store.Outbound, "nope")
	wantErr(t, "JobByMID(missing)", err, store.ErrNotFound)
}

func testDedupeWindow(t *testing.T, s store.Store) {
	key := store.Key{Name: "wa:ch:wamid.1", Value: []byte("evt-1"), Expires: time.Now().Add(time.Hour)}
	first, err := s.Enqueue(ctx, []store.NewJob{job(store.Platform, "ch", "c", "evt-1")}, []store.Key{key})
	must(t, "first Enqueue", err)
	_, err = s.Enqueue(ctx, []store.NewJob{job(store.Platform, "ch", "c", "evt-2")}, []store.Key{key})
	wantErr(t, "second Enqueue", err, store.ErrDuplicate)
	// Nothing of a duplicate enqueue is stored, not even its other keys.
	other := store.Key{Name: "other", Expires: time.Now().Add(time.Hour)}
	_, err = s.Enqueue(ctx, []store.NewJob{job(store.Platform, "ch", "c", "evt-3")}, []store.Key{other, key})
	wantErr(t, "third Enqueue", err, store.ErrDuplicate)
	_, err = s.LookupKey(ctx, "other", time.Now())
	wantErr(t, "key of a duplicate enqueue", err, store.ErrNotFound)
	jobs, err := s.Jobs(ctx, store.JobFilter{})
	must(t, "Jobs", err)
	if len(jobs) != 1 || jobs[0].ID != first[0] {
		t.Fatalf("jobs after duplicates: %+v", jobs)
	}
	k, err := s.LookupKey(ctx, key.Name, time.Now())
	must(t, "LookupKey", err)
	if string(k.Value) != "evt-1" {
		t.Fatalf("recorded key %+v", k)
	}

	// A short window: usable again once it expired.
	short := store.Key{Name: "short", Expires: time.Now().Add(150 * time.Millisecond)}
	_, err = s.Enqueue(ctx, []store.NewJob{job(store.Platform, "ch", "d", "s1")}, []store.Key{short})
	must(t, "Enqueue short", err)
	_, err = s.Enqueue(ctx, []store.NewJob{job(store.Platform, "ch", "d", "s2")}, []store.Key{short})
	wantErr(t, "Enqueue short again", err, store.ErrDuplicate)
	time.Sleep(time.Until(short.Expires) + 20*time.Millisecond)
	short.Value, short.Expires = []byte("second"), time.Now().Add(time.Hour)
	ids, err := s.Enqueue(ctx, []store.NewJob{job(store.Platform, "ch", "d", "s3")}, []store.Key{short})
	must(t, "Enqueue after expiry", err)
	if len(ids) != 1 {
		t.Fatalf("ids %v", ids)
	}
	k, err = s.LookupKey(ctx, "short", time.Now())
	must(t, "LookupKey short", err)
	if string(k.Value) != "second" {
		t.Fatalf("replaced key %+v", k)
	}
	// Keys only: records them.
	_, err = s.Enqueue(ctx, nil, []store.Key{{Name: "alone", Expires: time.Now().Add(time.Hour)}})
	must(t, "Enqueue keys only", err)
	_, err = s.Enqueue(ctx, nil, []store.Key{{Name: "alone", Expires: time.Now().Add(time.Hour)}})
	wantErr(t, "Enqueue keys only again", err, store.ErrDuplicate)
}

func testRecordKey(t *testing.T, s store.Store) {
	now := base()
	k := store.Key{Name: "idem:1", Value: []byte("mid-1"), Expires: now.Add(time.Hour)}
	got, err := s.RecordKey(ctx, k, now)
	must(t, "RecordKey", err)
	if got.Name != k.Name || string(got.Value) != "mid-1" || !got.Expires.Equal(k.Expires) {
		t.Fatalf("RecordKey returned %+v", got)
	}
	got, err = s.RecordKey(ctx, store.Key{Name: "idem:1", Value: []byte("mid-2"), Expires: now.Add(2 * time.Hour)}, now.Add(time.Minute))
	wantErr(t, "RecordKey again", err, store.ErrDuplicate)
	if string(got.Value) != "mid-1" || !got.Expires.Equal(k.Expires) {
		t.Fatalf("duplicate RecordKey returned %+v, want the first key", got)
	}
	got, err = s.LookupKey(ctx, "idem:1", now.Add(59*time.Minute))
	must(t, "LookupKey", err)
	if string(got.Value) != "mid-1" || !got.Expires.Equal(k.Expires) || got.Expires.Location() != time.UTC {
		t.Fatalf("LookupKey %+v", got)
	}
	_, err = s.LookupKey(ctx, "idem:1", now.Add(time.Hour))
	wantErr(t, "LookupKey at expiry", err, store.ErrNotFound)
	_, err = s.LookupKey(ctx, "idem:2", now)
	wantErr(t, "LookupKey(missing)", err, store.ErrNotFound)

	// Expired: replaced.
	got, err = s.RecordKey(ctx, store.Key{Name: "idem:1", Value: []byte("mid-3"), Expires: now.Add(3 * time.Hour)}, now.Add(time.Hour))
	must(t, "RecordKey after expiry", err)
	if string(got.Value) != "mid-3" {
		t.Fatalf("RecordKey after expiry returned %+v", got)
	}
	got, err = s.LookupKey(ctx, "idem:1", now.Add(2*time.Hour))
	must(t, "LookupKey replaced", err)
	if string(got.Value) != "mid-3" {
		t.Fatalf("replaced key %+v", got)
	}
	// A zero Expires never expires.
	_, err = s.RecordKey(ctx, store.Key{Name: "forever", Value: []byte("x")}, now)
	must(t, "RecordKey forever", err)
	got, err = s.LookupKey(ctx, "forever", now.Add(100*365*24*time.Hour))
	must(t, "LookupKey forever", err)
	if !got.Expires.IsZero() {
		t.Fatalf("forever key %+v", got)
	}
}

func testAdvanceStatus(t *testing.T, s store.Store) {
	_, err := s.StatusOf(ctx, "m1")
	wantErr(t, "StatusOf(none)", err, store.ErrNotFound)
	step := func(value string, rank int, want bool) {
		t.Helper()
		got, err := s.AdvanceStatus(ctx, store.Status{MID: "m1", Value: value, Rank: rank})
		must(t, "AdvanceStatus", err)
		if got != want {
			t.Fatalf("AdvanceStatus(%s, %d) = %v, want %v", value, rank, got, want)
		}
	}
	step("sent", 1, true)
	step("delivered", 2, true)
	step("sent", 1, false)
	step("delivered-again", 2, false)
	st, err := s.StatusOf(ctx, "m1")
	must(t, "StatusOf", err)
	if st != (store.Status{MID: "m1", Value: "delivered", Rank: 2}) {
		t.Fatalf("StatusOf %+v", st)
	}
	step("read", 3, true)
	st, err = s.StatusOf(ctx, "m1")
	must(t, "StatusOf", err)
	if st.Value != "read" || st.Rank != 3 {
		t.Fatalf("StatusOf %+v", st)
	}
	// Another mId starts from nothing.
	got, err := s.AdvanceStatus(ctx, store.Status{MID: "m2", Value: "sent", Rank: 1})
	must(t, "AdvanceStatus m2", err)
	if !got {
		t.Fatal("first status of m2 not recorded")
	}
}

// A job's Status advances its mId's record in the write that stores the
// job (Enqueue, CompleteWith), only forward; a write that stores nothing
// (a duplicate key, a lost lease) advances nothing; EnqueueLeased refuses
// a job with a status.
func testJobStatus(t *testing.T, s store.Store) {
	withStatus := func(mid, value string, rank int) store.NewJob {
		j := job(store.Platform, "c1", "k1", mid)
		j.Status = &store.Status{MID: mid, Value: value, Rank: rank}
		return j
	}
	wantStatus := func(mid, value string) {
		t.Helper()
		st, err := s.StatusOf(ctx, mid)
		if value == "" {
			wantErr(t, "StatusOf "+mid, err, store.ErrNotFound)
			return
		}
		must(t, "StatusOf "+mid, err)
		if st.Value != value {
			t.Fatalf("status of %s is %q, want %q", mid, st.Value, value)
		}
	}
	enqueue(t, s, withStatus("m1", "delivered", 2))
	wantStatus("m1", "delivered")
	enqueue(t, s, withStatus("m1", "sent", 1)) // stored, but the record never moves back
	wantStatus("m1", "delivered")

	key := store.Key{Name: "k-status", Expires: base().Add(time.Hour)}
	_, err := s.Enqueue(ctx, []store.NewJob{withStatus("m2", "sent", 1)}, []store.Key{key})
	must(t, "Enqueue with a key", err)
	_, err = s.Enqueue(ctx, []store.NewJob{withStatus("m2", "read", 3)}, []store.Key{key})
	wantErr(t, "Enqueue with a used key", err, store.ErrDuplicate)
	wantStatus("m2", "sent")

	enqueue(t, s, job(store.Outbound, "c1", "k2", "m3"))
	ls := lease(t, s, store.LeaseRequest{Queue: store.Outbound, Now: base(), For: time.Minute})
	must(t, "CompleteWith", s.CompleteWith(ctx, ls[0].Token, "", []store.NewJob{withStatus("m3", "sent", 1)}))
	wantStatus("m3", "sent")
	err = s.CompleteWith(ctx, ls[0].Token, "", []store.NewJob{withStatus("m4", "sent", 1)})
	wantErr(t, "CompleteWith a finished lease", err, store.ErrLeaseLost)
	wantStatus("m4", "")

	_, _, err = s.EnqueueLeased(ctx, withStatus("m5", "sent", 1), nil, base(), time.Minute)
	if err == nil {
		t.Fatal("EnqueueLeased took a job with a status")
	}
	wantStatus("m5", "")
}

func testPutGet(t *testing.T, s store.Store) {
	_, err := s.Get(ctx, "contacts", "x")
	wantErr(t, "Get(missing)", err, store.ErrNotFound)
	must(t, "Put", s.Put(ctx, "contacts", "x", []byte("1")))
	must(t, "Put other ns", s.Put(ctx, "threads", "x", []byte("2")))
	v, err := s.Get(ctx, "contacts", "x")
	must(t, "Get", err)
	if string(v) != "1" {
		t.Fatalf("Get = %q", v)
	}
	v[0] = 'z' // the caller's copy
	must(t, "Put overwrite", s.Put(ctx, "contacts", "x", []byte("3")))
	v, err = s.Get(ctx, "contacts", "x")
	must(t, "Get", err)
	if string(v) != "3" {
		t.Fatalf("Get after overwrite = %q", v)
	}
	v, err = s.Get(ctx, "threads", "x")
	must(t, "Get other ns", err)
	if string(v) != "2" {
		t.Fatalf("Get other ns = %q", v)
	}
	_, err = s.Get(ctx, "threads", "y")
	wantErr(t, "Get(missing key)", err, store.ErrNotFound)
	must(t, "Put empty", s.Put(ctx, "optout", "y", nil))
	v, err = s.Get(ctx, "optout", "y")
	must(t, "Get empty", err)
	if len(v) != 0 {
		t.Fatalf("Get empty = %q", v)
	}
}

func testMedia(t *testing.T, s store.Store) {
	now := base()
	_, err := s.GetMedia(ctx, "nope")
	wantErr(t, "GetMedia(missing)", err, store.ErrNotFound)
	m1 := store.Media{ID: "m1", FileName: "a.jpg", ContentType: "image/jpeg", Size: 123, Path: "ab/m1",
		CreatedAt: now, Expires: now.Add(time.Hour)}
	m2 := store.Media{ID: "m2", FileName: "b.pdf", ContentType: "application/pdf", Size: 9, Path: "cd/m2",
		CreatedAt: now, Expires: now.Add(2 * time.Hour)}
	m3 := store.Media{ID: "m3", FileName: "c.ogg", ContentType: "audio/ogg", Size: 1, Path: "ef/m3",
		CreatedAt: now, Expires: now.Add(30 * time.Minute)}
	for _, m := range []store.Media{m1, m2, m3} {
		must(t, "PutMedia", s.PutMedia(ctx, m))
	}
	got, err := s.GetMedia(ctx, "m1")
	must(t, "GetMedia", err)
	if got != m1 {
		t.Fatalf("GetMedia = %+v, want %+v", got, m1)
	}
	exp, err := s.ExpiredMedia(ctx, now.Add(59*time.Minute))
	must(t, "ExpiredMedia", err)
	if len(exp) != 1 || exp[0] != m3 {
		t.Fatalf("ExpiredMedia = %+v, want m3", exp)
	}
	exp, err = s.ExpiredMedia(ctx, now.Add(3*time.Hour))
	must(t, "ExpiredMedia", err)
	if len(exp) != 2 || exp[0] != m1 || exp[1] != m2 {
		t.Fatalf("ExpiredMedia = %+v, want m1, m2", exp)
	}
	exp, err = s.ExpiredMedia(ctx, now.Add(3*time.Hour))
	must(t, "ExpiredMedia", err)
	if len(exp) != 0 {
		t.Fatalf("ExpiredMedia again = %+v", exp)
	}
	_, err = s.GetMedia(ctx, "m1")
	wantErr(t, "GetMedia(expired)", err, store.ErrNotFound)
}

func testDeleteMedia(t *testing.T, s store.Store) {
	now := base()
	m1 := store.Media{ID: "m1", FileName: "a.jpg", ContentType: "image/jpeg", Size: 1, Path: "ab/m1",
		CreatedAt: now, Expires: now.Add(time.Hour)}
	m2 := m1
	m2.ID, m2.Path = "m2", "cd/m2"
	must(t, "PutMedia", s.PutMedia(ctx, m1))
	must(t, "PutMedia", s.PutMedia(ctx, m2))
	must(t, "DeleteMedia", s.DeleteMedia(ctx, "m1"))
	_, err := s.GetMedia(ctx, "m1")
	wantErr(t, "GetMedia(deleted)", err, store.ErrNotFound)
	if got, err := s.GetMedia(ctx, "m2"); err != nil || got != m2 {
		t.Fatalf("GetMedia(m2) after deleting m1 = %+v, %v; want it kept", got, err)
	}
	must(t, "DeleteMedia(already deleted)", s.DeleteMedia(ctx, "m1"))
	must(t, "DeleteMedia(never stored)", s.DeleteMedia(ctx, "nope"))
	// A deleted item is gone for good: the sweep does not hand it back.
	exp, err := s.ExpiredMedia(ctx, now.Add(2*time.Hour))
	must(t, "ExpiredMedia", err)
	if len(exp) != 1 || exp[0] != m2 {
		t.Fatalf("ExpiredMedia = %+v, want only m2", exp)
	}
}

// A write refused before it changed anything says so (store.NotStored):
// its caller may then throw away what it prepared for it (the media of an
// inbound message), which it must keep when the store cannot tell.
func testNotStored(t *testing.T, s store.Store) {
	if store.NotStored(nil) || store.NotStored(errors.New("disk I/O error")) {
		t.Fatal("NotStored must vouch only for the errors a store marked, never for nil or an unknown error")
	}
	in := job(store.Platform, "ch", "c", "m1")
	key := store.Key{Name: "inbound:ch:SM1", Expires: time.Now().Add(time.Hour)}

	done, cancel := context.WithCancel(ctx)
	cancel()
	_, err := s.Enqueue(done, []store.NewJob{in}, []store.Key{key})
	if !errors.Is(err, context.Canceled) || !store.NotStored(err) {
		t.Fatalf("Enqueue with a done context: %v (NotStored %v), want context.Canceled, marked NotStored", err, store.NotStored(err))
	}
	if n := len(jobsOf(t, s)); n != 0 {
		t.Fatalf("a refused enqueue stored %d jobs", n)
	}

	enqueueKeys(t, s, []store.Key{key}, in)
	_, err = s.Enqueue(ctx, []store.NewJob{job(store.Platform, "ch", "c", "m2")}, []store.Key{key})
	if !errors.Is(err, store.ErrDuplicate) || !store.NotStored(err) {
		t.Fatalf("a duplicate enqueue: %v (NotStored %v), want ErrDuplicate, NotStored", err, store.NotStored(err))
	}

	must(t, "Close", s.Close())
	_, err = s.Enqueue(ctx, []store.NewJob{job(store.Platform, "ch", "c", "m3")}, nil)
	if err == nil || !store.NotStored(err) {
		t.Fatalf("Enqueue on a closed store: %v (NotStored %v), want an error marked NotStored", err, store.NotStored(err))
	}
}

func jobsOf(t *testing.T, s store.Store) []store.Job {
	t.Helper()
	jobs, err := s.Jobs(ctx, store.JobFilter{})
	must(t, "Jobs", err)
	return jobs
}

func enqueueKeys(t *testing.T, s store.Store, keys []store.Key, jobs ...store.NewJob) {
	t.Helper()
	_, err := s.Enqueue(ctx, jobs, keys)
	must(t, "Enqueue", err)
}

func testSweep(t *testing.T, s store.Store) {
	now := base()
	in := enqueue(t, s,
		job(store.Outbound, "ch", "a", "done"), job(store.Outbound, "ch", "b", "dead"),
		job(store.Outbound, "ch", "c", "leased"), job(store.Outbound, "ch", "d", "pending"))
	ls := lease(t, s, store.LeaseRequest{Queue: store.Outbound, Now: now, Lanes: 3})
	wantIDs(t, "three", ls, []int64{in[0]}, []int64{in[1]}, []int64{in[2]})
	must(t, "Complete", s.Complete(ctx, ls[0].Token, ""))
	must(t, "Kill", s.Kill(ctx, ls[1].Token, "x"))
	for _, k := range []store.Key{
		{Name: "old", Expires: now.Add(time.Minute)},
		{Name: "new", Expires: now.Add(time.Hour)},
	} {
		_, err := s.RecordKey(ctx, k, now)
		must(t, "RecordKey", err)
	}

	// Cutoff before the completion: the done job stays.
	must(t, "Sweep", s.Sweep(ctx, store.SweepRequest{Now: now, DoneBefore: time.Now().Add(-time.Hour)}))
	wantState(t, s, in[0], store.Done)
	must(t, "Sweep", s.Sweep(ctx, store.SweepRequest{Now: now.Add(30 * time.Minute), DoneBefore: time.Now().Add(time.Hour)}))
	_, err := s.Job(ctx, in[0])
	wantErr(t, "swept done job", err, store.ErrNotFound)
	wantState(t, s, in[1], store.Dead)
	wantState(t, s, in[2], store.Leased)
	wantState(t, s, in[3], store.Pending)
	// The expired key is gone (even at an earlier now), the other one stays.
	_, err = s.LookupKey(ctx, "old", now)
	wantErr(t, "swept key", err, store.ErrNotFound)
	_, err = s.LookupKey(ctx, "new", now)
	must(t, "kept key", err)
	counts, err := s.Count(ctx)
	must(t, "Count", err)
	if counts[store.Done] != 0 || counts[store.Dead] != 1 || counts[store.Leased] != 1 || counts[store.Pending] != 1 {
		t.Fatalf("Count after sweep %v", counts)
	}
	// New jobs still get new, higher IDs.
	if id := enqueue(t, s, job(store.Outbound, "ch", "a", "next"))[0]; id <= in[3] {
		t.Fatalf("new job id %d after sweep is not above %d", id, in[3])
	}
}

func testBogusToken(t *testing.T, s store.Store) {
	now := base()
	id := enqueue(t, s, job(store.Outbound, "ch", "c", "m"))[0]
	wantErr(t, "Complete", s.Complete(ctx, "00112233445566778899aabbccddeeff", ""), store.ErrLeaseLost)
	wantErr(t, "Retry", s.Retry(ctx, "bogus", now, ""), store.ErrLeaseLost)
	wantErr(t, "Kill", s.Kill(ctx, "", ""), store.ErrLeaseLost)
	l := lease(t, s, store.LeaseRequest{Queue: store.Outbound, Now: now})
	wantIDs(t, "still leasable", l, []int64{id})
	wantErr(t, "Complete(bogus) while leased", s.Complete(ctx, l[0].Token+"0", ""), store.ErrLeaseLost)
	wantState(t, s, id, store.Leased)
}

// testConcurrentWorkers: 300 jobs over 30 lanes, 8 workers leasing and
// completing at once until all are done. Each job must run exactly once, and
// every lane in enqueue order.
func testConcurrentWorkers(t *testing.T, s store.Store) {
	const lanes, perLane, workers = 30, 10, 8
	// Interleave the lanes so that their jobs' IDs interleave too.
	var jobs []store.NewJob
	for i := range perLane {
		for l := range lanes {
			q := store.Outbound
			if l%2 == 1 {
				q = store.Platform
			}
			jobs = append(jobs, job(q, fmt.Sprint("ch", l%3), fmt.Sprint("contact", l), fmt.Sprint(l, "-", i)))
		}
	}
	in := enqueue(t, s, jobs...)
	laneOf := map[int64]string{}
	wantOrder := map[string][]int64{}
	for i, id := range in {
		key := fmt.Sprint(jobs[i].Queue, "/", jobs[i].ContactID)
		laneOf[id] = key
		wantOrder[key] = append(wantOrder[key], id)
	}

	var (
		mu        sync.Mutex
		runs      = map[int64]int{}
		completed = map[int64]int{}
		order     = map[string][]int64{}
		done      atomic.Int64
		failed    atomic.Bool
		wg        sync.WaitGroup
	)
	deadline := time.Now().Add(30 * time.Second)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			queue := store.Outbound
			if w%2 == 1 {
				queue = store.Platform
			}
			for done.Load() < int64(len(in)) && !failed.Load() {
				if time.Now().After(deadline) {
					t.Errorf("worker %d: not all jobs done after 30s (%d of %d)", w, done.Load(), len(in))
					failed.Store(true)
					return
				}
				ls, err := s.Lease(ctx, store.LeaseRequest{Queue: queue, Now: time.Now(), For: time.Hour,
					Lanes: 1 + w%3, PerLane: 1 + w%4})
				if err != nil {
					t.Errorf("worker %d: Lease: %v", w, err)
					failed.Store(true)
					return
				}
				if len(ls) == 0 {
					queue = map[store.Queue]store.Queue{store.Outbound: store.Platform, store.Platform: store.Outbound}[queue]
					time.Sleep(time.Millisecond)
					continue
				}
				for _, l := range ls {
					// "Run" the jobs: record the order before completing,
					// as the next job of the lane cannot be leased before.
					mu.Lock()
					for _, j := range l.Jobs {
						runs[j.ID]++
						order[laneOf[j.ID]] = append(order[laneOf[j.ID]], j.ID)
					}
					mu.Unlock()
					if err := s.Complete(ctx, l.Token, ""); err != nil {
						t.Errorf("worker %d: Complete: %v", w, err)
						failed.Store(true)
						return
					}
					mu.Lock()
					for _, j := range l.Jobs {
						completed[j.ID]++
					}
					mu.Unlock()
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
		if runs[id] != 1 || completed[id] != 1 {
			t.Errorf("job %d: leased %d times, completed %d times; want 1 and 1", id, runs[id], completed[id])
		}
	}
	for key, want := range wantOrder {
		if fmt.Sprint(order[key]) != fmt.Sprint(want) {
			t.Errorf("lane %s ran %v, want %v", key, order[key], want)
		}
	}
	counts, err := s.Count(ctx)
	must(t, "Count", err)
	if counts[store.Done] != len(in) {
		t.Errorf("Count %v, want %d done", counts, len(in))
	}
}

// testEnqueueLeased: a job for an idle lane is stored already leased to the
// caller; one behind an unfinished job of its lane, or not yet due, waits
// its turn; keys are claimed as in Enqueue.
func testEnqueueLeased(t *testing.T, s store.Store) {
	now := base()
	id1, l1, err := s.EnqueueLeased(ctx, job(store.Outbound, "ch", "c1", "m1"), nil, now, time.Minute)
	if err != nil || l1 == nil || len(l1.Jobs) != 1 || l1.Jobs[0].ID != id1 || l1.Jobs[0].State != store.Leased || l1.Jobs[0].Attempts != 1 {
		t.Fatalf("idle lane: want the job leased to the caller, got %+v %v", l1, err)
	}
	id2, l2, err := s.EnqueueLeased(ctx, job(store.Outbound, "ch", "c1", "m2"), nil, now, time.Minute)
	if err != nil || l2 != nil {
		t.Fatalf("busy lane: want no lease, got %+v %v", l2, err)
	}
	if leases, _ := s.Lease(ctx, store.LeaseRequest{Queue: store.Outbound, Now: now, For: time.Minute, Lanes: 10, PerLane: 1}); len(leases) != 0 {
		t.Fatalf("the lane is held by the caller: nothing to lease, got %+v", leases)
	}
	if err := s.Complete(ctx, l1.Token, ""); err != nil {
		t.Fatalf("the caller's token completes the job: %v", err)
	}
	leases, _ := s.Lease(ctx, store.LeaseRequest{Queue: store.Outbound, Now: now, For: time.Minute, Lanes: 10, PerLane: 1})
	if len(leases) != 1 || leases[0].Jobs[0].ID != id2 {
		t.Fatalf("the waiting job is next: %+v", leases)
	}
	later := job(store.Outbound, "ch", "c2", "m3")
	later.NotBefore = now.Add(time.Hour)
	if _, l, err := s.EnqueueLeased(ctx, later, nil, now, time.Minute); err != nil || l != nil {
		t.Fatalf("a job not yet due is not leased: %+v %v", l, err)
	}
	key := []store.Key{{Name: "idem", Expires: now.Add(time.Hour)}}
	if _, _, err := s.EnqueueLeased(ctx, job(store.Outbound, "ch", "c3", "m4"), key, now, time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.EnqueueLeased(ctx, job(store.Outbound, "ch", "c4", "m5"), key, now, time.Minute); !errors.Is(err, store.ErrDuplicate) {
		t.Fatalf("a taken key: want ErrDuplicate, got %v", err)
	}
	if _, err := s.JobByMID(ctx, store.Outbound, "m5"); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("nothing is stored on a duplicate")
	}
}

// testCompleteWith: completing a job and enqueueing its follow-up is one
// step; a lost lease stores neither.
func testCompleteWith(t *testing.T, s store.Store) {
	now := base()
	_, l, err := s.EnqueueLeased(ctx, job(store.Outbound, "ch", "c1", "m1"), nil, now, time.Minute)
	if err != nil || l == nil {
		t.Fatalf("EnqueueLeased: %+v %v", l, err)
	}
	follow := job(store.Platform, "ch", "c1", "m1")
	if err := s.CompleteWith(ctx, l.Token, "sent", []store.NewJob{follow}); err != nil {
		t.Fatal(err)
	}
	if j, err := s.Job(ctx, l.Jobs[0].ID); err != nil || j.State != store.Done || j.LastError != "sent" {
		t.Fatalf("the job must be done: %+v %v", j, err)
	}
	if j, err := s.JobByMID(ctx, store.Platform, "m1"); err != nil || j.State != store.Pending {
		t.Fatalf("the follow-up must be pending: %+v %v", j, err)
	}
	if err := s.CompleteWith(ctx, "bogus", "", []store.NewJob{job(store.Platform, "ch", "c1", "m2")}); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("a lost lease: want ErrLeaseLost, got %v", err)
	}
	if _, err := s.JobByMID(ctx, store.Platform, "m2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("with a lost lease nothing is enqueued")
	}
}

// testEnqueueLeasedRace: EnqueueLeased stores and leases in one step, so of
// several callers into one idle lane at once exactly one gets the lease,
// for the lane's first job.
func testEnqueueLeasedRace(t *testing.T, s store.Store) {
	const rounds, callers = 300, 8
	for round := range rounds {
		channel := fmt.Sprint("ch", round)
		leases := make(chan *store.Lease, callers)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range callers {
			wg.Go(func() {
				<-start
				_, l, err := s.EnqueueLeased(ctx, job(store.Outbound, channel, "c", ""), nil, time.Now(), time.Hour)
				if err != nil {
					t.Error(err)
				}
				leases <- l
			})
		}
		close(start)
		wg.Wait()
		close(leases)
		var got []*store.Lease
		for l := range leases {
			if l != nil {
				got = append(got, l)
			}
		}
		if len(got) != 1 {
			t.Fatalf("round %d: %d callers into an idle lane at once: %d leased, want 1", round, callers, len(got))
		}
		first, err := s.Jobs(ctx, store.JobFilter{Queue: store.Outbound, ChannelID: channel})
		if err != nil || len(first) != callers || got[0].Jobs[0].ID != first[0].ID {
			t.Fatalf("round %d: the lease holds job %d, want the lane's first of %+v (%v)", round, got[0].Jobs[0].ID, first, err)
		}
	}
}

// testCompleteWithOneStep: CompleteWith is one step. A follow-up the store
// refuses leaves the lease as it was; and an EnqueueLeased racing it into
// the same lane never finds the lane idle (it holds the completed job or
// the follow-up).
func testCompleteWithOneStep(t *testing.T, s store.Store) {
	id, l, err := s.EnqueueLeased(ctx, job(store.Outbound, "ch", "c", "m1"), nil, base(), time.Minute)
	if err != nil || l == nil {
		t.Fatalf("EnqueueLeased: %+v %v", l, err)
	}
	noQueue := store.NewJob{ChannelID: "ch", ContactID: "c"}
	if err := s.CompleteWith(ctx, l.Token, "sent", []store.NewJob{noQueue}); err == nil {
		t.Fatal("CompleteWith with a follow-up without a queue did not fail")
	}
	wantState(t, s, id, store.Leased)
	must(t, "the lease is still held", s.Complete(ctx, l.Token, ""))

	const rounds = 100
	for round := range rounds {
		j := job(store.Outbound, "ch", fmt.Sprint("r", round), "")
		_, l, err := s.EnqueueLeased(ctx, j, nil, time.Now(), time.Hour)
		if err != nil || l == nil {
			t.Fatalf("EnqueueLeased: %+v %v", l, err)
		}
		var raced *store.Lease
		var wg sync.WaitGroup
		wg.Go(func() { must(t, "CompleteWith", s.CompleteWith(ctx, l.Token, "", []store.NewJob{j})) })
		wg.Go(func() { _, raced, _ = s.EnqueueLeased(ctx, j, nil, time.Now(), time.Hour) })
		wg.Wait()
		if raced != nil {
			t.Fatalf("round %d: an EnqueueLeased racing CompleteWith into its lane got a lease (job %d)", round, raced.Jobs[0].ID)
		}
	}
}

// testRecordExpiry: a record put with an expiry is not returned once it
// expired, is deleted by the next Sweep, and a Put record never expires.
func testRecordExpiry(t *testing.T, s store.Store) {
	now := time.Now()
	must(t, "PutUntil past", s.PutUntil(ctx, "memo", "old", []byte("1"), now.Add(-time.Second)))
	must(t, "PutUntil future", s.PutUntil(ctx, "memo", "new", []byte("2"), now.Add(time.Hour)))
	must(t, "Put forever", s.Put(ctx, "memo", "forever", []byte("3")))
	_, err := s.Get(ctx, "memo", "old")
	wantErr(t, "expired record", err, store.ErrNotFound)
	// Rewriting an expired record brings it back with its new expiry.
	must(t, "PutUntil again", s.PutUntil(ctx, "memo", "again", []byte("x"), now.Add(-time.Second)))
	must(t, "Put again", s.Put(ctx, "memo", "again", []byte("y")))

	must(t, "Sweep", s.Sweep(ctx, store.SweepRequest{Now: now.Add(2 * time.Hour)}))
	_, err = s.Get(ctx, "memo", "new")
	wantErr(t, "record swept after its expiry", err, store.ErrNotFound)
	for key, want := range map[string]string{"forever": "3", "again": "y"} {
		v, err := s.Get(ctx, "memo", key)
		must(t, "Get "+key, err)
		if string(v) != want {
			t.Errorf("Get(memo, %s) = %q, want %q", key, v, want)
		}
	}
	// An expired record that was swept stays gone once its time is back.
	must(t, "PutUntil later", s.PutUntil(ctx, "memo", "old", []byte("4"), now.Add(time.Hour)))
	v, err := s.Get(ctx, "memo", "old")
	must(t, "Get rewritten", err)
	if string(v) != "4" {
		t.Errorf("Get(memo, old) = %q after rewriting, want 4", v)
	}
}

// testStatusSweep: statuses of messages with no news since the cutoff are
// deleted; newer ones stay and still only move forward.
func testStatusSweep(t *testing.T, s store.Store) {
	_, err := s.AdvanceStatus(ctx, store.Status{MID: "m-old", Value: "sent", Rank: 1})
	must(t, "AdvanceStatus", err)
	must(t, "Sweep before the update", s.Sweep(ctx, store.SweepRequest{StatusBefore: time.Now().Add(-time.Hour)}))
	if _, err := s.StatusOf(ctx, "m-old"); err != nil {
		t.Fatalf("status updated after the cutoff was swept: %v", err)
	}
	cut := cutInTime()
	_, err = s.AdvanceStatus(ctx, store.Status{MID: "m-new", Value: "delivered", Rank: 2})
	must(t, "AdvanceStatus", err)
	must(t, "Sweep", s.Sweep(ctx, store.SweepRequest{StatusBefore: cut}))
	_, err = s.StatusOf(ctx, "m-old")
	wantErr(t, "old status", err, store.ErrNotFound)
	st, err := s.StatusOf(ctx, "m-new")
	must(t, "StatusOf new", err)
	if st.Value != "delivered" {
		t.Errorf("kept status = %q, want delivered", st.Value)
	}
	advanced, err := s.AdvanceStatus(ctx, store.Status{MID: "m-new", Value: "sent", Rank: 1})
	must(t, "AdvanceStatus backwards", err)
	if advanced {
		t.Error("a kept status moved backwards after a sweep")
	}
}

// testSweepManyChunks: one Sweep deletes everything it should, also when
// that is many times what the SQL stores delete in one chunk (1000 rows of
// a table), and keeps the rest.
func testSweepManyChunks(t *testing.T, s store.Store) {
	const n = 1500 // one chunk and a half of each table
	now := base()
	var jobs []store.NewJob
	var keys []store.Key
	for i := range n {
		jobs = append(jobs, job(store.Platform, "ch", "done", fmt.Sprintf("m%d", i)))
		keys = append(keys, store.Key{Name: fmt.Sprintf("k%d", i), Value: []byte("v"), Expires: now.Add(time.Minute)})
	}
	done := enqueue(t, s, jobs...)
	ls := lease(t, s, store.LeaseRequest{Queue: store.Platform, Now: now, Lanes: 1, PerLane: n})
	if len(ls) != 1 || len(ls[0].Jobs) != n {
		t.Fatalf("leased %d lanes, want 1 with %d jobs", len(ls), n)
	}
	must(t, "Complete", s.Complete(ctx, ls[0].Token, ""))
	_, err := s.Enqueue(ctx, []store.NewJob{job(store.Platform, "ch", "key", "keyed")}, keys)
	must(t, "Enqueue with keys", err)
	kept := enqueue(t, s, job(store.Outbound, "ch", "pending", "kept"))[0]
	_, err = s.RecordKey(ctx, store.Key{Name: "kept", Value: []byte("v"), Expires: now.Add(2 * time.Hour)}, now)
	must(t, "RecordKey", err)
	must(t, "Put", s.Put(ctx, "memo", "forever", []byte("v")))
	must(t, "PutUntil", s.PutUntil(ctx, "memo", "later", []byte("v"), now.Add(2*time.Hour)))

	// Records and statuses, written concurrently (the SQL stores commit
	// concurrent writes together).
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 16 {
				if err := s.PutUntil(ctx, "memo", fmt.Sprintf("r%d", i), []byte("v"), now.Add(time.Minute)); err != nil {
					errs <- err
					return
				}
				if _, err := s.AdvanceStatus(ctx, store.Status{MID: fmt.Sprintf("s%d", i), Value: "sent", Rank: 1}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("write: %v", err)
	}
	cut := cutInTime()
	_, err = s.AdvanceStatus(ctx, store.Status{MID: "kept", Value: "sent", Rank: 1})
	must(t, "AdvanceStatus", err)

	must(t, "Sweep", s.Sweep(ctx, store.SweepRequest{Now: now.Add(time.Hour), DoneBefore: time.Now().Add(time.Hour), StatusBefore: cut}))
	counts, err := s.Count(ctx, store.Done, store.Pending)
	must(t, "Count", err)
	if counts[store.Done] != 0 || counts[store.Pending] != 2 {
		t.Errorf("after the sweep: %d done jobs (want 0), %d pending (want 2)", counts[store.Done], counts[store.Pending])
	}
	// Each of them is gone, not only expired: LookupKey at a now before
	// the keys' expiry and Get before the records' would return them.
	for i := range n {
		if _, err := s.Job(ctx, done[i]); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("done job %d after the sweep: %v", i, err)
		}
		if _, err := s.LookupKey(ctx, fmt.Sprintf("k%d", i), now); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("key %d after the sweep: %v", i, err)
		}
		if _, err := s.Get(ctx, "memo", fmt.Sprintf("r%d", i)); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("record %d after the sweep: %v", i, err)
		}
		if _, err := s.StatusOf(ctx, fmt.Sprintf("s%d", i)); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("status %d after the sweep: %v", i, err)
		}
	}
	wantState(t, s, kept, store.Pending)
	_, err = s.LookupKey(ctx, "kept", now)
	must(t, "kept key", err)
	for _, key := range []string{"forever", "later"} {
		_, err := s.Get(ctx, "memo", key)
		must(t, "Get "+key, err)
	}
	_, err = s.StatusOf(ctx, "kept")
	must(t, "kept status", err)
}

// cutInTime returns a time that writes before the call are older than and
// writes after it newer than, at the store's millisecond precision.
func cutInTime() time.Time {
	time.Sleep(5 * time.Millisecond)
	cut := time.Now()
	time.Sleep(5 * time.Millisecond)
	return cut
}
