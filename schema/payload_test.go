package schema_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/bonychat/bonychat-adapter/schema"
)

// validPayload is a payload BonyChat accepts from a phone-number channel.
func validPayload() *schema.WebhookPayload {
	return &schema.WebhookPayload{
		ChannelID: testChannelID,
		ContactID: testContactID,
		Events:    []schema.Event{textEvent("SM0123456789abcdef0123456789abcdef", "Hello World")},
		Contact: &schema.Contact{FirstName: "John", LastName: "Doe", Phone: "+60177872890",
			CountryCode: "MY", Language: "en"},
	}
}

func TestValidatePayload(t *testing.T) {
	type tc struct {
		name   string
		idType schema.IDType // zero: phone
		edit   func(p *schema.WebhookPayload)
		wants  []want // none: valid
	}
	events := func(n int) []schema.Event {
		out := make([]schema.Event, n)
		for i := range out {
			out[i] = textEvent(fmt.Sprintf("SM%d", i), "hi")
		}
		return out
	}
	cases := []tc{
		{name: "valid payload passes", edit: func(*schema.WebhookPayload) {}},
		{name: "payload without contact passes", edit: func(p *schema.WebhookPayload) { p.Contact = nil }},
		{name: "message_echo event passes", edit: func(p *schema.WebhookPayload) { p.Events[0].Type = schema.EventMessageEcho }},
		{name: "every status value passes", edit: func(p *schema.WebhookPayload) {
			p.Events = []schema.Event{statusEvent("a", "sent", ""), statusEvent("b", "delivered", ""),
				statusEvent("c", "read", ""), statusEvent("d", "failed", "invalid number")}
		}},
		{name: "failed reason of 1000 characters passes", edit: func(p *schema.WebhookPayload) {
			p.Events = []schema.Event{statusEvent("a", "failed", rep("r", 1000))}
		}},
		{name: "20 events pass", edit: func(p *schema.WebhookPayload) { p.Events = events(20) }},
		{name: "21 events are refused with max 20", edit: func(p *schema.WebhookPayload) { p.Events = events(21) },
			wants: []want{{"events", "max", lim(20)}}},
		{name: "no events are refused with min 1", edit: func(p *schema.WebhookPayload) { p.Events = []schema.Event{} },
			wants: []want{{"events", "min", lim(1)}}},
		{name: "missing events are refused as required", edit: func(p *schema.WebhookPayload) { p.Events = nil },
			wants: []want{{"events", "required", nil}}},
		{name: "missing channelId is refused as required", edit: func(p *schema.WebhookPayload) { p.ChannelID = "" },
			wants: []want{{"channelId", "required", nil}}},
		{name: "message_status without status is refused as required", edit: func(p *schema.WebhookPayload) {
			p.Events = []schema.Event{{Type: schema.EventMessageStatus, MID: "a", Timestamp: testTimestamp}}
		}, wants: []want{{"events[0].status", "required", nil}}},
		{name: "message event with a status is refused as not_allowed", edit: func(p *schema.WebhookPayload) {
			p.Events[0].Status = &schema.Status{Value: "sent"}
		}, wants: []want{{"events[0].status", "not_allowed", nil}}},
		{name: "message event without message is refused as required", edit: func(p *schema.WebhookPayload) {
			p.Events[0].Message = nil
		}, wants: []want{{"events[0].message", "required", nil}}},
		{name: "message_status with a message is refused as not_allowed", edit: func(p *schema.WebhookPayload) {
			p.Events = []schema.Event{statusEvent("a", "read", "")}
			p.Events[0].Message = schema.TextMessage("hi")
		}, wants: []want{{"events[0].message", "not_allowed", nil}}},
		{name: "unknown status value is refused as oneof", edit: func(p *schema.WebhookPayload) {
			p.Events = []schema.Event{statusEvent("a", "bounced", "")}
		}, wants: []want{{"events[0].status.value", "oneof", nil}}},
		{name: "failed reason of 1001 characters is refused with max 1000", edit: func(p *schema.WebhookPayload) {
			p.Events = []schema.Event{statusEvent("a", "failed", rep("r", 1001))}
		}, wants: []want{{"events[0].status.message", "max", lim(1000)}}},
		{name: "unknown event type is refused as oneof", edit: func(p *schema.WebhookPayload) { p.Events[0].Type = "reaction" },
			wants: []want{{"events[0].type", "oneof", nil}}},
		{name: "mId of 50 characters passes", edit: func(p *schema.WebhookPayload) { p.Events[0].MID = rep("m", 50) }},
		{name: "mId of 51 characters is refused with max 50", edit: func(p *schema.WebhookPayload) { p.Events[0].MID = rep("m", 51) },
			wants: []want{{"events[0].mId", "max", lim(50)}}},
		{name: "missing mId is refused as required", edit: func(p *schema.WebhookPayload) { p.Events[0].MID = "" },
			wants: []want{{"events[0].mId", "required", nil}}},
		{name: "timestamp 0 is refused", edit: func(p *schema.WebhookPayload) { p.Events[0].Timestamp = 0 },
			wants: []want{{"events[0].timestamp", "required", nil}}},
		{name: "negative timestamp is refused with gt 0", edit: func(p *schema.WebhookPayload) { p.Events[0].Timestamp = -1 },
			wants: []want{{"events[0].timestamp", "gt", lim(0)}}},
		{name: "the second event is named by its index", edit: func(p *schema.WebhookPayload) {
			p.Events = append(p.Events, textEvent("b", rep("😀", 7001)))
		}, wants: []want{{"events[1].message.text", "max", lim(7000)}}},
		{name: "unknown message type in an event is one oneof error", edit: func(p *schema.WebhookPayload) {
			p.Events[0].Message.Type = "sticker"
		}, wants: []want{{"events[0].message.type", "oneof", nil}}},
		{name: "phone channel refuses a contactId without +", edit: func(p *schema.WebhookPayload) { p.ContactID = "60177872890" },
			wants: []want{{"contactId", "e164", nil}}},
		{name: "custom channel accepts a custom ID", idType: schema.IDTypeCustom,
			edit: func(p *schema.WebhookPayload) { p.ContactID = "jane_doe=example/com@x" }},
		{name: "custom channel accepts 50 characters", idType: schema.IDTypeCustom,
			edit: func(p *schema.WebhookPayload) { p.ContactID = rep("A", 50) }},
		// One entry per invalid field (PROTOCOL.md, "details").
		{name: "custom channel reports an invalid contactId once", idType: schema.IDTypeCustom,
			edit:  func(p *schema.WebhookPayload) { p.ContactID = "jane.doe" },
			wants: []want{{"contactId", "contact_id", lim(50)}}},
		{name: "contact first name of 50 astral code points passes", edit: func(p *schema.WebhookPayload) {
			p.Contact = &schema.Contact{FirstName: rep("😀", 50)}
		}},
		// One entry per invalid field, under its path in the payload.
		{name: "contact first name of 51 characters is reported once as contact.firstName", edit: func(p *schema.WebhookPayload) {
			p.Contact.FirstName = rep("f", 51)
		}, wants: []want{{"contact.firstName", "max", lim(50)}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := validPayload()
			c.edit(p)
			idType := c.idType
			if idType == "" {
				idType = schema.IDTypePhone
			}
			assertFieldErrors(t, schema.ValidatePayload(p, idType), c.wants...)
		})
	}
}

// TestValidatePayload_ContactRules checks every contact rule names the
// contact field; whether it is also reported elsewhere is the concern of
// TestValidatePayload.
func TestValidatePayload_ContactRules(t *testing.T) {
	cases := []struct {
		name    string
		contact schema.Contact
		want    want
	}{
		{"first name of 51", schema.Contact{FirstName: rep("é", 51)}, want{"contact.firstName", "max", lim(50)}},
		{"last name of 51", schema.Contact{LastName: rep("中", 51)}, want{"contact.lastName", "max", lim(50)}},
		{"email of 51", schema.Contact{Email: rep("e", 39) + "@example.com"}, want{"contact.email", "max", lim(50)}},
		{"phone of 19", schema.Contact{Phone: "+" + rep("1", 18)}, want{"contact.phone", "max", lim(18)}},
		{"lower-case country code", schema.Contact{CountryCode: "my"}, want{"contact.countryCode", "uppercase", nil}},
		{"three-letter country code", schema.Contact{CountryCode: "MYS"}, want{"contact.countryCode", "len", lim(2)}},
		{"upper-case language", schema.Contact{Language: "EN"}, want{"contact.language", "lowercase", nil}},
		{"malformed locale", schema.Contact{Locale: "english!"}, want{"contact.locale", "locale", nil}},
		{"non-http profile picture", schema.Contact{ProfilePic: "ftp://example.com/p.jpg"}, want{"contact.profilePic", "url", nil}},
		{"timezone 25", schema.Contact{Timezone: ptr(25.0)}, want{"contact.timezone", "lte", lim(24)}},
		{"timezone -25", schema.Contact{Timezone: ptr(-25.0)}, want{"contact.timezone", "gte", lim(-24)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := validPayload()
			p.Contact = &tc.contact
			err := schema.ValidatePayload(p, schema.IDTypePhone)
			var verr *schema.ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("want *schema.ValidationError naming %v, got %v", tc.want, err)
			}
			for _, f := range verr.Fields {
				if sameWant(want{f.Field, f.Rule, f.Limit}, tc.want) {
					return
				}
			}
			t.Fatalf("want %v among %v", tc.want, wantsOf(verr.Fields))
		})
	}
	t.Run("valid contact fields pass", func(t *testing.T) {
		p := validPayload()
		p.Contact = &schema.Contact{FirstName: rep("é", 50), LastName: rep("中", 50), ProfilePic: "https://example.com/p.jpg",
			Locale: "en_US", CountryCode: "MY", Timezone: ptr(-24.0), Email: rep("e", 38) + "@example.com",
			Phone: "+" + rep("1", 17), Language: "ms"}
		assertFieldErrors(t, schema.ValidatePayload(p, schema.IDTypePhone))
	})
}
