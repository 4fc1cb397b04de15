package mailgun

// Event webhooks: Mailgun's JSON receipts, parsed into an Event (ParseEvent)
// and mapped to a BonyChat status (StatusFor). The handler verifies
// Event.Signature with Verify and finds the mId in Event.UserVariables.

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/bonychat/bonychat-adapter/schema"
)

// ErrMalformedEvent: the body is not a Mailgun event webhook (the handler
// answers 406: it can never succeed).
var ErrMalformedEvent = errors.New("mailgun: not a Mailgun event webhook")

// Event is the part of an event webhook this server uses.
type Event struct {
	// Signature is what Verify checks.
	Signature struct{ Timestamp, Token, Signature string }
	Name      string  // "event": accepted, delivered, opened, failed, …
	ID        string  // the event's id
	Timestamp float64 // Unix seconds
	Severity  string  // failed: permanent or temporary
	Reason    string  // failed: bounce, suppress-bounce, espblock, …
	// Recipient is event-data.recipient, else (a rejected event has none)
	// the address in message.headers.to.
	Recipient string
	// MessageID is message.headers.message-id, without angle brackets.
	MessageID      string
	DeliveryStatus DeliveryStatus
	// Reject is a rejected event's reject.reason and description.
	Reject string
	// UserVariables are the v: variables sent with the message. A value
	// that is not a JSON string is kept as its JSON text (null as "").
	UserVariables map[string]string
	// Problem says why user-variables could not be read (Mailgun has sent
	// "Could not load user-variables. They were either truncated or
	// invalid JSON"); UserVariables is then empty.
	Problem string
}

// DeliveryStatus is event-data.delivery-status.
type DeliveryStatus struct {
	Code         int
	Message      string
	Description  string
	EnhancedCode string
	BounceType   string
}

// ParseEvent decodes an event webhook body. It is tolerant where Mailgun
// is known to vary: user-variables may be an object, [] (no variables),
// missing, or a string saying they could not be loaded (see Problem); the
// signature timestamp and the delivery-status code may be strings or
// numbers; description may be null; a rejected event has no recipient.
// Fields it does not use are ignored (Mailgun adds fields without notice).
// A body without an event-data.event or without a signature object is
// ErrMalformedEvent.
func ParseEvent(body []byte) (*Event, error) {
	var raw struct {
		Signature *struct {
			Timestamp eventString `json:"timestamp"`
			Token     string      `json:"token"`
			Signature string      `json:"signature"`
		} `json:"signature"`
		EventData *struct {
			Event     string      `json:"event"`
			ID        string      `json:"id"`
			Timestamp eventNumber `json:"timestamp"`
			Severity  string      `json:"severity"`
			Reason    string      `json:"reason"`
			Recipient string      `json:"recipient"`
			Message   struct {
				Headers struct {
					MessageID string          `json:"message-id"`
					To        json.RawMessage `json:"to"`
				} `json:"headers"`
			} `json:"message"`
			Reject struct {
				Reason      eventString `json:"reason"`
				Description eventString `json:"description"`
			} `json:"reject"`
			DeliveryStatus struct {
				Code         eventNumber `json:"code"`
				Message      *string     `json:"message"`
				Description  *string     `json:"description"`
				EnhancedCode eventString `json:"enhanced-code"`
				BounceType   *string     `json:"bounce-type"`
			} `json:"delivery-status"`
			UserVariables json.RawMessage `json:"user-variables"`
		} `json:"event-data"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedEvent, err)
	}
	if raw.Signature == nil || raw.EventData == nil || raw.EventData.Event == "" {
		return nil, fmt.Errorf("%w: signature or event-data.event is missing", ErrMalformedEvent)
	}
	d := raw.EventData
	vars, problem := eventUserVariables(d.UserVariables)
	e := &Event{
		Name:      strings.ToLower(d.Event),
		ID:        d.ID,
		Timestamp: float64(d.Timestamp),
		Severity:  strings.ToLower(d.Severity),
		Reason:    strings.ToLower(d.Reason),
		Recipient: cmp.Or(strings.TrimSpace(d.Recipient), eventToAddress(d.Message.Headers.To)),
		MessageID: forwardFirstID(d.Message.Headers.MessageID),
		DeliveryStatus: DeliveryStatus{
			Code:         int(d.DeliveryStatus.Code),
			Message:      strings.TrimSpace(eventOptString(d.DeliveryStatus.Message)),
			Description:  strings.TrimSpace(eventOptString(d.DeliveryStatus.Description)),
			EnhancedCode: string(d.DeliveryStatus.EnhancedCode),
			BounceType:   eventOptString(d.DeliveryStatus.BounceType),
		},
		Reject:        eventJoin(string(d.Reject.Reason), string(d.Reject.Description)),
		UserVariables: vars,
		Problem:       problem,
	}
	e.Signature.Timestamp = string(raw.Signature.Timestamp)
	e.Signature.Token = raw.Signature.Token
	e.Signature.Signature = raw.Signature.Signature
	return e, nil
}

func eventOptString(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// eventUserVariables decodes user-variables: an object, or [] / null /
// missing for none. Anything else (Mailgun's "Could not load
// user-variables…" string, a non-empty array) is no variables and a
// problem: the event itself is still good.
func eventUserVariables(raw json.RawMessage) (map[string]string, string) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return map[string]string{}, ""
	}
	var obj map[string]json.RawMessage
	if raw[0] == '[' {
		var list []json.RawMessage
		if err := json.Unmarshal(raw, &list); err != nil || len(list) != 0 {
			return map[string]string{}, "user-variables is a non-empty list"
		}
	} else if err := json.Unmarshal(raw, &obj); err != nil {
		var text string
		if json.Unmarshal(raw, &text) == nil {
			return map[string]string{}, "user-variables: " + schema.Truncate(text, 200)
		}
		return map[string]string{}, "user-variables: " + err.Error()
	}
	out := make(map[string]string, len(obj))
	for k, v := range obj {
		var s string
		if json.Unmarshal(v, &s) == nil {
			out[k] = s
		} else {
			out[k] = string(bytes.TrimSpace(v))
		}
	}
	return out, ""
}

// eventToAddress is the first address of message.headers.to, "" when it
// has none.
func eventToAddress(raw json.RawMessage) string {
	var to string
	if json.Unmarshal(raw, &to) != nil || strings.TrimSpace(to) == "" {
		return ""
	}
	if list, err := addressParser.ParseList(to); err == nil && len(list) > 0 {
		return list[0].Address
	}
	return bareAddr.FindString(to)
}

// eventJoin joins the non-empty texts, each with its white space collapsed.
func eventJoin(texts ...string) string {
	var out []string
	for _, t := range texts {
		if t = strings.Join(strings.Fields(t), " "); t != "" && !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return strings.Join(out, ": ")
}

// eventString is a JSON string or number (or null), kept as text.
type eventString string

func (f *eventString) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		*f = ""
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = eventString(s)
	default:
		var n json.Number
		if err := json.Unmarshal(b, &n); err != nil {
			return err
		}
		*f = eventString(n.String())
	}
	return nil
}

// eventNumber is a JSON number, or a string holding one; null, empty or
// unparseable text is 0.
type eventNumber float64

func (f *eventNumber) UnmarshalJSON(b []byte) error {
	var s eventString
	if err := s.UnmarshalJSON(b); err != nil {
		return err
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(string(s)), 64)
	if err != nil {
		v = 0
	}
	*f = eventNumber(v)
	return nil
}

// StatusFor maps an event to a BonyChat status: accepted → sent,
// delivered → delivered, opened → read, a permanent failed (and rejected,
// Mailgun refusing the message outright) → failed with a reason an agent
// can act on. Temporary failures (Mailgun retries them), clicks,
// complaints, unsubscribes and unknown events report nothing.
func StatusFor(e *Event) (value, reason string, report bool) {
	switch e.Name {
	case "accepted":
		return "sent", "", true
	case "delivered":
		return "delivered", "", true
	case "opened":
		return "read", "", true
	case "rejected":
		return "failed", eventFailureReason(e), true
	case "failed":
		if e.Severity == "permanent" {
			return "failed", eventFailureReason(e), true
		}
	}
	return "", "", false
}

// eventFailureReason says why a message was not delivered, naming the
// recipient and, where there is one, the receiving server's answer.
func eventFailureReason(e *Event) string {
	to := e.Recipient
	if to == "" {
		to = "the recipient"
	}
	var why string
	switch {
	case e.Name == "rejected":
		why = "Mailgun refused to send to " + to
	default:
		why = eventReasonText(e.Reason, to)
	}
	if detail := cmp.Or(eventSMTPDetail(e.DeliveryStatus), cutReason(e.Reject)); detail != "" {
		why += ": " + detail
	}
	return why
}

// eventReasonText explains a failed event's reason.
func eventReasonText(reason, to string) string {
	var why string
	switch reason {
	case "suppress-bounce":
		why = "not sent: " + to + " is suppressed because earlier mail to it bounced (remove it from the domain's bounce list in Mailgun to retry)"
	case "suppress-unsubscribe":
		why = "not sent: " + to + " unsubscribed from this domain's mail"
	case "suppress-complaint":
		why = "not sent: " + to + " marked earlier mail as spam"
	case "espblock":
		why = "blocked by the recipient's mail provider for " + to
	case "blacklisted", "blocked":
		why = "blocked: " + to + " or the sending IP is on a blocklist"
	case "old":
		why = "gave up on " + to + ": it could not be delivered for too long"
	case "bounce", "hardfail", "generic", "", "unknown":
		why = "bounced: " + to + " could not be delivered to"
	default:
		why = "not delivered to " + to + " (" + reason + ")"
	}
	return why
}

// eventSMTPDetail is the receiving server's code and answer ("550 5.1.1 The
// email account does not exist"), cut as Mailgun's own messages are
// (cutReason): a server may answer with a whole page.
func eventSMTPDetail(d DeliveryStatus) string {
	text := d.Description
	if text == "" {
		text = d.Message
	}
	var parts []string
	if d.Code != 0 {
		parts = append(parts, strconv.Itoa(d.Code))
	}
	if d.EnhancedCode != "" && !strings.Contains(text, d.EnhancedCode) {
		parts = append(parts, d.EnhancedCode)
	}
	if text != "" {
		parts = append(parts, text)
	}
	return cutReason(strings.Join(parts, " "))
}
