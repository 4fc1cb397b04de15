package twilio

// What an agent reads when Twilio refuses a send or reports a message
// undelivered, and how each answer is classified.

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/twilio/twilio-go/client"

	"github.com/bonychat/bonychat-adapter/internal/faketwilio"
	"github.com/bonychat/bonychat-adapter/providers"
)

func TestUnmappedRefusalNamesTwilioCodeAndAddsOnlyTextItHas(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		te   *client.TwilioRestError
		want string
	}{
		{"no message", &client.TwilioRestError{Code: 21999, Status: 400},
			"Twilio refused the message (error 21999)"},
		{"blank message", &client.TwilioRestError{Code: 21999, Status: 400, Message: " \n "},
			"Twilio refused the message (error 21999)"},
		{"a message", &client.TwilioRestError{Code: 21999, Status: 400, Message: "Something\n odd"},
			"Twilio refused the message (error 21999): Something odd"},
		{"no code: the HTTP status", &client.TwilioRestError{Status: 422},
			"Twilio refused the message (HTTP 422)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			se := restError(c.te, outContact, 400)
			if se.Kind != providers.Permanent || se.Reason != c.want {
				t.Fatalf("kind %v reason %q, want permanent %q", se.Kind, se.Reason, c.want)
			}
		})
	}
}

func TestUnmappedRefusalMasksSIDsAndCutsLongText(t *testing.T) {
	t.Parallel()
	te := &client.TwilioRestError{Code: 21999, Status: 400,
		Message: "Account AC0123456789abcdef0123456789ABCDEF cannot use MG0123456789abcdef0123456789abcdef for SM0123456789abcdef0123456789abcdef; MGshort stays"}
	se := restError(te, outContact, 400)
	want := "Twilio refused the message (error 21999): Account AC… cannot use MG… for SM…; MGshort stays"
	if se.Reason != want {
		t.Fatalf("reason %q, want %q", se.Reason, want)
	}

	long := &client.TwilioRestError{Code: 21999, Status: 400, Message: strings.Repeat("é word ", 100)}
	se = restError(long, outContact, 400)
	text, _ := strings.CutPrefix(se.Reason, "Twilio refused the message (error 21999): ")
	if !strings.HasSuffix(text, "…") || len([]rune(text)) > maxTwilioText+1 {
		t.Fatalf("Twilio's text is %d characters, want at most %d and a mark: %q", len([]rune(text)), maxTwilioText, text)
	}
}

func TestMessagingServiceCodesBlameTheChannelSettings(t *testing.T) {
	t.Parallel()
	for _, code := range []int{21701, 21702, 21703, 21704, 21705, 21710} {
		te := &client.TwilioRestError{Code: code, Status: 400,
			Message: "The Messaging Service Sid MG0123456789abcdef0123456789abcdef is invalid"}
		se := restError(te, outContact, 400)
		if se.Kind != providers.Config || !strings.Contains(se.Reason, "check messaging_service_sid") {
			t.Errorf("%d: kind %v reason %q, want config naming messaging_service_sid", code, se.Kind, se.Reason)
		}
		if strings.Contains(se.Reason, "MG0123") {
			t.Errorf("%d: reason %q shows the SID", code, se.Reason)
		}
	}
}

func Test21659WordsTheShortCodeCountryAsTheContacts(t *testing.T) {
	t.Parallel()
	se := restError(&client.TwilioRestError{Code: 21659, Status: 400}, outContact, 400)
	want := "the channel's 'from' is not a Twilio number, or is a short code, which cannot send to " + outContact + "'s country (check from)"
	if se.Kind != providers.Config || se.Reason != want {
		t.Fatalf("kind %v reason %q, want config %q", se.Kind, se.Reason, want)
	}
}

// A 408 or 409 in Twilio's own body means Twilio did not carry the request
// out: no message was created, so the send is retried with no look-up in
// its message list. The same status from a gateway or proxy in front of
// api_url proves nothing (it may answer after forwarding the request): the
// message may have been sent, and is looked up before any retry.
func TestTimeoutAndConflictAnswersAreRetriedAsNotSent(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		answer faketwilio.Behaviour
		code   string
		reason string
	}{
		{"Twilio's 408", faketwilio.Error(0, http.StatusRequestTimeout, "Request Timeout"), "", "Twilio timed out waiting for the request (HTTP 408); it was not carried out"},
		{"Twilio's 409 with a code", faketwilio.Error(20409, http.StatusConflict, "Conflict"), "20409", "conflicting with another (HTTP 409); it was not carried out"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := outNew(t)
			e.fake.Script(faketwilio.Create, c.answer)
			_, err := e.send(t, outText("hello"), "m408")
			se := outSendError(t, err)
			if se.Kind != providers.Unreachable || !se.Kind.Retryable() || se.Code != c.code || !strings.Contains(se.Reason, c.reason) {
				t.Fatalf("kind %v code %q reason %q, want unreachable %q containing %q", se.Kind, se.Code, se.Reason, c.code, c.reason)
			}
			if e.fake.Count(faketwilio.Create) != 1 || e.fake.Count(faketwilio.List) != 0 || len(e.fake.Messages()) != 0 {
				t.Fatalf("%d creates, %d lists, %d messages", e.fake.Count(faketwilio.Create), e.fake.Count(faketwilio.List), len(e.fake.Messages()))
			}
		})
	}
}

// A 408 from a gateway or proxy in front of api_url (no Twilio status in
// the body) proves nothing: the request may have been forwarded, so
// Twilio's list is looked at before the message is ever sent again.
func TestAGatewaysTimeoutIsLookedUpBeforeAnyRetry(t *testing.T) {
	t.Parallel()
	for name, answer := range map[string]faketwilio.Behaviour{
		"a proxy's 408 page":                           faketwilio.HTML(http.StatusRequestTimeout),
		"a gateway's JSON 408 without Twilio's status": faketwilio.Raw(http.StatusRequestTimeout, "application/json", `{"message":"timeout"}`),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := outNew(t)
			e.fake.Script(faketwilio.Create, answer)
			_, err := e.send(t, outText("hello"), "m408")
			se := outSendError(t, err)
			if se.Kind == providers.Permanent || !strings.Contains(se.Error(), "may have") || e.fake.Count(faketwilio.List) == 0 {
				t.Fatalf("kind %v (%v), %d lists: want a send that may have happened, looked up", se.Kind, se, e.fake.Count(faketwilio.List))
			}
		})
	}
}

func TestCallbackCodesAreInWordsFromTwiliosMeaning(t *testing.T) {
	t.Parallel()
	for code, words := range map[string]string{
		"30019": "larger than the contact's carrier accepts",
		"11200": "could not download the attachment",
		"63019": "could not download the attachment",
		"12300": "file type",
		"30022": "rate its US A2P 10DLC campaign allows",
		"30023": "daily message cap",
		"30024": "not registered with the contact's carrier",
		"30032": "toll-free number is not verified",
		"63003": outContact + " is not an active address",
		"63024": outContact + " cannot receive WhatsApp messages",
	} {
		got := callbackReason(code, outContact)
		if !strings.Contains(got, words) || !strings.HasSuffix(got, " (Twilio error "+code+")") {
			t.Errorf("ErrorCode %s: agent reads %q, want %q and the code", code, got, words)
		}
	}
	// A failed message is not retried: no code's words may promise it.
	for code := range sendCodes {
		if got := callbackReason(strconv.Itoa(code), outContact); strings.Contains(got, "retrying") {
			t.Errorf("ErrorCode %d: a failed status reads %q", code, got)
		}
	}
	if got := callbackReason("39999", outContact); got != "Twilio reported error 39999" {
		t.Errorf("unknown code: %q", got)
	}
	if got := callbackReason("", outContact); got != "Twilio reported the message as not delivered" {
		t.Errorf("no code: %q", got)
	}
}

// The same cause reads the same in the /message answer and in a later
// failed message_status, which adds Twilio's code.
func TestCallbackReasonReadsAsTheSendReason(t *testing.T) {
	t.Parallel()
	for code := range sendCodes {
		c := strconv.Itoa(code)
		sync := restError(&client.TwilioRestError{Code: code, Status: 400}, outContact, 400).Reason
		if got, want := callbackReason(c, outContact), sync+" (Twilio error "+c+")"; got != want {
			t.Errorf("%d: callback %q, want %q", code, got, want)
		}
		if _, twice := callbackReasons[code]; twice {
			t.Errorf("%d is worded in both tables: the callback would not read as the send", code)
		}
	}
	if got := callbackReason("63016", outContact); !strings.Contains(got, "24 hours") {
		t.Errorf("63016 reads %q", got)
	}
}
