package twilio

import (
	"context"
	"testing"

	"github.com/bonychat/bonychat-adapter/internal/faketwilio"
	"github.com/bonychat/bonychat-adapter/providers"
	"github.com/bonychat/bonychat-adapter/schema"
)

// A quick reply that Twilio refused for good never reached the contact:
// its options must not replace those of the quick reply the contact did
// get, or the contact's "1" to the earlier question reaches BonyChat as
// the first option of a question they never saw. (On WhatsApp: a second
// question sent after the 24-hour window closed is refused with 63016,
// while the first one's answer can still come in.)
func TestARefusedQuickReplyKeepsTheOptionsTheContactGot(t *testing.T) {
	e := outNew(t, outWithConfig(func(c *Config) { c.WhatsApp = true }))
	first := schema.Message{Type: schema.TypeQuickReply, Title: outStr("Which size?"), Replies: []string{"Small", "Large"}}
	if _, err := e.send(t, first, "zz-qr-1"); err != nil {
		t.Fatal(err)
	}
	e.fake.Script(faketwilio.Create, faketwilio.Code(63016))
	second := schema.Message{Type: schema.TypeQuickReply, Title: outStr("Delete your account?"), Replies: []string{"Yes", "No"}}
	_, err := e.send(t, second, "zz-qr-2")
	if se := outSendError(t, err); se.Kind != providers.Permanent {
		t.Fatalf("second quick reply: %v, want a permanent refusal", err)
	}
	got, err := e.p.quickReplyChoice(context.Background(), outContact, "1")
	if err != nil {
		t.Fatal(err)
	}
	if got != "Small" {
		t.Fatalf("the contact's \"1\" to the question they got reads %q, want %q", got, "Small")
	}
}
