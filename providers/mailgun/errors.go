package mailgun

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	mailgungo "github.com/mailgun/mailgun-go/v4"

	"github.com/bonychat/bonychat-adapter/providers"
	"github.com/bonychat/bonychat-adapter/schema"
)

// maxReasonMessage bounds how much of Mailgun's message an agent reads.
const maxReasonMessage = 300

// sendError turns a failed mailgun-go Send into the send-error taxonomy.
// Reasons never carry the API key: mailgun-go sends it as Basic auth, not
// in the URL that its errors quote.
func sendError(err error) *providers.SendError {
	var ure *mailgungo.UnexpectedResponseError
	if errors.As(err, &ure) {
		return statusError(ure)
	}
	if providers.NeverSent(err) {
		return &providers.SendError{Kind: providers.Unreachable, Reason: "Mailgun could not be reached", Err: err}
	}
	return &providers.SendError{Kind: providers.Ambiguous,
		Reason: "no answer from Mailgun; the e-mail may have been sent", Err: err}
}

// statusError maps Mailgun's answer by its HTTP status (Actual: the error
// type has no Status field).
func statusError(ure *mailgungo.UnexpectedResponseError) *providers.SendError {
	code := strconv.Itoa(ure.Actual)
	// The cause keeps the status and Mailgun's message, not the raw body.
	cause := errors.New("mailgun answered " + code + ": " + mailgunMessage(ure.Data))
	se := &providers.SendError{Code: code, Err: cause}
	switch {
	case ure.Actual == http.StatusTooManyRequests:
		se.Kind, se.Reason = providers.Throttled, "Mailgun is rate limiting this domain"
	case ure.Actual == http.StatusUnauthorized || ure.Actual == http.StatusForbidden:
		se.Kind, se.Reason = providers.Config, "Mailgun refused the channel's credentials or domain (check api_key, domain and api_url)"
	case ure.Actual == http.StatusNotFound:
		se.Kind, se.Reason = providers.Config, "Mailgun does not know the channel's domain (check domain and api_url)"
	case ure.Actual >= 500:
		se.Kind, se.Reason = providers.Ambiguous, "Mailgun answered "+code+"; the e-mail may have been sent"
	default: // 400 and any other refusal: the message is the problem
		msg := mailgunMessage(ure.Data)
		if msg == "" {
			msg = "status " + code
		}
		se.Kind, se.Reason = providers.Permanent, "Mailgun refused the e-mail: "+msg
	}
	return se
}

// mailgunMessage is the "message" of Mailgun's JSON error body, or the body
// itself when it is short plain text (a proxy's answer), cut to a size an
// agent can read.
func mailgunMessage(body []byte) string {
	var v struct {
		Message string `json:"message"`
	}
	msg := ""
	if json.Unmarshal(body, &v) == nil {
		msg = v.Message
	} else if utf8.Valid(body) && !strings.Contains(string(body), "<") {
		msg = string(body)
	}
	msg = strings.Join(strings.Fields(msg), " ")
	if cut := schema.Truncate(msg, maxReasonMessage); cut != msg {
		msg = cut + "…"
	}
	return msg
}
