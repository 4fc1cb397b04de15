package store_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bonychat/bonychat-adapter/store"
)

// TestConcurrentInvariants runs producers (Enqueue, EnqueueLeased, with
// dedupe keys some of which they share) and workers (Lease, Complete,
// CompleteWith, Release, Retry, Kill) at once on few lanes, and checks what
// must hold for any interleaving: a lane is never held by two leases at
// once, each lane's jobs finish exactly once and in ID order, a shared
// dedupe key is claimed exactly once, nothing is lost.
func TestConcurrentInvariants(t *testing.T) {
	for _, name := range []string{"sqlite", "memory"} {
		t.Run(name, func(t *testing.T) {
			var s store.Store
			if name == "memory" {
				s = store.NewMemory()
			} else {
				sq, err := store.OpenSQLite(filepath.Join(t.TempDir(), "conc.db"))
				if err != nil {
					t.Fatal(err)
				}
				s = sq
			}
			defer s.Close()
			runConcurrent(t, s)
		})
	}
}

// TestConcurrentEnqueueLeasedBurst: goroutines EnqueueLeased into one idle
// lane at once (so that the SQLite writer batches them): exactly one gets
// the lease, and it is the lane's first job.
func TestConcurrentEnqueueLeasedBurst(t *testing.T) {
	for _, name := range []string{"sqlite", "memory"} {
		t.Run(name, func(t *testing.T) {
			var s store.Store = store.NewMemory()
			if name == "sqlite" {
				sq, err := store.OpenSQLite(filepath.Join(t.TempDir(), "burst.db"))
				if err != nil {
					t.Fatal(err)
				}
				s = sq
			}
			defer s.Close()
			const rounds, n = 30, 8
			for round := range rounds {
				contact := fmt.Sprint("burst-", round)
				type res struct {
					id  int64
					l   *store.Lease
					err error
				}
				out := make(chan res, n)
				start := make(chan struct{})
				for range n {
					go func() {
						<-start
						id, l, err := s.EnqueueLeased(ctx, store.NewJob{Queue: store.Outbound, ChannelID: "ch", ContactID: contact},
							nil, time.Now(), time.Hour)
						out <- res{id, l, err}
					}()
				}
				close(start)
				var leased []int64
				minID := int64(1 << 62)
				for range n {
					r := <-out
					if r.err != nil {
						t.Fatal(r.err)
					}
					minID = min(minID, r.id)
					if r.l != nil {
						leased = append(leased, r.l.Jobs[0].ID)
					}
				}
				if len(leased) != 1 || leased[0] != minID {
					t.Fatalf("round %d: leased %v of %d jobs into one idle lane, want exactly the first (%d)", round, leased, n, minID)
				}
			}
		})
	}
}

type cLane struct {
	q       store.Queue
	ch, con string
}

func runConcurrent(t *testing.T, s store.Store) {
	const producers, workers, perProducer, sharedKeys = 6, 4, 50, 8
	var (
		mu       sync.Mutex
		holder   = map[cLane]string{}  // lane -> token of its live lease
		finished = map[cLane][]int64{} // lane -> jobs in the order they finished
		finCount = map[int64]int{}
		claimed  = map[string]int{}
		produced atomic.Int64 // jobs stored
		done     atomic.Int64 // jobs finished
		prodLeft atomic.Int64
		stop     atomic.Bool
		wg       sync.WaitGroup
	)
	prodLeft.Store(producers)
	deadline := time.Now().Add(20 * time.Second)
	fail := func(format string, args ...any) {
		t.Errorf(format, args...)
		stop.Store(true)
	}
	laneOf := func(j store.Job) cLane { return cLane{j.Queue, j.ChannelID, j.ContactID} }
	randJob := func(r *rand.Rand) store.NewJob {
		// Four lanes, so that concurrent writes to one lane share batches.
		return store.NewJob{Queue: pick(r, dQueues), ChannelID: "ch1", ContactID: pick(r, dContacts[:2]),
			MID: fmt.Sprint(r.IntN(1000))}
	}
	// take records a lease; false if its lane is held by another one.
	take := func(l store.Lease) bool {
		mu.Lock()
		defer mu.Unlock()
		ln := laneOf(l.Jobs[0])
		for i, j := range l.Jobs {
			if laneOf(j) != ln {
				fail("lease %s spans lanes", fmtLeases([]store.Lease{l}))
				return false
			}
			if i > 0 && j.ID <= l.Jobs[i-1].ID {
				fail("lease %s not in ID order", fmtLeases([]store.Lease{l}))
				return false
			}
		}
		if h, ok := holder[ln]; ok {
			fail("lease %s given while lane %v is held by %s", fmtLeases([]store.Lease{l}), ln, h[:6])
			return false
		}
		holder[ln] = l.Token
		return true
	}
	// end ends a lease (before the store does: the lane may be leased
	// again as soon as the store commits), recording finished jobs.
	end := func(l store.Lease, fin []store.Job) {
		mu.Lock()
		defer mu.Unlock()
		ln := laneOf(l.Jobs[0])
		if holder[ln] != l.Token {
			fail("lane %v: ending lease %s not its holder", ln, l.Token[:6])
		}
		delete(holder, ln)
		for _, j := range fin {
			finished[ln] = append(finished[ln], j.ID)
			finCount[j.ID]++
		}
	}
	// work runs a lease to its end with a random outcome.
	work := func(r *rand.Rand, l store.Lease) {
		if !take(l) {
			return
		}
		var err error
		switch k := r.IntN(10); {
		case k < 1:
			// Two Completes of one lease at once: exactly one succeeds.
			end(l, l.Jobs)
			errs := make(chan error, 2)
			for range 2 {
				go func() { errs <- s.Complete(ctx, l.Token, "") }()
			}
			e1, e2 := <-errs, <-errs
			if (e1 == nil) == (e2 == nil) || !errors.Is(errors.Join(e1, e2), store.ErrLeaseLost) {
				fail("two Completes of one lease: %v, %v; want one nil, one ErrLeaseLost", e1, e2)
			}
			done.Add(int64(len(l.Jobs)))
		case k < 5:
			end(l, l.Jobs)
			err = s.Complete(ctx, l.Token, "")
			done.Add(int64(len(l.Jobs)))
		case k < 6:
			follow := []store.NewJob{randJob(r)}
			end(l, l.Jobs)
			produced.Add(1) // before it exists, so that nobody stops early
			err = s.CompleteWith(ctx, l.Token, "", follow)
			done.Add(int64(len(l.Jobs)))
		case k < 8 && len(l.Jobs) > 1:
			keep := 1 + r.IntN(len(l.Jobs)-1)
			if err = s.Release(ctx, l.Token, keep); err == nil {
				end(l, l.Jobs[:keep])
				err = s.Complete(ctx, l.Token, "")
				done.Add(int64(keep))
			}
		case k < 9:
			end(l, nil)
			err = s.Retry(ctx, l.Token, time.Now(), "again")
		default:
			end(l, l.Jobs)
			err = s.Kill(ctx, l.Token, "dead")
			done.Add(int64(len(l.Jobs)))
		}
		if err != nil {
			fail("ending lease %s: %v", fmtLeases([]store.Lease{l}), err)
		}
	}

	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer prodLeft.Add(-1)
			r := rand.New(rand.NewPCG(uint64(p), 1))
			for i := 0; i < perProducer && !stop.Load(); i++ {
				var keys []store.Key
				var shared string
				switch r.IntN(4) {
				case 0:
					shared = fmt.Sprint("shared-", r.IntN(sharedKeys))
					keys = []store.Key{{Name: shared, Expires: time.Now().Add(time.Hour)}}
				case 1:
					keys = []store.Key{{Name: fmt.Sprint("p", p, "-", i), Expires: time.Now().Add(time.Hour)}}
				}
				if r.IntN(2) == 0 {
					produced.Add(1)
					_, l, err := s.EnqueueLeased(ctx, randJob(r), keys, time.Now(), time.Hour)
					if errors.Is(err, store.ErrDuplicate) && shared != "" {
						produced.Add(-1)
						continue
					}
					if err != nil {
						fail("EnqueueLeased: %v", err)
						return
					}
					if shared != "" {
						mu.Lock()
						claimed[shared]++
						mu.Unlock()
					}
					if l != nil {
						work(r, *l)
					}
					continue
				}
				jobs := []store.NewJob{randJob(r)}
				for r.IntN(2) == 0 {
					jobs = append(jobs, randJob(r))
				}
				produced.Add(int64(len(jobs)))
				_, err := s.Enqueue(ctx, jobs, keys)
				if errors.Is(err, store.ErrDuplicate) && shared != "" {
					produced.Add(-int64(len(jobs)))
					continue
				}
				if err != nil {
					fail("Enqueue: %v", err)
					return
				}
				if shared != "" {
					mu.Lock()
					claimed[shared]++
					mu.Unlock()
				}
			}
		}()
	}
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 2))
			for !stop.Load() {
				if prodLeft.Load() == 0 && done.Load() >= produced.Load() {
					return
				}
				if time.Now().After(deadline) {
					fail("not done after 20s: %d of %d", done.Load(), produced.Load())
					return
				}
				req := store.LeaseRequest{Queue: pick(r, dQueues), Now: time.Now(), For: time.Hour,
					Lanes: 1 + r.IntN(3), PerLane: 1 + r.IntN(4)}
				if r.IntN(3) == 0 {
					req.ChannelID = pick(r, dChannels)
				}
				ls, err := s.Lease(ctx, req)
				if err != nil {
					fail("Lease: %v", err)
					return
				}
				if len(ls) == 0 {
					time.Sleep(200 * time.Microsecond)
				}
				for _, l := range ls {
					work(r, l)
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	all, err := s.Jobs(ctx, store.JobFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(all)) != produced.Load() {
		t.Errorf("%d jobs stored, %d produced", len(all), produced.Load())
	}
	want := map[cLane][]int64{}
	for _, j := range all {
		if j.State != store.Done && j.State != store.Dead {
			t.Errorf("job %d left %s", j.ID, j.State)
		}
		if finCount[j.ID] != 1 {
			t.Errorf("job %d finished %d times", j.ID, finCount[j.ID])
		}
		want[laneOf(j)] = append(want[laneOf(j)], j.ID)
	}
	for ln, ids := range want {
		if !slices.Equal(finished[ln], ids) {
			t.Errorf("lane %v finished %v, want %v", ln, finished[ln], ids)
		}
	}
	for k, n := range claimed {
		if n != 1 {
			t.Errorf("shared key %s claimed %d times", k, n)
		}
	}
}
