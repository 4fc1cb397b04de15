package adapter

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/bonychat/bonychat-adapter/providers"
	"github.com/bonychat/bonychat-adapter/schema"
	"github.com/bonychat/bonychat-adapter/store"
)

// BonyChat is down past platform.max_age: a message's "delivered" receipt
// dies. BonyChat comes back, the contact reads the message and "read" is
// posted. The operator then replays the dead events (`jobs retry`, the
// documented way back from an outage): the old "delivered" must not reach
// BonyChat after "read" (statuses only move forward).
func TestReplayedReceiptNeverMovesAStatusBackwards(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Platform.MaxAge = 200 * time.Millisecond
		c.Platform.Retries = 0
		c.Platform.RetryMin, c.Platform.RetryMax = 10*time.Millisecond, 20*time.Millisecond
	})
	p := h.srv.pipe
	ctx := t.Context()
	const mID = "m-replayed"
	h.platform.script(slices.Repeat([]int{http.StatusServiceUnavailable}, 1000)...)
	if err := p.postStatus(ctx, "demo", phoneContact, mID, schema.StatusDelivered, ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return h.jobCount(store.Dead) == 1 })
	h.platform.script() // BonyChat is back
	if err := p.postStatus(ctx, "demo", phoneContact, mID, schema.StatusRead, ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return h.jobCount(store.Done) == 1 })
	if n, err := h.st.Revive(context.Background(), nil, time.Now()); err != nil || n != 1 {
		t.Fatalf("revive: %d %v", n, err)
	}
	wake(p.platWake)
	waitFor(t, func() bool { return h.jobCount(store.Pending)+h.jobCount(store.Leased) == 0 })
	time.Sleep(50 * time.Millisecond)
	var accepted []string
	for _, post := range h.platform.posts() {
		if post.Status != http.StatusOK {
			continue
		}
		for _, e := range post.Payload.Events {
			if e.Type == schema.EventMessageStatus && e.MID == mID {
				accepted = append(accepted, e.Status.Value)
			}
		}
	}
	for i := 1; i < len(accepted); i++ {
		if statusRank[accepted[i]] < statusRank[accepted[i-1]] {
			t.Fatalf("BonyChat received %v for %s: the replayed receipt moved the status backwards", accepted, mID)
		}
	}
}

// One stored event that cannot be read (a damaged row, a payload of
// another version) dies alone: the readable events leased in the same
// batch, before and after it, are still delivered, not killed with it.
func TestAnUnreadableStoredEventDiesAlone(t *testing.T) {
	h := buildHarness(t, store.NewMemory(), nil, nil)
	p := h.srv.pipe
	ctx := context.Background()
	var jobs []store.NewJob
	for i, text := range []string{"a", "", "c"} {
		payload := []byte("{not json")
		if i != 1 {
			ev := schema.Event{Type: schema.EventMessage, MID: providers.NewMID(), Timestamp: providers.NowMillis(),
				Message: schema.TextMessage(text)}
			payload = mustJSON(platformJob{Event: ev})
		}
		jobs = append(jobs, store.NewJob{Queue: store.Platform, ChannelID: "demo", ContactID: phoneContact, Payload: payload})
	}
	if _, err := h.st.Enqueue(ctx, jobs, nil); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		ls, err := h.st.Lease(ctx, store.LeaseRequest{Queue: store.Platform, For: p.platformLease(), Lanes: 1, PerLane: schema.MaxEvents})
		if err != nil {
			t.Fatal(err)
		}
		if len(ls) == 0 {
			break
		}
		p.runPlatform(ctx, ls[0])
	}
	if done, dead := h.jobCount(store.Done), h.jobCount(store.Dead); done != 2 || dead != 1 {
		t.Fatalf("done %d, dead %d: want the two readable events delivered and only the unreadable one dead", done, dead)
	}
}
