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

// completeCommittedThenFailed records the first Complete and then reports
// a failure, as a COMMIT whose fsync failed after its frames reached the
// WAL (store.NotStored: outcome unknown, may be on disk).
type completeCommittedThenFailed struct {
	store.Store
	calls atomic.Int32
}

func (s *completeCommittedThenFailed) Complete(ctx context.Context, token, lastError string) error {
	err := s.Store.Complete(ctx, token, lastError)
	if s.calls.Add(1) == 1 && err == nil {
		return errors.New("store: sqlite: commit: disk I/O error")
	}
	return err
}

// A refusal whose completion was recorded although the store reported a
// failure: writeDurably's next try finds the lease gone (ErrLeaseLost), and
// finishOutbound takes that for a take-over: the waiting request is told
// "pending" (200) and no status is ever posted. The job is done with its
// reason, yet the agent sees the message as accepted and never learns it
// failed, or why.
func TestARefusalWhoseCompletionWasStoredDespiteAnErrorIsStillReported(t *testing.T) {
	fake := &fakeProvider{sendErr: &providers.SendError{Kind: providers.Permanent, Reason: "not a mobile number"}}
	st := &completeCommittedThenFailed{Store: store.NewMemory()}
	h := newHarnessOn(t, st, func(c *Config) { c.Outbound.Wait = 3 * time.Second }, fake)
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
		t.Fatalf("the message was refused (answered 200, job done with %q) but no failed status was posted: %+v",
			jobLastError(t, h, mID), ss)
	}
}

func jobLastError(t *testing.T, h *harness, mID string) string {
	j, err := h.st.JobByMID(t.Context(), store.Outbound, mID)
	if err != nil {
		return err.Error()
	}
	return string(j.State) + ": " + j.LastError
}
