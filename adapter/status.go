package adapter

import (
	"context"
	"errors"

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
