package mailgun

import (
	"strings"
	"testing"

	mailgungo "github.com/mailgun/mailgun-go/v4"

	"github.com/bonychat/bonychat-adapter/providers"
)

func mailgunAnswer(status int, msg string) error {
	return &mailgungo.UnexpectedResponseError{Actual: status, Data: []byte(`{"message":"` + msg + `"}`),
		URL: "https://api.mailgun.net/v3/mg.example.com/messages"}
}

// A sandbox domain's 403 says what to do: the agent reads it after the
// generic words, not only "check api_key".
func TestCredentialRefusalKeepsMailgunsExplanation(t *testing.T) {
	const sandbox = "Domain mg.example.com is not allowed to send: Free accounts are for test purposes only. Please upgrade or add the address to authorized recipients in Account Settings."
	for _, status := range []int{401, 403} {
		se := sendError(mailgunAnswer(status, sandbox), sendTo)
		want := "Mailgun refused the channel's credentials or domain (check api_key, domain and api_url): " + sandbox
		if se.Kind != providers.Config || se.Reason != want {
			t.Errorf("%d: %v %q, want config %q", status, se.Kind, se.Reason, want)
		}
	}
	if se := sendError(mailgunAnswer(401, ""), sendTo); strings.HasSuffix(se.Reason, ": ") || !strings.HasSuffix(se.Reason, "api_url)") {
		t.Errorf("without Mailgun's words: %q", se.Reason)
	}
}

// A 408 is not a refusal of the e-mail, but a proxy in front of api_url may
// answer it after forwarding the request: like a 5xx, the send may have
// happened (looked up before any retry), never a permanent failure.
func TestMailgunTimeoutMayHaveSent(t *testing.T) {
	se := sendError(mailgunAnswer(408, "Request Timeout"), sendTo)
	if se.Kind != providers.Ambiguous || se.Code != "408" || !strings.Contains(se.Reason, "may have been sent") {
		t.Fatalf("408: %v %q, want ambiguous (looked up, then retried)", se.Kind, se.Reason)
	}
}

// Mailgun's API wording ("to parameter … please check documentation") is
// not the agent's: the address is named. Other invalid parameters keep
// Mailgun's words.
func TestInvalidRecipientNamesTheAddress(t *testing.T) {
	for _, msg := range []string{"to parameter is not a valid address. please check documentation", "'to' parameter is not a valid address"} {
		if se := sendError(mailgunAnswer(400, msg), "jane@@example.com"); se.Kind != providers.Permanent || se.Reason != "jane@@example.com is not a valid e-mail address" {
			t.Errorf("%q: %v %q", msg, se.Kind, se.Reason)
		}
	}
	se := sendError(mailgunAnswer(400, "from parameter is not a valid address. please check documentation"), sendTo)
	if se.Reason != "Mailgun refused the e-mail: from parameter is not a valid address. please check documentation" {
		t.Errorf("another parameter: %q", se.Reason)
	}
}

func TestTooLargeEmailNamesTheAttachments(t *testing.T) {
	se := sendError(mailgunAnswer(413, "request entity too large"), sendTo)
	if se.Kind != providers.Permanent || se.Reason != "the e-mail with its attachments is larger than Mailgun accepts (25 MB)" {
		t.Fatalf("413: %v %q", se.Kind, se.Reason)
	}
}
