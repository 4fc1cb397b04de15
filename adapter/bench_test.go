package adapter

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/bonychat/bonychat-adapter/internal/testkit"
	"github.com/bonychat/bonychat-adapter/providers"
	"github.com/bonychat/bonychat-adapter/store"
)

// BenchmarkMessagePath measures the whole POST /message path (auth, decode,
// validate, store the job, lease it, send through an instant provider,
// complete it, answer) with 64 concurrent clients, each writing to its own
// contact, on the durable SQLite store and on the in-memory store.
// The README's Performance section records the figures.
func BenchmarkMessagePath(b *testing.B) {
	b.Run("memory", func(b *testing.B) { benchMessagePath(b, store.NewMemory()) })
	b.Run("sqlite", func(b *testing.B) {
		st, err := store.OpenSQLite(filepath.Join(b.TempDir(), "bench.db"))
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		benchMessagePath(b, st)
	})
}

func benchMessagePath(b *testing.B, st store.Store) {
	cfg := testConfig("http://127.0.0.1:1/unused")
	cfg.Outbound.Workers = 64
	opts := Options{Version: "bench", Logger: slog.New(slog.DiscardHandler), Transport: testkit.NewLocalOnlyTransport(),
		Store: st, NewProvider: func(ChannelConfig, providers.Deps) (providers.Provider, error) {
			return &fakeProvider{}, nil
		}}
	srv, err := New(cfg, opts)
	if err != nil {
		b.Fatal(err)
	}
	stop, err := srv.StartWorkers()
	if err != nil {
		b.Fatal(err)
	}
	defer stop()
	h := srv.Handler()
	var client atomic.Int64
	b.SetParallelism(32) // 64 goroutines on 2 cores
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		contact := fmt.Sprintf("+6010%09d", client.Add(1))
		body := []byte(`{"channelId":"demo","contactId":"` + contact + `","message":{"type":"text","text":"benchmark"}}`)
		for pb.Next() {
			req := httptest.NewRequest(http.MethodPost, "/message", bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+demoToken)
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				b.Errorf("status %d: %s", rec.Code, rec.Body)
				return
			}
		}
	})
}
