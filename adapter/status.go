package adapter

import (
	"context"
	"errors"
	"fmt"

	"github.com/bonychat/bonychat-adapter/providers"
	"github.com/bonychat/bonychat-adapter/schema"
	"github.com/bonychat/bonychat-adapter/store"
)

// statusRank orders receipts: they only move forward, and failed is final.
var statusRank = map[string]int{
	schema.StatusSent:      1,
	schema.StatusDelivered: 2,
	schema.StatusRead:      3,
	schema.StatusFailed:    4,
}

// postStatus queues a message_status event for BonyChat if it moves the
// message's status forward; a late or duplicate receipt is dropped here.
// The check, the enqueue and the advance run under a per-mId lock, and the
// advance is recorded only after the event is stored, so a failure leaves
// the receipt to be retried rather than lost.
func (p *pipeline) postStatus(ctx context.Context, channelID, contactID, mID, value, reason string) error {
	rank := statusRank[value]
	unlock := p.statusMu.lock(mID)
	defer unlock()
	current, err := p.st.StatusOf(ctx, mID)
	switch {
	case err == nil && current.Rank >= rank:
		return nil // late or duplicate: never move backwards
	case err == nil && value == schema.StatusFailed && current.Rank >= statusRank[schema.StatusDelivered]:
		return nil // a delivered or read message cannot fail any more
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return err
	}
	ev := schema.Event{Type: schema.EventMessageStatus, MID: mID, Timestamp: providers.NowMillis(),
		Status: &schema.Status{Value: value, Message: reason}}
	job := store.NewJob{Queue: store.Platform, ChannelID: channelID, ContactID: contactID, MID: mID,
		Payload: mustJSON(platformJob{Event: ev})}
	if _, err := p.st.Enqueue(ctx, []store.NewJob{job}, nil); err != nil {
		return err
	}
	wake(p.platWake)
	_, err = p.st.AdvanceStatus(ctx, store.Status{MID: mID, Value: value, Rank: rank})
	return err
}

// channelStatuses is one channel's providers.StatusSink.
type channelStatuses struct {
	p         *pipeline
	channelID string
}

func (c channelStatuses) PostStatus(ctx context.Context, contactID, mID, value, reason string) error {
	if _, ok := statusRank[value]; !ok {
		return fmt.Errorf("unknown status %q", value)
	}
	return c.p.postStatus(ctx, c.channelID, contactID, mID, value, reason)
}

// storeRecords is providers.Records on the store.
type storeRecords struct{ st store.Store }

func (r storeRecords) Put(ctx context.Context, ns, key string, value []byte) error {
	return r.st.Put(ctx, ns, key, value)
}

func (r storeRecords) Get(ctx context.Context, ns, key string) ([]byte, bool, error) {
	v, err := r.st.Get(ctx, ns, key)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, false, nil
	case err != nil:
		return nil, false, err
	}
	return v, true, nil
}
