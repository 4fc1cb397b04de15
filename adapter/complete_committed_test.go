package adapter

import (
	"context"
	"errors"
	"net/http"
	"strings"
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
// failure: writeDurably's next try finds the lease gone (ErrLeaseLost),
// which must not be taken for a takeover: the refusal is still told, to
// the waiting request or as a failed status.
func TestARefusalWhoseCompletionWasStoredDespiteAnErrorIsStillReported(t *testing.T) {
	refusalIsTold(t, &completeCommittedThenFailed{Store: store.NewMemory()}, 3*time.Second)
}

// refusalIsTold sends a message the provider refuses, on st, and checks the
// agent learns it: a 400 answer, or a 200 and then a failed status.
func refusalIsTold(t *testing.T, st store.Store, wait time.Duration) {
	t.Helper()
	fake := &fakeProvider{sendErr: &providers.SendError{Kind: providers.Permanent, Reason: "not a mobile number"}}
	h := newHarnessOn(t, st, func(c *Config) { c.Outbound.Wait = wait }, fake)
	rec := h.postJSON("/message", demoToken, textRequest("demo", phoneContact, "hi"))
	if rec.Code == http.StatusBadRequest && strings.Contains(rec.Body.String(), "not a mobile number") {
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

func jobLastError(t *testing.T, h *harness, mID string) string {
	j, err := h.st.JobByMID(t.Context(), store.Outbound, mID)
	if err != nil {
		return err.Error()
	}
	return string(j.State) + ": " + j.LastError
}
