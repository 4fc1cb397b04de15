package adapter

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

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
	refusalIsTold(t, &completeCommittedThenBusy{Store: store.NewMemory()}, 8*time.Second)
}
