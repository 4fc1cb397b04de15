package adapter

import (
	"context"
	"errors"
	"net/http"

	"github.com/bonychat/bonychat-adapter/providers"
	"github.com/bonychat/bonychat-adapter/schema"
	"github.com/bonychat/bonychat-adapter/store"
)

// ingester is the one path by which a provider's inbound events travel to
// BonyChat: deduped by the provider's message ID, made to fit, stored as
// platform jobs, and only then acknowledged. The platform worker posts them.
func (s *Server) ingester(ch *channel) providers.Ingester {
	return channelIngester{p: s.pipe, ch: ch}
}

// channelIngester is the ingester of one channel; it also answers
// providers.InboundDedupe from the dedupe keys ingest records.
type channelIngester struct {
	p  *pipeline
	ch *channel
}

func (c channelIngester) Ingest(ctx context.Context, in providers.Inbound) ([]string, error) {
	return c.p.ingest(ctx, c.ch, in)
}

func (c channelIngester) Taken(ctx context.Context, dedupeKey string) (bool, error) {
	_, err := c.p.st.LookupKey(ctx, inboundKey(c.ch, dedupeKey), c.p.now())
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// inboundKey is the dedupe key of an inbound message ID on a channel.
func inboundKey(ch *channel, id string) string { return "inbound:" + ch.cfg.ID + ":" + id }

func (p *pipeline) ingest(ctx context.Context, ch *channel, in providers.Inbound) ([]string, error) {
	events := schema.FitEvents(in.Events)
	contact := schema.FitContact(in.Contact)
	probe := schema.WebhookPayload{ChannelID: ch.cfg.ID, ContactID: in.ContactID, Events: events, Contact: contact}
	for _, b := range Batches(probe) {
		if err := schema.ValidatePayload(&b, ch.cfg.IDType); err != nil {
			p.dropMedia(ctx, ch, in, "refused")
			return nil, &providers.IngestError{Status: http.StatusBadRequest, Message: err.Error(), Err: err}
		}
	}
	ids := eventIDs(events)
	jobs := make([]store.NewJob, len(events))
	for i, e := range events {
		// Every event carries the profile: whichever batch reaches BonyChat
		// first (and creates the contact) has it.
		pj := platformJob{Event: e, Contact: contact}
		jobs[i] = store.NewJob{Queue: store.Platform, ChannelID: ch.cfg.ID, ContactID: in.ContactID, MID: e.MID, Payload: mustJSON(pj)}
	}
	keys := append(p.dedupeKeys(ch, in, ids), p.extraKeys(ch, in)...)
	_, err := p.st.Enqueue(ctx, jobs, keys)
	switch {
	case errors.Is(err, store.ErrDuplicate):
		p.dropMedia(ctx, ch, in, "duplicate")
		if rerr := p.replayed(ctx, ch, in); rerr != nil {
			return nil, rerr
		}
		p.s.log.Info("duplicate inbound ignored", "channel", ch.cfg.ID, "key", keys[0].Name)
		return ids, nil
	case err != nil:
		p.s.log.Error("cannot store inbound events", "channel", ch.cfg.ID, "error", err.Error())
		if store.NotStored(err) {
			p.dropMedia(ctx, ch, in, "not stored")
		} else if len(in.Media) > 0 {
			p.s.log.Warn("inbound media kept: the store cannot tell whether the events were stored",
				"channel", ch.cfg.ID, "media", len(in.Media))
		}
		return nil, &providers.IngestError{Status: http.StatusServiceUnavailable, Message: "events could not be stored; try again", Err: err}
	}
	wake(p.platWake)
	return ids, nil
}

// dropMedia removes the media saved for in (Inbound.Media). Ingest calls
// it only where the store certainly holds none of in's events, the one
// thing that may link them:
//   - the events were refused before anything was written (400);
//   - Enqueue failed with ErrDuplicate (a redelivery, another route's copy,
//     a replayed token): it wrote nothing of this delivery, and these media
//     are this delivery's own copies (Save names every file anew), which
//     nothing links; the first delivery's events link the first
//     delivery's media;
//   - Enqueue failed with another error the store vouches for
//     (store.NotStored): the caller's context ended before the writer took
//     the write, the store was closed, the transaction failed before its
//     COMMIT (e.g. a database locked past the busy timeout).
//
// Any other error is ambiguous and the media stay (until media.retention):
// a COMMIT that failed may still be on disk, and an error of a store that
// does not mark its failures proves nothing. No look-up afterwards would
// settle it: a failed COMMIT reads as absent until the next open's
// recovery replays it. (A context that ends after the SQLite writer took
// the write is no ambiguity: the write waits for its transaction, and nil
// means stored.) A media link that answers 404 in a stored event loses the
// contact's file; a file kept for nothing costs only disk until it expires.
func (p *pipeline) dropMedia(ctx context.Context, ch *channel, in providers.Inbound, why string) {
	if len(in.Media) == 0 {
		return
	}
	if err := p.s.media.Discard(ctx, in.Media); err != nil {
		p.s.log.Warn("media of an inbound message not stored could not all be removed; they expire with media.retention",
			"channel", ch.cfg.ID, "why", why, "media", len(in.Media), "error", err.Error())
		return
	}
	p.s.log.Info("media of an inbound message not stored removed", "channel", ch.cfg.ID, "why", why, "media", len(in.Media))
}

// dedupeKeys: the provider's message ID when it gave one, else each event's mId.
func (p *pipeline) dedupeKeys(ch *channel, in providers.Inbound, ids []string) []store.Key {
	expires := p.now().Add(p.s.cfg.Inbound.DedupeWindow)
	if in.DedupeKey != "" {
		return []store.Key{{Name: inboundKey(ch, in.DedupeKey), Expires: expires}}
	}
	keys := make([]store.Key, len(ids))
	for i, id := range ids {
		keys[i] = store.Key{Name: inboundKey(ch, id), Expires: expires}
	}
	return keys
}

// extraKeys are the provider's further keys, namespaced per channel.
func (p *pipeline) extraKeys(ch *channel, in providers.Inbound) []store.Key {
	expires := p.now().Add(p.s.cfg.Inbound.DedupeWindow)
	keys := make([]store.Key, len(in.Keys))
	for i, k := range in.Keys {
		keys[i] = store.Key{Name: "inbound-key:" + ch.cfg.ID + ":" + k.Name, Value: []byte(k.Value), Expires: expires}
	}
	return keys
}

// replayed: after a duplicate, an extra key recorded with another value
// means the same proof (e.g. a signed token) came with a different message.
func (p *pipeline) replayed(ctx context.Context, ch *channel, in providers.Inbound) error {
	for _, k := range in.Keys {
		rec, err := p.st.LookupKey(ctx, "inbound-key:"+ch.cfg.ID+":"+k.Name, p.now())
		switch {
		case errors.Is(err, store.ErrNotFound):
			continue
		case err != nil:
			return &providers.IngestError{Status: http.StatusServiceUnavailable, Message: "events could not be checked; try again", Err: err}
		case string(rec.Value) != k.Value:
			p.s.log.Warn("replayed webhook refused", "channel", ch.cfg.ID, "key", k.Name)
			return &providers.IngestError{Status: http.StatusNotAcceptable, Message: "this webhook token was already used for another message"}
		}
	}
	return nil
}

func eventIDs(events []schema.Event) []string {
	ids := make([]string, len(events))
	for i, e := range events {
		ids[i] = e.MID
	}
	return ids
}
