package twilio

import (
	"context"
	"testing"

	"github.com/bonychat/bonychat-adapter/providers"
)

// Twilio keeps opt-outs per sender–recipient pair, and on WhatsApp the pair
// is whatsapp:+from ↔ whatsapp:+contact: an SMS STOP to a number does not
// opt the contact out of that number's WhatsApp sender, nor the reverse.
// So an SMS channel and a WhatsApp channel on the same number (a common
// set-up) never share an opt-out.
func TestOptOutsOfSMSAndWhatsAppOnOneNumberAreApart(t *testing.T) {
	for _, stopOnWhatsApp := range []bool{false, true} {
		sms := outNew(t)
		wa := outNew(t, func(c *Config, d *providers.Deps) {
			c.WhatsApp = true
			d.ChannelID = "wa01"
			d.Records = sms.records
		})
		stopped, other := sms, wa // the contact texted STOP to the SMS channel
		if stopOnWhatsApp {
			stopped, other = wa, sms // or opted out on WhatsApp (OptOutType)
		}
		if err := stopped.p.setOptOut(context.Background(), outContact, true); err != nil {
			t.Fatal(err)
		}
		if _, err := other.send(t, outText("hello on the other sender"), "optout-1"); err != nil {
			t.Fatalf("STOP on WhatsApp %v: the other sender's send was refused: %v", stopOnWhatsApp, err)
		}
		if n := len(other.fake.Messages()); n != 1 {
			t.Fatalf("STOP on WhatsApp %v: %d messages sent by the other sender, want 1", stopOnWhatsApp, n)
		}
	}
}
