package console

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/bonychat/bonychat-adapter/providers"
	"github.com/bonychat/bonychat-adapter/schema"
)

// InboundRequest is a simulated contact message.
type InboundRequest struct {
	// ID is printable ASCII, so that with a part suffix it always fits an
	// mId whole: two IDs cut to the same prefix would be one message to
	// BonyChat.
	ID         string             `json:"id,omitempty" validate:"omitempty,max=40,printascii"`
	From       string             `json:"from" validate:"required"`
	Text       *string            `json:"text,omitempty" validate:"omitempty,min=1"`
	Attachment *InboundAttachment `json:"attachment,omitempty"`
	Location   *InboundLocation   `json:"location,omitempty"`
	Contact    *InboundContact    `json:"contact,omitempty"`
	Echo       bool               `json:"echo,omitempty"`
}

// InboundAttachment is a simulated media item; limits are applied on output.
type InboundAttachment struct {
	Type        string `json:"type" validate:"required,oneof=image video audio file"`
	URL         string `json:"url" validate:"required,max=2000,httpurl"`
	MimeType    string `json:"mimeType,omitempty"`
	FileName    string `json:"fileName,omitempty"`
	Description string `json:"description,omitempty"`
}

// InboundLocation is a simulated shared location.
type InboundLocation struct {
	Latitude  *float64 `json:"latitude" validate:"required,gte=-90,lte=90"`
	Longitude *float64 `json:"longitude" validate:"required,gte=-180,lte=180"`
	Address   string   `json:"address,omitempty"`
}

// InboundContact is the simulated contact's profile; fields that do not fit
// the protocol are cut or left out on output.
type InboundContact struct {
	FirstName   string   `json:"firstName,omitempty"`
	LastName    string   `json:"lastName,omitempty"`
	Email       string   `json:"email,omitempty"`
	Phone       string   `json:"phone,omitempty"`
	Locale      string   `json:"locale,omitempty"`
	CountryCode string   `json:"countryCode,omitempty"`
	Language    string   `json:"language,omitempty"`
	Timezone    *float64 `json:"timezone,omitempty"`
}

// Routes implements providers.WebhookProvider.
func (p *Provider) Routes() []providers.Route {
	return []providers.Route{{Method: http.MethodPost, Action: "inbound", BearerAuth: true, Handler: p.handleInbound}}
}

func (p *Provider) handleInbound(w http.ResponseWriter, r *http.Request) {
	body, ok := providers.ReadJSONBody(w, r)
	if !ok {
		return
	}
	req, err := p.decode(body)
	if err != nil {
		providers.WriteInvalid(w, err)
		return
	}
	mIDs, err := p.ingest.Ingest(r.Context(), p.toInbound(req))
	if err != nil {
		status, msg := providers.IngestStatus(err)
		providers.WriteError(w, status, msg)
		return
	}
	providers.WriteJSON(w, http.StatusOK, map[string][]string{"mIds": mIDs})
}

func (p *Provider) decode(body []byte) (*InboundRequest, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var req InboundRequest
	if err := dec.Decode(&req); err != nil {
		return nil, errors.New("invalid JSON: " + err.Error())
	}
	var fields []schema.FieldError
	if err := schema.ValidateStruct(&req); err != nil {
		ve, ok := errors.AsType[*schema.ValidationError](err)
		if !ok {
			return nil, err
		}
		fields = ve.Fields
	}
	if req.From != "" && !schema.ValidContactID(req.From, p.idType) {
		fields = append(fields, schema.FieldError{Field: "from", Rule: "contact_id",
			Message: "is not a valid contact ID for a " + string(p.idType) + " channel"})
	}
	if n := countSet(req.Text != nil, req.Attachment != nil, req.Location != nil); n != 1 {
		fields = append(fields, schema.FieldError{Field: "text", Rule: "oneof",
			Message: "exactly one of text, attachment or location is required"})
	}
	if len(fields) > 0 {
		return nil, &schema.ValidationError{Fields: fields}
	}
	return &req, nil
}

func countSet(flags ...bool) int {
	n := 0
	for _, f := range flags {
		if f {
			n++
		}
	}
	return n
}

func (p *Provider) toInbound(req *InboundRequest) providers.Inbound {
	id := req.ID
	if id == "" {
		id = "CN" + providers.NewMID()
	}
	kind := schema.EventMessage
	if req.Echo {
		kind = schema.EventMessageEcho
	}
	ev := schema.Event{Type: kind, MID: id, Timestamp: providers.NowMillis(), Message: req.message()}
	return providers.Inbound{DedupeKey: req.ID, ContactID: req.From, Contact: req.contact(), Events: []schema.Event{ev}}
}

func (req *InboundRequest) message() *schema.Message {
	switch {
	case req.Text != nil:
		return schema.TextMessage(*req.Text)
	case req.Attachment != nil:
		a := schema.Attachment(*req.Attachment)
		return &schema.Message{Type: schema.TypeAttachment, Attachment: &a}
	default:
		l := req.Location
		m := &schema.Message{Type: schema.TypeLocation, Latitude: l.Latitude, Longitude: l.Longitude}
		if l.Address != "" {
			m.Address = &l.Address
		}
		return m
	}
}

func (req *InboundRequest) contact() *schema.Contact {
	if req.Contact == nil {
		return nil
	}
	c := req.Contact
	return &schema.Contact{FirstName: c.FirstName, LastName: c.LastName, Email: c.Email, Phone: c.Phone,
		Locale: c.Locale, CountryCode: c.CountryCode, Language: c.Language, Timezone: c.Timezone}
}
