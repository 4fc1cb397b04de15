package adapter

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/bonychat/bonychat-adapter/providers"
	"github.com/bonychat/bonychat-adapter/schema"
)

// handleMessage is POST {base_path}/message: authenticate, decode strictly,
// validate, send, answer {"mId"}.
func (s *Server) handleMessage(c *gin.Context) {
	w, r := c.Writer, c.Request
	if !hasBearer(r) { // refuse before reading a byte of the body
		writeUnauthorized(w)
		return
	}
	body, ok := providers.ReadJSONBody(w, r)
	if !ok {
		return
	}
	channelID, err := schema.PeekChannelID(body)
	if err != nil {
		providers.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	ch := s.channelByID(channelID)
	if !authorize(r, ch) {
		writeUnauthorized(w)
		return
	}
	req, err := schema.DecodeMessageRequest(body)
	if err == nil {
		err = schema.ValidateMessageRequest(req, ch.cfg.IDType)
	}
	if err != nil {
		writeDecodeError(w, err)
		return
	}
	mID := providers.NewMID()
	to := providers.Recipient{ChannelID: ch.cfg.ID, ContactID: req.ContactID}
	if _, err := ch.provider.Send(r.Context(), to, *req.Message, mID); err != nil {
		s.writeSendError(c, ch, mID, err)
		return
	}
	providers.WriteJSON(w, http.StatusOK, map[string]string{"mId": mID})
}

func writeDecodeError(w http.ResponseWriter, err error) {
	if errors.Is(err, schema.ErrMalformedJSON) {
		providers.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	providers.WriteInvalid(w, err)
}

// writeSendError answers a failed send with the status the protocol asks
// for and a reason an agent can act on; the cause goes to the log only.
func (s *Server) writeSendError(c *gin.Context, ch *channel, mID string, err error) {
	se := providers.AsSendError(err)
	s.log.Warn("send failed", "request_id", c.GetString("request_id"), "channel", ch.cfg.ID, "mId", mID,
		"kind", se.Kind.String(), "code", se.Code, "error", err.Error())
	status, msg := sendErrorStatus(ch.cfg.ID, se)
	if se.Kind.Retryable() && se.RetryAfter > 0 {
		c.Header("Retry-After", strconv.Itoa(int(se.RetryAfter.Seconds()+0.999)))
	}
	providers.WriteError(c.Writer, status, msg)
}

func sendErrorStatus(channelID string, se *providers.SendError) (int, string) {
	switch se.Kind {
	case providers.Permanent:
		return http.StatusBadRequest, se.Reason
	case providers.Config:
		return http.StatusBadGateway, "channel " + channelID + ": the provider refused this channel's settings: " + se.Reason
	case providers.Throttled, providers.Unreachable:
		return http.StatusServiceUnavailable, "the provider cannot take the message right now: " + se.Reason
	default:
		return http.StatusBadGateway, "the provider did not confirm the message; it may or may not have been sent: " + se.Reason
	}
}
