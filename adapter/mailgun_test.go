package adapter

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bonychat/bonychat-adapter/internal/fakemailgun"
	"github.com/bonychat/bonychat-adapter/schema"
)

func mailgunHarness(t *testing.T) (*harness, *fakemailgun.Server) {
	fake := fakemailgun.New(t, "mg.example.com", mailgunKey)
	h := newHarness(t, func(c *Config) { c.Channels[3].Mailgun.APIURL = fake.URL })
	return h, fake
}

func mailgunSignature(timestamp, token string) string {
	mac := hmac.New(sha256.New, []byte(mailgunSign))
	mac.Write([]byte(timestamp + token))
	return hex.EncodeToString(mac.Sum(nil))
}

// postForm posts a urlencoded form through the contract harness.
func (h *harness) postForm(path string, form url.Values) (int, string) {
	h.t.Helper()
	rec := h.do(http.MethodPost, path, "", "application/x-www-form-urlencoded", []byte(form.Encode()))
	return rec.Code, rec.Body.String()
}

func TestMailgunEmailRoundTrip(t *testing.T) {
	h, fake := mailgunHarness(t)
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	headers, _ := json.Marshal([][]string{{"Message-Id", "<first@mail.example.org>"}, {"Subject", "Order 1234"}})
	forward := url.Values{"timestamp": {ts}, "token": {"tok-round-trip-1"}, "signature": {mailgunSignature(ts, "tok-round-trip-1")},
		"recipient": {"support@mg.example.com"}, "sender": {"jane.doe@example.org"}, "from": {"Jane Doe <jane.doe@example.org>"},
		"subject": {"Order 1234"}, "body-plain": {"Where is my order?"}, "stripped-text": {"Where is my order?"},
		"message-headers": {string(headers)}}
	if code, body := h.postForm("/mailgun/mail01/inbound", forward); code != http.StatusOK {
		t.Fatalf("inbound forward: %d %s", code, body)
	}
	posts := h.waitPosts(1)
	p := posts[0].Payload
	if p.ContactID != "jane=doe@example=org" || p.Contact == nil || p.Contact.Email != "jane.doe@example.org" ||
		!strings.Contains(*p.Events[0].Message.Text, "Where is my order?") {
		t.Fatalf("unexpected payload %+v", p)
	}
	// A Mailgun retry (same token, same message) posts nothing again.
	if code, _ := h.postForm("/mailgun/mail01/inbound", forward); code != http.StatusOK {
		t.Fatalf("retry: %d", code)
	}
	// The token with another message is a replay: 406, so Mailgun stops.
	replay := url.Values{}
	for k, v := range forward {
		replay[k] = v
	}
	other, _ := json.Marshal([][]string{{"Message-Id", "<other@mail.example.org>"}})
	replay.Set("message-headers", string(other))
	if code, _ := h.postForm("/mailgun/mail01/inbound", replay); code != http.StatusNotAcceptable {
		t.Fatalf("replayed token: want 406, got %d", code)
	}
	// A forged signature: 406, nothing stored.
	forged := url.Values{}
	for k, v := range forward {
		forged[k] = v
	}
	forged.Set("signature", strings.Repeat("0", 64))
	if code, _ := h.postForm("/mailgun/mail01/inbound", forged); code != http.StatusNotAcceptable {
		t.Fatalf("forged: want 406, got %d", code)
	}
	// The agent answers: one e-mail, threaded to the contact's message.
	rec := h.postJSON("/message", mailToken, textRequest("mail01", p.ContactID, "It ships today."))
	mID := mIDOf(t, rec.Body.Bytes())
	sent := fake.Sent()
	if len(sent) != 1 || sent[0].Get("to") != "jane.doe@example.org" || sent[0].Get("h:In-Reply-To") != "<first@mail.example.org>" ||
		!strings.HasPrefix(sent[0].Get("subject"), "Re: ") {
		t.Fatalf("want one threaded reply, got %+v", sent)
	}
	time.Sleep(50 * time.Millisecond)
	if n := len(h.platform.posts()); n != 1 {
		t.Fatalf("retries, replays and forgeries must post nothing: %d posts", n)
	}
	// Mailgun reports it delivered: a message_status for our mId.
	ts = strconv.FormatInt(time.Now().Unix(), 10)
	event, _ := json.Marshal(map[string]any{
		"signature": map[string]string{"timestamp": ts, "token": "tok-event-1", "signature": mailgunSignature(ts, "tok-event-1")},
		"event-data": map[string]any{"event": "delivered", "recipient": "jane.doe@example.org", "timestamp": time.Now().Unix(),
			"user-variables": map[string]string{"mid": mID}, "message": map[string]any{"headers": map[string]string{"message-id": "x@mg.example.com"}}},
	})
	if rec := h.do(http.MethodPost, "/mailgun/mail01/events", "", "application/json", event); rec.Code != http.StatusOK {
		t.Fatalf("event: %d %s", rec.Code, rec.Body)
	}
	waitFor(t, func() bool { return len(h.statusesFor(mID)) == 1 })
	if st := h.statusesFor(mID)[0]; st.Value != schema.StatusDelivered {
		t.Fatalf("want delivered, got %+v", st)
	}
}
