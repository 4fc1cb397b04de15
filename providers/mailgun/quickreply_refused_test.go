package mailgun

import (
	"context"
	"testing"

	"github.com/bonychat/bonychat-adapter/internal/fakemailgun"
	"github.com/bonychat/bonychat-adapter/providers"
	"github.com/bonychat/bonychat-adapter/schema"
)

// A quick-reply e-mail Mailgun refused for good never reached the contact:
// its options must not replace those of the quick reply the contact did
// get, or the contact's "1" to that one reaches BonyChat as the first
// option of a question they never saw.
func TestARefusedQuickReplyEmailKeepsTheOptionsTheContactGot(t *testing.T) {
	e := sendNew(t, nil)
	title := func(s string) *string { return &s }
	first := schema.Message{Type: schema.TypeQuickReply, Title: title("Which size?"), Replies: []string{"Small", "Large"}}
	if _, err := e.send(t, context.Background(), sendContact, first, "zz-qr-1"); err != nil {
		t.Fatal(err)
	}
	e.fake.Script(fakemailgun.Error(400, "message refused"))
	second := schema.Message{Type: schema.TypeQuickReply, Title: title("Delete your account?"), Replies: []string{"Yes", "No"}}
	_, err := e.send(t, context.Background(), sendContact, second, "zz-qr-2")
	if se := providers.AsSendError(err); se == nil || se.Kind != providers.Permanent {
		t.Fatalf("second quick reply: %v, want a permanent refusal", err)
	}
	events := []schema.Event{{Type: "message", MID: "in1", Message: schema.TextMessage("1")}}
	e.p.mapQuickReplyAnswers(context.Background(), sendContact, events)
	if got := *events[0].Message.Text; got != "Small" {
		t.Fatalf("the contact's \"1\" to the question they got reads %q, want %q", got, "Small")
	}
}
