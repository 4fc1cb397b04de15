package adapter

import (
	"bytes"
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/bonychat/bonychat-adapter/providers"
	"github.com/bonychat/bonychat-adapter/schema"
)

// demoKeep is how many deliveries the demo stand-in remembers.
const demoKeep = 100

// demoPlatform stands in for BonyChat's webhook in demos: it checks the
// bearer token and the payload as BonyChat would, logs what it receives and
// keeps the latest deliveries for GET /_demo/platform.
type demoPlatform struct {
	s        *Server
	mu       sync.Mutex
	received []demoDelivery
}

type demoDelivery struct {
	ReceivedAt time.Time             `json:"receivedAt"`
	Payload    schema.WebhookPayload `json:"payload"`
}

func newDemoPlatform(s *Server) *demoPlatform { return &demoPlatform{s: s} }

func (d *demoPlatform) receive(c *gin.Context) {
	w := c.Writer
	ch, body, ok := d.s.authenticatedJSON(w, c.Request)
	if !ok {
		return
	}
	var p schema.WebhookPayload
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		providers.WriteError(w, http.StatusBadRequest, "invalid JSON: "+err.Error())
		return
	}
	if err := schema.ValidatePayload(&p, ch.cfg.IDType); err != nil {
		providers.WriteInvalid(w, err)
		return
	}
	d.keep(p)
	d.s.log.Info("demo platform received", "channel", p.ChannelID, "contact", p.ContactID, "payload", json.RawMessage(body))
	providers.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (d *demoPlatform) keep(p schema.WebhookPayload) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.received = append(d.received, demoDelivery{ReceivedAt: time.Now().UTC(), Payload: p})
	if len(d.received) > demoKeep {
		d.received = d.received[len(d.received)-demoKeep:]
	}
}

// list shows the deliveries of the channel whose token the caller gives
// (they carry what contacts wrote).
func (d *demoPlatform) list(c *gin.Context) {
	ch := d.s.channelByToken(c.Request)
	if ch == nil {
		writeUnauthorized(c.Writer)
		return
	}
	d.mu.Lock()
	out := []demoDelivery{}
	for _, r := range d.received {
		if r.Payload.ChannelID == ch.cfg.ID {
			out = append(out, r)
		}
	}
	d.mu.Unlock()
	providers.WriteJSON(c.Writer, http.StatusOK, map[string][]demoDelivery{"received": out})
}
