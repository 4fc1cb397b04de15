package adapter

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bonychat/bonychat-adapter/providers"
	"github.com/bonychat/bonychat-adapter/schema"
	"github.com/bonychat/bonychat-adapter/store"
)

// concurrencyProvider holds each send a while and records how many were in
// flight at once.
type concurrencyProvider struct {
	now, peak atomic.Int32
}

func (p *concurrencyProvider) Kind() string { return "console" }

func (p *concurrencyProvider) Send(ctx context.Context, _ providers.Recipient, _ schema.Message, mID string) (providers.Sent, error) {
	n := p.now.Add(1)
	for {
		old := p.peak.Load()
		if n <= old || p.peak.CompareAndSwap(old, n) {
			break
		}
	}
	time.Sleep(150 * time.Millisecond)
	p.now.Add(-1)
	return providers.Sent{ProviderIDs: []string{"c-" + mID}}, nil
}

// fsyncEnqueue takes a few milliseconds per EnqueueLeased, as SQLite's
// group commit does (its fsync).
type fsyncEnqueue struct{ store.Store }

func (s fsyncEnqueue) EnqueueLeased(ctx context.Context, j store.NewJob, keys []store.Key, now time.Time, d time.Duration) (int64, *store.Lease, error) {
	time.Sleep(10 * time.Millisecond)
	return s.Store.EnqueueLeased(ctx, j, keys, now, d)
}

// outbound.workers bounds the sends in flight ("outbound.workers bounds
// the sends in flight either way", enqueueOutbound). The check of outBusy
// and the lease EnqueueLeased takes are not one step: concurrent requests
// to different idle contacts all see a free slot, all get their job leased,
// and all send at once (with SQLite, concurrent requests even share one commit).
func TestOutboundWorkersBoundConcurrentRequests(t *testing.T) {
	sq, err := store.OpenSQLite(filepath.Join(t.TempDir(), "a.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sq.Close() })
	for name, st := range map[string]store.Store{"memory, slow commit": fsyncEnqueue{store.NewMemory()}, "sqlite": sq} {
		t.Run(name, func(t *testing.T) { workersBound(t, st) })
	}
}

func workersBound(t *testing.T, st store.Store) {
	prov := &concurrencyProvider{}
	h := startHarnessFor(t, st, func(c *Config) {
		c.Outbound.Workers = 1
		c.Outbound.Wait = 2 * time.Second
	}, prov, nil)
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Go(func() {
			rec := h.postJSON("/message", demoToken, textRequest("demo", fmt.Sprintf("+6017787280%d", i), "hi"))
			if rec.Code != http.StatusOK {
				t.Errorf("%d %s", rec.Code, rec.Body)
			}
		})
	}
	wg.Wait()
	if p := prov.peak.Load(); p > 1 {
		t.Fatalf("%d sends in flight at once with outbound.workers 1", p)
	}
}
