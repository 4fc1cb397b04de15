package twilio

import (
	"context"
	"testing"

	"github.com/bonychat/bonychat-adapter/providers"
)

// Twilio keeps opt-outs per sender–recipient pair, and on WhatsApp the pair
// is whatsapp:+from ↔ whatsapp:+contact: an SMS STOP to a number does not
// opt the contact out of that number's WhatsApp sender, nor the reverse.
// A channel's opt-out record must therefore not be shared between an SMS
// channel and a WhatsApp channel that use the same number (a common
// set-up: one Twilio number enabled for both).
func TestOptOutOfSMSDoesNotBlockWhatsAppOnTheSameNumber(t *testing.T) {
	sms := outNew(t)
	wa := outNew(t, func(c *Config, d *providers.Deps) {
		c.WhatsApp = true
		d.ChannelID = "wa01"
		d.Records = sms.records
	})
	// The contact texted STOP to the SMS channel.
	if err := sms.p.setOptOut(context.Background(), outContact, true); err != nil {
		t.Fatal(err)
	}
	if _, err := wa.send(t, outText("hello on WhatsApp"), "zz-wa-1"); err != nil {
		t.Fatalf("WhatsApp send refused after an SMS STOP: %v", err)
	}
	if n := len(wa.fake.Messages()); n != 1 {
		t.Fatalf("%d WhatsApp messages sent, want 1", n)
	}
}

func TestOptOutOfWhatsAppDoesNotBlockSMSOnTheSameNumber(t *testing.T) {
	sms := outNew(t)
	wa := outNew(t, func(c *Config, d *providers.Deps) {
		c.WhatsApp = true
		d.ChannelID = "wa01"
		d.Records = sms.records
	})
	// The contact opted out on WhatsApp (Advanced Opt-Out's OptOutType).
	if err := wa.p.setOptOut(context.Background(), outContact, true); err != nil {
		t.Fatal(err)
	}
	if _, err := sms.send(t, outText("hello by SMS"), "zz-sms-1"); err != nil {
		t.Fatalf("SMS send refused after a WhatsApp opt-out: %v", err)
	}
	if n := len(sms.fake.Messages()); n != 1 {
		t.Fatalf("%d SMS sent, want 1", n)
	}
}
