package adapter

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bonychat/bonychat-adapter/providers"
	"github.com/bonychat/bonychat-adapter/schema"
	"github.com/bonychat/bonychat-adapter/store"
)

// completeCommittedThenBusy stores the first Complete but reports it
// failed (a COMMIT whose fsync failed late), and refuses the next few
// Completes outright (the store stays unwritable for a few seconds).
type completeCommittedThenBusy struct {
	store.Store
	calls atomic.Int32
}

func (s *completeCommittedThenBusy) Complete(ctx context.Context, token, lastError string) error {
	switch n := s.calls.Add(1); {
	case n == 1:
		if err := s.Store.Complete(ctx, token, lastError); err != nil {
			return err
		}
		return errors.New("store: sqlite: commit: disk I/O error")
	case n <= 5:
		return errors.New("store: sqlite: database is locked")
	}
	return s.Store.Complete(ctx, token, lastError)
}

// When all of writeDurably's tries report an error (the first stored after
// all), finishOutbound answers "pending" and hands the end to
// finishInBackground, whose CompleteWith meets ErrLeaseLost: the refusal is
// the job's stored end and the request said 200, so the failed status must
// still be posted.
func TestARefusalStoredDespiteErrorsThenEndedInTheBackgroundIsStillReported(t *testing.T) {
	fake := &fakeProvider{sendErr: &providers.SendError{Kind: providers.Permanent, Reason: "not a mobile number"}}
	st := &completeCommittedThenBusy{Store: store.NewMemory()}
	h := newHarnessOn(t, st, func(c *Config) { c.Outbound.Wait = 8 * time.Second }, fake)
	rec := h.postJSON("/message", demoToken, textRequest("demo", phoneContact, "hi"))
	if rec.Code == http.StatusBadRequest {
		return // the request told the refusal itself
	}
	if rec.Code != http.StatusOK {
		t.Fatalf("got %d %s", rec.Code, rec.Body)
	}
	mID := mIDOf(t, rec.Body.Bytes())
	deadline := time.Now().Add(5 * time.Second)
	for len(h.statusesFor(mID)) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	ss := h.statusesFor(mID)
	if len(ss) != 1 || ss[0].Value != schema.StatusFailed {
		t.Fatalf("the message was refused (answered 200, job %q) but no failed status was posted: %+v",
			jobLastError(t, h, mID), ss)
	}
}
