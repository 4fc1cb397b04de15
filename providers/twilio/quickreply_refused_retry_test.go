package twilio

import (
	"context"
	"testing"

	"github.com/bonychat/bonychat-adapter/internal/faketwilio"
	"github.com/bonychat/bonychat-adapter/providers"
	"github.com/bonychat/bonychat-adapter/schema"
)

// The second quick reply is throttled first (21611, the queue is full: not sent,
// the job retries it) and then refused for good (63016). The contact never
// saw it, so the undo puts back the first question's options, not what the
// throttled attempt wrote (the refused question's own): the contact's "1"
// to the first question reaches BonyChat as "Small", never "Yes".
func TestAQuickReplyRefusedAfterAThrottledAttemptKeepsTheOptionsTheContactGot(t *testing.T) {
	e := outNew(t, outWithConfig(func(c *Config) { c.WhatsApp = true }))
	first := schema.Message{Type: schema.TypeQuickReply, Title: outStr("Which size?"), Replies: []string{"Small", "Large"}}
	if _, err := e.send(t, first, "zz-qr-1"); err != nil {
		t.Fatal(err)
	}
	second := schema.Message{Type: schema.TypeQuickReply, Title: outStr("Delete your account?"), Replies: []string{"Yes", "No"}}
	e.fake.Script(faketwilio.Create, faketwilio.Code(21611))
	_, err := e.send(t, second, "zz-qr-2")
	if se := outSendError(t, err); se.Kind != providers.Throttled {
		t.Fatalf("first attempt: %v, want throttled", err)
	}
	e.fake.Script(faketwilio.Create, faketwilio.Code(63016))
	_, err = e.send(t, second, "zz-qr-2")
	if se := outSendError(t, err); se.Kind != providers.Permanent {
		t.Fatalf("second attempt: %v, want a permanent refusal", err)
	}
	got, err := e.p.quickReplyChoice(context.Background(), outContact, "1")
	if err != nil {
		t.Fatal(err)
	}
	if got != "Small" {
		t.Fatalf("the contact's \"1\" to the question they got reads %q, want %q", got, "Small")
	}
}
