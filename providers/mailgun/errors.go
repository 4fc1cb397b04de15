package mailgun

import (
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	mailgungo "github.com/mailgun/mailgun-go/v4"

	"github.com/bonychat/bonychat-adapter/providers"
	"github.com/bonychat/bonychat-adapter/schema"
)

// maxReasonMessage bounds how much of Mailgun's message an agent reads.
const maxReasonMessage = 300

// sendError turns a failed mailgun-go Send to the address to into the
// send-error taxonomy. Reasons never carry the API key: mailgun-go sends it
// as Basic auth, not in the URL that its errors quote.
func sendError(err error, to string) *providers.SendError {
	var ure *mailgungo.UnexpectedResponseError
	if errors.As(err, &ure) {
		return statusError(ure, to)
	}
	if providers.NeverSent(err) {
		return &providers.SendError{Kind: providers.Unreachable, Reason: "Mailgun could not be reached", Err: err}
	}
	return &providers.SendError{Kind: providers.Ambiguous,
		Reason: "no answer from Mailgun; the e-mail may have been sent", Err: err}
}

// invalidTo is Mailgun's 400 for a recipient it cannot parse ("to
// parameter is not a valid address. please check documentation").
var invalidTo = regexp.MustCompile(`(?i)^'?to'? parameter is not a valid address`)

// statusError maps Mailgun's answer by its HTTP status (Actual: the error
// type has no Status field).
func statusError(ure *mailgungo.UnexpectedResponseError, to string) *providers.SendError {
	code := strconv.Itoa(ure.Actual)
	msg := mailgunMessage(ure.Data)
	// The cause keeps the status and Mailgun's message, not the raw body.
	cause := errors.New("mailgun answered " + code + ": " + msg)
	se := &providers.SendError{Code: code, Err: cause}
	switch {
	case ure.Actual == http.StatusTooManyRequests:
		se.Kind, se.Reason = providers.Throttled, "Mailgun is rate limiting this domain"
	case ure.Actual == http.StatusRequestTimeout:
		// Not a refusal of the e-mail. Mailgun's own 408 means it did not
		// take the request, but a proxy in front of api_url may answer 408
		// after forwarding it, and the answer does not tell which: as a 5xx,
		// it is looked up before it is sent again.
		se.Kind, se.Reason = providers.Ambiguous, "Mailgun answered 408 (the request timed out); the e-mail may have been sent"
	case ure.Actual == http.StatusUnauthorized || ure.Actual == http.StatusForbidden:
		// Mailgun's words say what to do (a sandbox domain: authorize the
		// recipient; a disabled domain); they never carry the key.
		se.Kind, se.Reason = providers.Config, withMessage("Mailgun refused the channel's credentials or domain (check api_key, domain and api_url)", msg)
	case ure.Actual == http.StatusNotFound:
		se.Kind, se.Reason = providers.Config, "Mailgun does not know the channel's domain (check domain and api_url)"
	case ure.Actual == http.StatusRequestEntityTooLarge:
		se.Kind, se.Reason = providers.Permanent, "the e-mail with its attachments is larger than Mailgun accepts (25 MB)"
	case ure.Actual >= 500:
		se.Kind, se.Reason = providers.Ambiguous, "Mailgun answered "+code+"; the e-mail may have been sent"
	case invalidTo.MatchString(msg) && to != "":
		se.Kind, se.Reason = providers.Permanent, to+" is not a valid e-mail address"
	default: // 400 and any other refusal: the message is the problem
		if msg == "" {
			msg = "status " + code
		}
		se.Kind, se.Reason = providers.Permanent, "Mailgun refused the e-mail: "+msg
	}
	return se
}

// withMessage adds Mailgun's own words, when it gave some, to a reason.
func withMessage(reason, msg string) string {
	if msg == "" {
		return reason
	}
	return reason + ": " + msg
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
	return cutReason(msg)
}

// cutReason is a text from elsewhere (Mailgun, a receiving mail server)
// as an agent reads it: white space collapsed, cut after maxReasonMessage
// characters at a whole character (grapheme cluster), with "…" when cut.
func cutReason(text string) string {
	text = strings.Join(strings.Fields(text), " ")
	if cut := schema.Truncate(text, maxReasonMessage); cut != text {
		text = strings.TrimRight(cut, " ") + "…"
	}
	return text
}
