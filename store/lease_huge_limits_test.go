package store_test

import (
	"fmt"
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/bonychat/bonychat-adapter/store"
)

// TestLeaseWithHugeLimitsAnswers: a LeaseRequest with Lanes or PerLane above 2^62
// (math.MaxInt, "no limit") must answer like Memory does. The SQLite store
// rounds the limit up to a power of two (roundUpPow2 in sql.go), which
// overflowed and looped for ever inside the writer's open transaction: the
// Lease never returned, every later write of the store hung behind it, and
// Close blocked.
func TestLeaseWithHugeLimitsAnswers(t *testing.T) {
	for _, req := range []store.LeaseRequest{
		{Queue: store.Outbound, For: time.Minute, Lanes: math.MaxInt},
		{Queue: store.Outbound, For: time.Minute, PerLane: math.MaxInt},
	} {
		t.Run(fmt.Sprintf("lanes=%d,perLane=%d", req.Lanes, req.PerLane), func(t *testing.T) {
			for _, name := range []string{"memory", "sqlite"} {
				var s store.Store = store.NewMemory()
				if name == "sqlite" {
					s = openSQLite(t, filepath.Join(t.TempDir(), "adapter.db"))
				}
				if _, err := s.Enqueue(ctx, []store.NewJob{
					{Queue: store.Outbound, ChannelID: "ch", ContactID: "c", MID: "1"},
					{Queue: store.Outbound, ChannelID: "ch", ContactID: "c", MID: "2"},
				}, nil); err != nil {
					t.Fatal(err)
				}
				req.Now = time.Now()
				type result struct {
					ls  []store.Lease
					err error
				}
				out := make(chan result, 1)
				go func() {
					ls, err := s.Lease(ctx, req)
					out <- result{ls, err}
				}()
				select {
				case r := <-out:
					if r.err != nil || len(r.ls) != 1 {
						t.Errorf("%s: Lease = %d leases, %v; want 1", name, len(r.ls), r.err)
					}
					s.Close()
				case <-time.After(5 * time.Second):
					// The writer spins for ever: Close would block too.
					t.Errorf("%s: Lease(%+v) has not returned after 5 s", name, req)
				}
			}
		})
	}
}
