package adapter

import (
	"context"
	"errors"
	"net/http"

	"github.com/bonychat/bonychat-adapter/providers"
	"github.com/bonychat/bonychat-adapter/schema"
)

// ingester is the one path by which inbound events of a channel travel to
// BonyChat: made to fit, validated, and posted. It returns the events' final
// mIds. Until the durable pipeline lands it posts synchronously, so a
// provider webhook is acknowledged only after BonyChat accepted the events.
func (s *Server) ingester(ch *channel) providers.Ingester {
	return providers.IngestFunc(func(ctx context.Context, in providers.Inbound) ([]string, error) {
		p := FitPayload(schema.WebhookPayload{ChannelID: ch.cfg.ID, ContactID: in.ContactID, Events: in.Events, Contact: in.Contact})
		if err := s.platform.Post(ctx, ch.target, p); err != nil {
			s.log.Error("BonyChat webhook post failed", "channel", ch.cfg.ID, "contact", in.ContactID, "error", err.Error())
			return nil, platformIngestError(err)
		}
		return eventIDs(p.Events), nil
	})
}

func platformIngestError(err error) error {
	var verr *schema.ValidationError
	if errors.As(err, &verr) {
		return &providers.IngestError{Status: http.StatusBadRequest, Message: err.Error(), Err: err}
	}
	var pe *PlatformError
	if errors.As(err, &pe) && pe.Permanent {
		return &providers.IngestError{Status: http.StatusBadGateway, Message: "BonyChat refused the events", Err: err}
	}
	return &providers.IngestError{Status: http.StatusBadGateway, Message: "BonyChat's webhook could not be reached; try again", Err: err}
}

func eventIDs(events []schema.Event) []string {
	ids := make([]string, len(events))
	for i, e := range events {
		ids[i] = e.MID
	}
	return ids
}
