package store_test

import (
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bonychat/bonychat-adapter/store"
)

// BenchmarkEnqueueLeaseComplete: one op is a job's whole life (enqueue,
// lease, complete: three writes), from 32 goroutines per core, each working
// its own channel so that it leases its own job.
func BenchmarkEnqueueLeaseComplete(b *testing.B) {
	b.Run("Memory", func(b *testing.B) { benchLife(b, store.NewMemory()) })
	b.Run("SQLite", func(b *testing.B) {
		s, err := store.OpenSQLite(filepath.Join(b.TempDir(), "bench.db"))
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		c0, w0 := store.Commits(s)
		benchLife(b, s)
		c1, w1 := store.Commits(s)
		if c1 > c0 {
			b.ReportMetric(float64(w1-w0)/float64(c1-c0), "writes/commit")
		}
	})
}

func benchLife(b *testing.B, s store.Store) {
	var g atomic.Int64
	payload := []byte(`{"mId":"01J00000000000000000000000","text":"hello"}`)
	b.SetParallelism(32)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ch := fmt.Sprint("bench-", g.Add(1))
		for pb.Next() {
			if _, err := s.Enqueue(ctx, []store.NewJob{{Queue: store.Outbound, ChannelID: ch, ContactID: "c", Payload: payload}}, nil); err != nil {
				b.Error(err)
				return
			}
			ls, err := s.Lease(ctx, store.LeaseRequest{Queue: store.Outbound, Now: time.Now(), For: time.Minute, Lanes: 1, PerLane: 1, ChannelID: ch})
			if err != nil || len(ls) != 1 {
				b.Errorf("Lease: %v, %v", ls, err)
				return
			}
			if err := s.Complete(ctx, ls[0].Token, ""); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkLeaseWithBacklog: one op is a Lease that finds nothing ready,
// with 100,000 platform events waiting out a BonyChat outage (10,000
// contacts, each lane's first event retrying an hour from now). Lease runs
// inside the single writer, so its cost delays every other write.
func BenchmarkLeaseWithBacklog(b *testing.B) {
	s, err := store.OpenSQLite(filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	later := time.Now().Add(time.Hour)
	for batch := range 100 {
		jobs := make([]store.NewJob, 0, 1000)
		for i := range 1000 {
			jobs = append(jobs, store.NewJob{Queue: store.Platform, ChannelID: "ch", ContactID: fmt.Sprint("c", (batch*1000+i)%10000),
				Payload: []byte(`{"event":{}}`), NotBefore: later})
		}
		if _, err := s.Enqueue(ctx, jobs, nil); err != nil {
			b.Fatal(err)
		}
	}
	for _, q := range []store.Queue{store.Outbound, store.Platform} {
		b.Run(string(q), func(b *testing.B) {
			for b.Loop() {
				ls, err := s.Lease(ctx, store.LeaseRequest{Queue: q, Now: time.Now(), For: time.Minute, Lanes: 16, PerLane: 20})
				if err != nil || len(ls) != 0 {
					b.Fatalf("Lease: %d leases, %v", len(ls), err)
				}
			}
		})
	}
}

// BenchmarkRetryInALongLane: a lease and a retry of the head of one
// contact's lane with 50,000 events behind it (BonyChat down). Both run
// inside SQLite's single writer (or under Memory's lock), so their cost
// must not grow with the lane.
func BenchmarkRetryInALongLane(b *testing.B) {
	b.Run("Memory", func(b *testing.B) { benchRetryLongLane(b, store.NewMemory()) })
	b.Run("SQLite", func(b *testing.B) {
		s, err := store.OpenSQLite(filepath.Join(b.TempDir(), "bench.db"))
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		benchRetryLongLane(b, s)
	})
}

func benchRetryLongLane(b *testing.B, s store.Store) {
	jobs := make([]store.NewJob, 1000)
	for i := range jobs {
		jobs[i] = store.NewJob{Queue: store.Platform, ChannelID: "ch", ContactID: "c", Payload: []byte(`{"event":{}}`)}
	}
	for range 50 {
		if _, err := s.Enqueue(ctx, jobs, nil); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		ls, err := s.Lease(ctx, store.LeaseRequest{Queue: store.Platform, Now: time.Now(), For: time.Minute, Lanes: 16, PerLane: 1})
		if err != nil || len(ls) != 1 {
			b.Fatalf("Lease: %d leases, %v", len(ls), err)
		}
		if err := s.Retry(ctx, ls[0].Token, time.Now(), "BonyChat is down"); err != nil {
			b.Fatal(err)
		}
	}
}
