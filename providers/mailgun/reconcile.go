package mailgun

import (
	"context"
	"fmt"
	"strings"
	"time"

	mailgungo "github.com/mailgun/mailgun-go/v4"
	"github.com/mailgun/mailgun-go/v4/events"

	"github.com/bonychat/bonychat-adapter/providers"
)

// Reconciliation bounds. Mailgun's events show up a little after the
// message was taken, so "not found" is only believed after a few looks.
const (
	defaultReconcileTries = 3
	defaultReconcilePause = 2 * time.Second
	reconcileTimeout      = 20 * time.Second // all queries and waits
	reconcilePages        = 3                // pages read per query
)

// reconcile decides an ambiguous send by our Message-Id (msgID, without
// angle brackets, as the events API stores it): an "accepted" event for it
// means Mailgun took the e-mail (its id is returned); none, after
// p.reconcileTries looks, means it did not, and the send may be retried
// (Unreachable); an events API that cannot answer leaves the send
// Ambiguous, so it is not sent twice.
func (p *Provider) reconcile(ctx context.Context, msgID string, cause *providers.SendError) (string, *providers.SendError) {
	ctx, cancel := context.WithTimeout(ctx, reconcileTimeout)
	defer cancel()
	tries := max(p.reconcileTries, 1)
	var lastErr error
	for try := 0; try < tries; try++ {
		if try > 0 {
			select {
			case <-ctx.Done():
				return "", ambiguousAfter(cause, ctx.Err())
			case <-time.After(p.reconcilePause):
			}
		}
		found, err := p.findAccepted(ctx, msgID)
		if found {
			return msgID, nil
		}
		lastErr = err
	}
	if lastErr != nil {
		return "", ambiguousAfter(cause, lastErr)
	}
	return "", &providers.SendError{Kind: providers.Unreachable, Code: cause.Code,
		Reason: "Mailgun did not take the message; retrying", Err: cause}
}

// findAccepted looks for an accepted event of msgID in the events API.
func (p *Provider) findAccepted(ctx context.Context, msgID string) (bool, error) {
	it := p.sender.ListEvents(&mailgungo.ListEventOptions{
		Limit:  25,
		Filter: map[string]string{"message-id": msgID, "event": "accepted"},
	})
	var page []mailgungo.Event
	for n := 0; n < reconcilePages && it.Next(ctx, &page); n++ {
		for _, e := range page {
			if a, ok := e.(*events.Accepted); ok && strings.Trim(a.Message.Headers.MessageID, "<> ") == msgID {
				return true, nil
			}
		}
	}
	return false, it.Err()
}

func ambiguousAfter(cause *providers.SendError, err error) *providers.SendError {
	return &providers.SendError{Kind: providers.Ambiguous, Code: cause.Code,
		Reason: cause.Reason + " (Mailgun's events could not be checked, so it is not sent again)",
		Err:    fmt.Errorf("%w; events API: %v", cause, err)}
}
