package adapter

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bonychat/bonychat-adapter/internal/faketwilio"
	"github.com/bonychat/bonychat-adapter/schema"
)

// twilioHarness is the server with its sms01 channel on a fake Twilio.
func twilioHarness(t *testing.T) (*harness, *faketwilio.Server) {
	fake := faketwilio.New(t, twilioSID, twilioToken)
	h := newHarness(t, func(c *Config) { c.Channels[2].Twilio.APIURL = fake.URL })
	return h, fake
}

// postSigned posts a form to the server as Twilio would, signed for public_url.
func (h *harness) postSigned(path string, form url.Values) (int, string) {
	h.t.Helper()
	req := faketwilio.SignedRequest(twilioToken, h.cfg.PublicURL+path, form)
	req.URL, _ = url.Parse(specHost + path)
	rec := h.doRequest(req, []byte(form.Encode()))
	return rec.Code, rec.Body.String()
}

func TestTwilioSMSRoundTrip(t *testing.T) {
	h, fake := twilioHarness(t)
	// BonyChat sends: the fake Twilio gets one message with our status callback.
	rec := h.postJSON("/message", smsToken, textRequest("sms01", phoneContact, "Your order shipped"))
	mID := mIDOf(t, rec.Body.Bytes())
	msgs := fake.Messages()
	if len(msgs) != 1 || msgs[0].Body != "Your order shipped" || msgs[0].To != phoneContact ||
		!strings.Contains(msgs[0].StatusCallback, "/twilio/sms01/status?mid="+mID) {
		t.Fatalf("want one SMS with a status callback carrying the mId, got %+v", msgs)
	}
	// Twilio reports it delivered: BonyChat gets message_status delivered.
	status := url.Values{"MessageSid": {msgs[0].SID}, "MessageStatus": {"delivered"}, "AccountSid": {twilioSID},
		"To": {phoneContact}, "From": {"+15550001111"}}
	if code, body := h.postSigned("/twilio/sms01/status?mid="+mID, status); code != http.StatusOK {
		t.Fatalf("status callback: %d %s", code, body)
	}
	waitFor(t, func() bool { return len(h.statusesFor(mID)) == 1 })
	if s := h.statusesFor(mID)[0]; s.Value != schema.StatusDelivered {
		t.Fatalf("want delivered, got %+v", s)
	}
	// The contact answers: BonyChat gets a message event with the MessageSid as mId.
	inbound := url.Values{"MessageSid": {"SM0123456789abcdef0123456789abcde1"}, "AccountSid": {twilioSID},
		"From": {phoneContact}, "To": {"+15550001111"}, "Body": {"Thanks!"}, "NumMedia": {"0"}}
	code, body := h.postSigned("/twilio/sms01/inbound", inbound)
	if code != http.StatusOK || !strings.Contains(body, "<Response/>") {
		t.Fatalf("inbound: %d %s", code, body)
	}
	waitFor(t, func() bool { return len(h.eventsOf("SM0123456789abcdef0123456789abcde1")) == 1 })
	// A redelivery of the same webhook posts nothing again.
	if code, _ := h.postSigned("/twilio/sms01/inbound", inbound); code != http.StatusOK {
		t.Fatalf("redelivery: %d", code)
	}
	if n := len(h.eventsOf("SM0123456789abcdef0123456789abcde1")); n != 1 {
		t.Fatalf("a redelivered webhook must post nothing twice: %d", n)
	}
}

func TestTwilioWebhookWithoutAValidSignatureIs403(t *testing.T) {
	h, _ := twilioHarness(t)
	form := url.Values{"MessageSid": {"SM0123456789abcdef0123456789abcde2"}, "AccountSid": {twilioSID},
		"From": {phoneContact}, "To": {"+15550001111"}, "Body": {"forged"}}
	req := faketwilio.SignedRequest("wrongtoken000000000", h.cfg.PublicURL+"/twilio/sms01/inbound", form)
	req.URL, _ = url.Parse(specHost + "/twilio/sms01/inbound")
	if rec := h.doRequest(req, []byte(form.Encode())); rec.Code != http.StatusForbidden {
		t.Fatalf("want 403, got %d", rec.Code)
	}
	if len(h.platform.posts()) != 0 {
		t.Fatal("a forged webhook must store nothing")
	}
}

// eventsOf lists the events BonyChat received with this mId.
func (h *harness) eventsOf(mID string) []schema.Event {
	var out []schema.Event
	for _, p := range h.platform.posts() {
		for _, e := range p.Payload.Events {
			if e.MID == mID {
				out = append(out, e)
			}
		}
	}
	return out
}

// A contact's photo and then a text: Twilio posts two webhooks in that
// order, and the text's arrives while the photo's media are still
// downloading. BonyChat still gets the photo first: messages are stored
// in the order they arrived, not the order their downloads finished.
func TestTwilioInboundKeepsArrivalOrderWhileMediaDownload(t *testing.T) {
	media := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(500 * time.Millisecond) // a slow media host
		w.Header().Set("Content-Type", "image/jpeg")
		_, _ = w.Write([]byte("\xff\xd8\xff\xe0 jpeg"))
	}))
	t.Cleanup(media.Close)
	fake := faketwilio.New(t, twilioSID, twilioToken)
	h := newHarness(t, func(c *Config) {
		c.Channels[2].Twilio.APIURL = fake.URL
		c.Media.Dir = t.TempDir()
		c.Media.AllowPrivateNetworks = true
	})
	const photoSID, textSID = "SM00000000000000000000000000000001", "SM00000000000000000000000000000002"
	photo := url.Values{"MessageSid": {photoSID}, "AccountSid": {twilioSID}, "From": {phoneContact}, "To": {"+15550001111"},
		"Body": {""}, "NumMedia": {"1"}, "MediaUrl0": {media.URL + "/photo.jpg"}, "MediaContentType0": {"image/jpeg"}}
	text := url.Values{"MessageSid": {textSID}, "AccountSid": {twilioSID}, "From": {phoneContact}, "To": {"+15550001111"},
		"Body": {"see the photo above"}, "NumMedia": {"0"}}
	photoDone := make(chan int, 1)
	go func() {
		code, _ := h.postSigned("/twilio/sms01/inbound", photo)
		photoDone <- code
	}()
	time.Sleep(150 * time.Millisecond) // the photo's webhook is downloading
	if code, body := h.postSigned("/twilio/sms01/inbound", text); code != http.StatusOK {
		t.Fatalf("text webhook: %d %s", code, body)
	}
	if code := <-photoDone; code != http.StatusOK {
		t.Fatalf("photo webhook: %d", code)
	}
	waitFor(t, func() bool { return len(h.eventsOf(photoSID+"-1")) == 1 && len(h.eventsOf(textSID)) == 1 })
	var order []string
	for _, p := range h.platform.posts() {
		for _, e := range p.Payload.Events {
			order = append(order, e.MID)
		}
	}
	if !slices.Equal(order, []string{photoSID + "-1", textSID}) {
		t.Fatalf("BonyChat got %v; want the photo (arrived first), then the text", order)
	}
}

// Twilio does not retry a failed incoming-message webhook; set as the
// number's fallback URL ("Primary handler fails"), the same endpoint takes
// the one second try, which carries ErrorCode and ErrorUrl besides the
// message: the message is stored and posted once.
func TestTwilioInboundTakesTheFallbackCall(t *testing.T) {
	h, _ := twilioHarness(t)
	const sid = "SM00000000000000000000000000000009"
	form := url.Values{"MessageSid": {sid}, "AccountSid": {twilioSID}, "From": {phoneContact}, "To": {"+15550001111"},
		"Body": {"hello"}, "NumMedia": {"0"}, "ErrorCode": {"11200"},
		"ErrorUrl": {h.cfg.PublicURL + "/twilio/sms01/inbound"}}
	if code, body := h.postSigned("/twilio/sms01/inbound", form); code != http.StatusOK {
		t.Fatalf("fallback call: %d %s", code, body)
	}
	waitFor(t, func() bool { return len(h.eventsOf(sid)) == 1 })
	if text := h.eventsOf(sid)[0].Message.Text; text == nil || *text != "hello" {
		t.Fatalf("posted %+v, want the message's text", h.eventsOf(sid)[0])
	}
}
