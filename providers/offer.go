package providers

import (
	"context"
	"time"
)

// OfferRecord keeps value under ns/key before a send whose answer may come
// at once (the options of a quick reply, which the contact answers by
// number), and returns undo, which puts back what was there before the
// first attempt of the message offerID. The caller calls undo when the
// send is refused for good (RefusedUnsent): else the contact's answer to
// the question they did get would be read against options they never saw.
// What was there before is kept per message (ns-before, key|offerID) from
// its first attempt on: a retry finds the message's own options in ns/key
// and must not take them for the contact's.
func OfferRecord(ctx context.Context, r Records, ns, key, offerID string, value []byte) (undo func(), err error) {
	beforeNS, beforeKey := ns+"-before", key+"|"+offerID
	if _, kept, err := r.Get(ctx, beforeNS, beforeKey); err != nil {
		return nil, err
	} else if !kept {
		old, found, err := r.Get(ctx, ns, key)
		if err != nil {
			return nil, err
		}
		if err := r.PutUntil(ctx, beforeNS, beforeKey, beforeValue(old, found), MessageRecordExpiry()); err != nil {
			return nil, err
		}
	}
	if err := r.Put(ctx, ns, key, value); err != nil {
		return nil, err
	}
	return func() {
		// The caller may be gone: the undo must still be written.
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if before, kept, err := r.Get(uctx, beforeNS, beforeKey); err == nil && kept && len(before) > 0 {
			_ = r.Put(uctx, ns, key, before[1:]) // empty: read as no record
		}
	}, nil
}

// beforeValue is what a key held ("1" and its value), or that it held
// nothing ("0"): a record is never empty, so it is told from an absent one.
func beforeValue(old []byte, found bool) []byte {
	if !found {
		return []byte("0")
	}
	return append([]byte("1"), old...)
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
