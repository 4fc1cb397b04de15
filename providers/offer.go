package providers

import (
	"context"
	"time"
)

// OfferRecord keeps value under ns/key before a send whose answer may come
// at once (the options of a quick reply, which the contact answers by
// number), and returns undo, which puts back what was there before. The
// caller calls undo when the send is refused for good (RefusedUnsent):
// else the contact's answer to the question they did get would be read
// against options they never saw.
func OfferRecord(ctx context.Context, r Records, ns, key string, value []byte) (undo func(), err error) {
	old, found, err := r.Get(ctx, ns, key)
	if err != nil {
		return nil, err
	}
	if err := r.Put(ctx, ns, key, value); err != nil {
		return nil, err
	}
	if !found {
		old = nil // read as no record
	}
	return func() {
		// The caller may be gone: the undo must still be written.
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = r.Put(uctx, ns, key, old)
	}, nil
}

// RefusedUnsent: err refuses the message for good and no part of it
// reached the provider (sent holds the IDs of the parts that did).
func RefusedUnsent(sent Sent, err error) bool {
	if err == nil || len(sent.ProviderIDs) > 0 {
		return false
	}
	k := AsSendError(err).Kind
	return k == Permanent || k == Config
}
