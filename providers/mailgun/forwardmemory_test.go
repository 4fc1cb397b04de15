package mailgun

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// Slow clients hold only the bytes they sent: twenty connections that
// post a few bytes and then stall (more than any fixed number of slots)
// do not keep a real, signed forward from being read and stored.
func TestTricklingForwardsDoNotShutOutRealMail(t *testing.T) {
	env := hdSetup(t)
	const budget = 2 << 20
	env.p.forwardMemory = newByteBudget(budget)
	env.p.forwardWait = 5 * time.Second
	const stalled, sent = 20, 10
	done := make(chan struct{}, stalled)
	for range stalled {
		pr, pw := io.Pipe()
		t.Cleanup(func() { pw.CloseWithError(io.ErrUnexpectedEOF) })
		r := httptest.NewRequest(http.MethodPost, "/mailgun/mail01/inbound", pr)
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		go func() {
			env.p.handleInbound(httptest.NewRecorder(), r, maxForwardBytes)
			done <- struct{}{}
		}()
		go pw.Write([]byte(strings.Repeat("x", sent)))
	}
	waitForCharge(t, env.p.forwardMemory, budget-stalled*2*sent)

	hdCheckOK(t, hdInbound(env, hdSigned(t, "forward-urlencoded.form", hdFresh(time.Minute), hdToken)))
	if n := len(env.ingest.got); n != 1 {
		t.Fatalf("%d ingests, want the real forward stored once", n)
	}
	if len(done) != 0 {
		t.Fatal("a stalled forward was answered while its client was still sending")
	}
}

// A forward that cannot be charged within the wait is answered 503 (Mailgun
// retries) and nothing of it is stored; once memory is back it goes through,
// and what it was charged is returned when it is answered.
func TestForwardWithoutMemoryIsRetriedLater(t *testing.T) {
	env := hdSetup(t)
	env.p.forwardMemory = newByteBudget(2 << 20)
	env.p.forwardWait = 20 * time.Millisecond
	if !env.p.forwardMemory.take(context.Background(), 2<<20, time.Second) {
		t.Fatal("a free budget refused")
	}
	hdCheckError(t, hdInbound(env, hdSigned(t, "forward-urlencoded.form", hdFresh(time.Minute), hdToken)),
		http.StatusServiceUnavailable)
	if n := len(env.ingest.got); n != 0 {
		t.Fatalf("%d ingests of a forward that was not read", n)
	}
	env.p.forwardMemory.give(2 << 20)
	hdCheckOK(t, hdInbound(env, hdSigned(t, "forward-urlencoded.form", hdFresh(time.Minute), hdToken)))
	if n := len(env.ingest.got); n != 1 {
		t.Fatalf("%d ingests, want 1 once memory was back", n)
	}
	if free := freeBytes(env.p.forwardMemory); free != 2<<20 {
		t.Fatalf("%d bytes free after every forward was answered, want all %d back", free, 2<<20)
	}
}

// take waits for bytes to come back, and gives up at its deadline or when
// its context ends.
func TestByteBudgetWaitsAndGivesUp(t *testing.T) {
	b := newByteBudget(100)
	if !b.take(context.Background(), 100, time.Second) {
		t.Fatal("a free budget refused")
	}
	if b.take(context.Background(), 1, 10*time.Millisecond) {
		t.Fatal("an empty budget gave a byte")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if b.take(ctx, 1, time.Minute) {
		t.Fatal("a canceled wait was given a byte")
	}
	got := make(chan bool)
	go func() { got <- b.take(context.Background(), 60, 5*time.Second) }()
	b.give(50)
	b.give(50)
	if !<-got {
		t.Fatal("a waiter was not given bytes that came back")
	}
	if free := freeBytes(b); free != 40 {
		t.Fatalf("%d bytes free, want 40", free)
	}
}

func freeBytes(b *byteBudget) int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.free
}

// waitForCharge waits until the budget has exactly free bytes left.
func waitForCharge(t *testing.T, b *byteBudget, free int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for freeBytes(b) != free {
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes free, want %d", freeBytes(b), free)
		}
		time.Sleep(time.Millisecond)
	}
}
