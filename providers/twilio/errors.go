package twilio

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/twilio/twilio-go/client"

	"github.com/bonychat/bonychat-adapter/providers"
	"github.com/bonychat/bonychat-adapter/schema"
)

// OptOutReason is what an agent reads for a contact who replied STOP.
const OptOutReason = "contact has opted out (replied STOP)"

// sendCodes maps Twilio's synchronous error codes to a kind and words an
// agent can act on ("%s" is the contact's number). A status callback with
// one of these codes reads the same (callbackReason).
var sendCodes = map[int]struct {
	kind   providers.ErrorKind
	reason string
}{
	21211: {providers.Permanent, "%s is not a valid phone number"},
	21612: {providers.Permanent, "%s cannot be reached from this number (unroutable)"},
	21614: {providers.Permanent, "%s is not a mobile number that can receive SMS"},
	21635: {providers.Permanent, "%s is a landline and cannot receive SMS"},
	21610: {providers.Permanent, OptOutReason},
	21408: {providers.Permanent, "sending to %s's region is not enabled on this Twilio account (Geo Permissions)"},
	21608: {providers.Permanent, "%s is not a verified number of this Twilio trial account"},
	21617: {providers.Permanent, "the message is too long for Twilio (over 1,600 characters)"},
	21620: {providers.Permanent, "Twilio refused the media URL of the attachment"},
	21623: {providers.Permanent, "Twilio refused the attachment: too many media items"},
	63016: {providers.Permanent, "WhatsApp allows free-form messages only within 24 hours of the contact's last message; use a template"},
	21606: {providers.Config, "the channel's 'from' number cannot send SMS"},
	21601: {providers.Config, "the channel's 'from' is not an SMS-capable number of this Twilio account"},
	21212: {providers.Config, "Twilio refused the channel's 'from' as a sender (check from)"},
	21659: {providers.Config, "the channel's 'from' is not a Twilio number, or is a short code, which cannot send to %s's country (check from)"},
	21660: {providers.Config, "the channel's 'from' belongs to another Twilio account (check from and account_sid)"},
	21701: {providers.Config, "the channel's Messaging Service does not exist in this Twilio account (check messaging_service_sid and account_sid)"},
	21702: {providers.Config, "the channel's Messaging Service is not available to send new messages (check messaging_service_sid)"},
	21703: {providers.Config, "the channel's Messaging Service has no sender available (check messaging_service_sid)"},
	21704: {providers.Config, "the channel's Messaging Service has no senders (check messaging_service_sid)"},
	21705: {providers.Config, "the channel's Messaging Service SID is not valid (check messaging_service_sid)"},
	21710: {providers.Config, "Twilio refused the channel's Messaging Service settings (check messaging_service_sid)"},
	63007: {providers.Config, "Twilio has no WhatsApp sender for the channel's 'from'"},
	21609: {providers.Config, "Twilio refused the status callback URL (check public_url)"},
	20003: {providers.Config, "Twilio refused the channel's credentials (check account_sid and auth_token)"},
	20404: {providers.Config, "Twilio does not know the channel's account or sender (check account_sid, from, messaging_service_sid)"},
	20429: {providers.Throttled, "Twilio is rate limiting this account"},
	21611: {providers.Throttled, "the sender's queue at Twilio is full"},
}

// withContact puts the contact's number in a reason's "%s".
func withContact(reason, contact string) string {
	return strings.ReplaceAll(reason, "%s", contact)
}

// sendError turns a failed create into the send-error taxonomy. What the
// call's attempts showed decides the cases an error alone cannot: a send
// no attempt of which reached Twilio (stopped by its context before or
// between attempts, failed dials, 429s) is safe to retry; anything else
// may have been sent and is Ambiguous, for reconciliation. Twilio's
// Retry-After rides along for the outbound queue to wait.
func sendError(err error, contact string, call callSummary) *providers.SendError {
	se := classify(err, contact, call)
	se.RetryAfter = call.retryAfter
	return se
}

func classify(err error, contact string, call callSummary) *providers.SendError {
	var te *client.TwilioRestError
	if errors.As(err, &te) {
		return restError(te, contact, call.lastStatus)
	}
	switch {
	case !call.reached && call.lastStatus == http.StatusTooManyRequests:
		return &providers.SendError{Kind: providers.Throttled, Reason: "Twilio is rate limiting this account", Err: err}
	case !call.reached && providers.NeverSent(err):
		return &providers.SendError{Kind: providers.Unreachable, Reason: "Twilio could not be reached", Err: err}
	case !call.reached && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)):
		return &providers.SendError{Kind: providers.Unreachable, Reason: "the send was stopped before it reached Twilio", Err: err}
	}
	return &providers.SendError{Kind: providers.Ambiguous, Reason: "no answer from Twilio; the message may have been sent", Err: err}
}

// notTaken: an answer saying the request was not carried out, so no
// message was created: 408 (the request did not arrive in time) and 409
// (it conflicted with another). Safe to send again.
func notTaken(status int) bool {
	return status == http.StatusRequestTimeout || status == http.StatusConflict
}

func notTakenError(status int, code string, err error) *providers.SendError {
	why := "Twilio timed out waiting for the request"
	if status == http.StatusConflict {
		why = "Twilio refused the request as conflicting with another"
	}
	return &providers.SendError{Kind: providers.Unreachable, Code: code, Err: err,
		Reason: why + " (HTTP " + strconv.Itoa(status) + "); it was not carried out"}
}

// restError classifies an error answer twilio-go decoded from JSON. Its
// status comes from the body, which a gateway in front of api_url (or
// Twilio's edge) may leave out: then the HTTP status the call saw decides,
// so a bodied 502 is still "may have been sent" and a bodied 429 still
// "retry later", not a refusal.
func restError(te *client.TwilioRestError, contact string, httpStatus int) *providers.SendError {
	code := ""
	if te.Code != 0 {
		code = strconv.Itoa(te.Code)
	}
	status := te.Status
	if status == 0 {
		status = httpStatus
	}
	// Only Twilio's own body says a 408/409 was not carried out: a proxy
	// in front of api_url may answer 408 after forwarding the request.
	twilioSaysNotTaken := notTaken(te.Status)
	if m, ok := sendCodes[te.Code]; ok {
		return &providers.SendError{Kind: m.kind, Reason: withContact(m.reason, contact), Code: code, Err: te}
	}
	switch {
	case status == http.StatusTooManyRequests:
		return &providers.SendError{Kind: providers.Throttled, Reason: "Twilio is rate limiting this account", Code: code, Err: te}
	case twilioSaysNotTaken:
		return notTakenError(status, code, te)
	case notTaken(status):
		return &providers.SendError{Kind: providers.Ambiguous, Reason: "Twilio's gateway answered " + strconv.Itoa(status) + "; the message may have been sent", Code: code, Err: te}
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return &providers.SendError{Kind: providers.Config, Reason: "Twilio refused the channel's credentials (check account_sid and auth_token)", Code: code, Err: te}
	case status >= 500:
		return &providers.SendError{Kind: providers.Ambiguous, Reason: "Twilio answered " + strconv.Itoa(status) + "; the message may have been sent", Code: code, Err: te}
	}
	return &providers.SendError{Kind: providers.Permanent, Reason: refusal(te, status), Code: code, Err: te}
}

// maxTwilioText bounds how much of Twilio's own message an agent reads.
const maxTwilioText = 300

// sidShaped is a Twilio SID (two capitals and 32 hex digits: AC… the
// account, MG… a Messaging Service, SM…/MM… a message, PN… a number): it
// means nothing to an agent, and an account SID is not for every reader.
var sidShaped = regexp.MustCompile(`\b[A-Z]{2}[0-9a-fA-F]{32}\b`)

// refusal words a refusal Twilio gave no known code for: its error code
// (else the HTTP status), then Twilio's own text when it has one, SIDs
// masked and cut to a readable size.
func refusal(te *client.TwilioRestError, status int) string {
	reason := "Twilio refused the message"
	switch {
	case te.Code != 0:
		reason += " (error " + strconv.Itoa(te.Code) + ")"
	case status != 0:
		reason += " (HTTP " + strconv.Itoa(status) + ")"
	}
	text := strings.Join(strings.Fields(te.Message), " ")
	text = sidShaped.ReplaceAllStringFunc(text, func(sid string) string { return sid[:2] + "…" })
	if cut := schema.Truncate(text, maxTwilioText); cut != text {
		text = cut + "…"
	}
	if text != "" {
		reason += ": " + text
	}
	return reason
}

// callbackReasons are readable reasons for the asynchronous ErrorCode of a
// failed or undelivered status callback, for the codes sendCodes does not
// word ("%s" is the contact's number). Their meanings are Twilio's (its
// error dictionary).
var callbackReasons = map[int]string{
	30001: "Twilio's queue for this sender overflowed",
	30002: "the Twilio account is suspended",
	30003: "the contact's handset is unreachable (off or out of coverage)",
	30004: "the message was blocked by the carrier or the contact",
	30005: "the number is unknown or no longer in service",
	30006: "the number is a landline or its carrier cannot receive SMS",
	30007: "the carrier filtered the message as spam",
	30008: "the carrier reported an unknown error",
	30019: "the message with its media is larger than the contact's carrier accepts",
	30022: "the carrier refused the message: the sender exceeded the rate its US A2P 10DLC campaign allows",
	30023: "the carrier refused the message: the sender reached its US A2P 10DLC daily message cap",
	30024: "the channel's sender is not registered with the contact's carrier for this traffic",
	30032: "the channel's toll-free number is not verified for messages to the US and Canada (Toll-Free Verification)",
	30034: "the sender is not registered for US A2P 10DLC",
	11200: "Twilio could not download the attachment from its URL",
	63019: "Twilio could not download the attachment (or it was empty)",
	12300: "the attachment's file type is not one Twilio can send",
	63003: "%s is not an active address on this channel (on WhatsApp: not a WhatsApp number)",
	63024: "%s cannot receive WhatsApp messages (not on WhatsApp, WhatsApp's terms not accepted, or an outdated app)",
}

// callbackReason words an ErrorCode for the agent: as the send would have
// (sendCodes), else from callbackReasons, with Twilio's code after it.
// settingsCode: a callback's ErrorCode that the send table calls a fault
// of the channel's settings.
func settingsCode(code string) bool {
	n, err := strconv.Atoi(code)
	m, ok := sendCodes[n]
	return err == nil && ok && m.kind == providers.Config
}

func callbackReason(code, contact string) string {
	if code == "" {
		return "Twilio reported the message as not delivered"
	}
	n, err := strconv.Atoi(code)
	reason := ""
	if m, ok := sendCodes[n]; ok && err == nil {
		reason = m.reason
	} else if r, ok := callbackReasons[n]; ok && err == nil {
		reason = r
	}
	if reason == "" {
		return "Twilio reported error " + code
	}
	return withContact(reason, contact) + " (Twilio error " + code + ")"
}
