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
