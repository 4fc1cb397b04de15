package adapter

import (
	"context"
	"errors"
	"fmt"
	"time"

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
// The check and the enqueue run under a per-mId lock, and the event is
// stored with the status record (statusJob) in one write: a failure
// stores neither and leaves the receipt to be retried, a success makes
// the retry a duplicate.
func (p *pipeline) postStatus(ctx context.Context, channelID, contactID, mID, value, reason string) error {
	unlock := p.statusMu.Lock(mID)
	defer unlock()
	ok, err := p.statusAdvances(ctx, mID, value)
	if err != nil || !ok {
		return err
	}
	if _, err := p.st.Enqueue(ctx, []store.NewJob{statusJob(channelID, contactID, mID, value, reason)}, nil); err != nil {
		return err
	}
	wake(p.platWake)
	return nil
}

// statusAdvances reports whether value moves mID's status forward. Call it
// with the mId's status lock held.
func (p *pipeline) statusAdvances(ctx context.Context, mID, value string) (bool, error) {
	current, err := p.st.StatusOf(ctx, mID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return true, nil
	case err != nil:
		return false, err
	case current.Rank >= statusRank[value]:
		return false, nil // late or duplicate: never move backwards
	case value == schema.StatusFailed && current.Rank >= statusRank[schema.StatusDelivered]:
		return false, nil // a delivered or read message cannot fail any more
	}
	return true, nil
}

// statusJob is the platform job of a message_status event; storing it
// advances the mId's status record in the same write.
func statusJob(channelID, contactID, mID, value, reason string) store.NewJob {
	ev := schema.Event{Type: schema.EventMessageStatus, MID: mID, Timestamp: providers.NowMillis(),
		Status: &schema.Status{Value: value, Message: reason}}
	return store.NewJob{Queue: store.Platform, ChannelID: channelID, ContactID: contactID, MID: mID,
		Payload: mustJSON(platformJob{Event: ev}), Status: &store.Status{MID: mID, Value: value, Rank: statusRank[value]}}
}

// channelStatuses is one channel's providers.StatusSink.
type channelStatuses struct {
	p         *pipeline
	channelID string
}

// PostStatus posts a receipt for a message this channel sent. One for
// another channel's message is dropped: Mailgun posts a domain's events to
// every URL set for it, so channels sharing a domain each get every
// receipt, and only the sender's may post it (the first to arrive would
// otherwise post it to its own conversation, and the status record would
// drop the owner's as a duplicate). A message whose job is no longer kept
// cannot be checked and is posted as before.
func (c channelStatuses) PostStatus(ctx context.Context, contactID, mID, value, reason string) error {
	if _, ok := statusRank[value]; !ok {
		return fmt.Errorf("unknown status %q", value)
	}
	job, err := c.p.st.JobByMID(ctx, store.Outbound, mID)
	switch {
	case err == nil && job.ChannelID != c.channelID:
		c.p.s.log.Debug("receipt for another channel's message dropped", "channel", c.channelID, "mId", mID)
		return nil
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return err
	}
	return c.p.postStatus(ctx, c.channelID, contactID, mID, value, reason)
}

// storeRecords is providers.Records on the store.
type storeRecords struct{ st store.Store }

func (r storeRecords) Put(ctx context.Context, ns, key string, value []byte) error {
	return r.st.Put(ctx, ns, key, value)
}

func (r storeRecords) PutUntil(ctx context.Context, ns, key string, value []byte, expires time.Time) error {
	return r.st.PutUntil(ctx, ns, key, value, expires)
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
