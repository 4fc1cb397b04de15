package adapter

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bonychat/bonychat-adapter/internal/fakemailgun"
	"github.com/bonychat/bonychat-adapter/providers/mailgun"
	"github.com/bonychat/bonychat-adapter/schema"
	"github.com/bonychat/bonychat-adapter/store"
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

const mail2Token = "test-token-mail02-000000001"

// addMailChannel adds a second Mailgun channel "mail02" on domain, sending
// through apiURL, with the same signing key as mail01 (one Mailgun account).
func addMailChannel(c *Config, domain, apiURL string) {
	c.Channels = append(c.Channels, ChannelConfig{ID: "mail02", Token: mail2Token, IDType: schema.IDTypeCustom,
		Provider: "mailgun", Mailgun: &mailgun.Config{Domain: domain, APIKey: mailgunKey, WebhookSigningKey: mailgunSign,
			APIURL: apiURL, From: "Sales <sales@" + domain + ">", Subject: "Your conversation with Sales",
			SignatureMaxAge: 24 * time.Hour}})
}

func signedForward(token, msgID, subject, text string) url.Values {
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	headers, _ := json.Marshal([][]string{{"Message-Id", "<" + msgID + ">"}, {"Subject", subject}})
	return url.Values{"timestamp": {ts}, "token": {token}, "signature": {mailgunSignature(ts, token)},
		"recipient": {"support@mg.example.com"}, "sender": {"jane.doe@example.org"}, "from": {"Jane Doe <jane.doe@example.org>"},
		"subject": {subject}, "body-plain": {text}, "stripped-text": {text}, "message-headers": {string(headers)}}
}

// twoMailChannels is a harness on st with mail01 (mg.example.com) and
// mail02 (mg.sales.example.com), each on its own fake Mailgun, one signing
// key.
func twoMailChannels(t *testing.T, st store.Store) (h *harness, fake1, fake2 *fakemailgun.Server) {
	t.Helper()
	fake1 = fakemailgun.New(t, "mg.example.com", mailgunKey)
	fake2 = fakemailgun.New(t, "mg.sales.example.com", mailgunKey)
	return newHarnessOn(t, st, func(c *Config) {
		c.Channels[3].Mailgun.APIURL = fake1.URL
		addMailChannel(c, "mg.sales.example.com", fake2.URL)
	}, nil), fake1, fake2
}

// Two Mailgun channels, one store: the contact's mail to one channel does
// not thread the e-mails the other sends to the same address (subject,
// In-Reply-To, References stay the other conversation's).
func TestMailgunChannelsKeepTheirOwnThreads(t *testing.T) {
	h, _, fake2 := twoMailChannels(t, store.NewMemory())
	// Jane writes to the support channel (mail01).
	if code, body := h.postForm("/mailgun/mail01/inbound",
		signedForward("tok-thread-1", "support-1@mail.example.org", "My password reset", "I cannot log in")); code != http.StatusOK {
		t.Fatalf("inbound: %d %s", code, body)
	}
	posts := h.waitPosts(1)
	contact := posts[0].Payload.ContactID
	// The sales agent (mail02) writes to Jane for the first time.
	rec := h.postJSON("/message", mail2Token, textRequest("mail02", contact, "Our spring offer"))
	if rec.Code != http.StatusOK {
		t.Fatalf("/message: %d %s", rec.Code, rec.Body)
	}
	sent := fake2.Sent()
	if len(sent) != 1 {
		t.Fatalf("want one e-mail from mail02, got %d", len(sent))
	}
	m := sent[0]
	if m.Get("subject") != "Your conversation with Sales" || m.Get("h:In-Reply-To") != "" ||
		strings.Contains(m.Get("h:References"), "support-1@mail.example.org") {
		t.Fatalf("mail02's first e-mail is threaded into mail01's conversation: subject %q, In-Reply-To %q, References %q",
			m.Get("subject"), m.Get("h:In-Reply-To"), m.Get("h:References"))
	}
}

// Mailgun's event webhooks are per domain: with two channels on one domain
// both endpoints get every event, the other channel's first here, with the
// same token. The receipt reaches the conversation of the channel that sent
// the message, once, and no other.
func TestMailgunReceiptReachesOnlyTheSendingChannel(t *testing.T) {
	fake := fakemailgun.New(t, "mg.example.com", mailgunKey)
	h := newHarness(t, func(c *Config) {
		c.Channels[3].Mailgun.APIURL = fake.URL
		addMailChannel(c, "mg.example.com", fake.URL)
	})
	rec := h.postJSON("/message", mailToken, textRequest("mail01", "jane=doe@example=org", "Hello from support"))
	if rec.Code != http.StatusOK {
		t.Fatalf("/message: %d %s", rec.Code, rec.Body)
	}
	mID := mIDOf(t, rec.Body.Bytes())
	// One event, built once: Mailgun sends the same signed body to both URLs
	// (built twice, a second boundary between them would make the token a
	// replay of another body).
	token := "tok-shared-ev-1"
	now := time.Now().Unix()
	ts := strconv.FormatInt(now, 10)
	event, _ := json.Marshal(map[string]any{
		"signature": map[string]string{"timestamp": ts, "token": token, "signature": mailgunSignature(ts, token)},
		"event-data": map[string]any{"event": "delivered", "id": "ev-shared-1", "recipient": "jane.doe@example.org",
			"timestamp": now, "user-variables": map[string]string{"mid": mID},
			"message": map[string]any{"headers": map[string]string{"message-id": mID + "@mg.example.com"}}},
	})
	// Mailgun calls both URLs configured on the domain; mail02's first here.
	if rec := h.do(http.MethodPost, "/mailgun/mail02/events", "", "application/json", event); rec.Code != http.StatusOK {
		t.Fatalf("mail02 event: %d %s", rec.Code, rec.Body)
	}
	if rec := h.do(http.MethodPost, "/mailgun/mail01/events", "", "application/json", event); rec.Code != http.StatusOK {
		t.Fatalf("mail01 event: %d %s", rec.Code, rec.Body)
	}
	waitFor(t, func() bool { return len(h.statusesFor(mID)) > 0 })
	time.Sleep(100 * time.Millisecond) // a second post would be made by now
	var owned int
	for _, p := range h.platform.posts() {
		for _, e := range p.Payload.Events {
			switch {
			case e.Type != schema.EventMessageStatus || e.MID != mID:
			case p.Payload.ChannelID != "mail01":
				t.Errorf("status of mail01's message %s posted to channel %q", mID, p.Payload.ChannelID)
			case e.Status.Value == schema.StatusDelivered:
				owned++
			}
		}
	}
	if owned != 1 {
		t.Errorf("channel mail01 got %d delivered statuses for its message, want 1", owned)
	}
}

// Mailgun signs only the timestamp and token: a signed triple captured on
// one channel, replayed to another channel of the same signing key with
// the same Message-Id but another sender and text, is refused (406) and
// posts nothing there. The token is bound to a digest of what it signed.
func TestMailgunForwardTokenReplayedWithAnotherBodyIsRefused(t *testing.T) {
	h, _, _ := twoMailChannels(t, store.NewMemory())
	legit := signedForward("tok-captured-1", "orig-1@mail.example.org", "Hello", "a normal question")
	if code, body := h.postForm("/mailgun/mail01/inbound", legit); code != http.StatusOK {
		t.Fatalf("legit forward: %d %s", code, body)
	}
	h.waitPosts(1)
	forged := signedForward("tok-captured-1", "orig-1@mail.example.org", "Hello", "URGENT: wire 50k to IBAN XX00 1234")
	forged.Set("timestamp", legit.Get("timestamp"))
	forged.Set("signature", legit.Get("signature"))
	forged.Set("from", "Boss <boss@example.org>")
	forged.Set("sender", "boss@example.org")
	code, body := h.postForm("/mailgun/mail02/inbound", forged)
	if code != http.StatusNotAcceptable {
		t.Errorf("replayed token with another body on another channel: %d %s, want 406", code, body)
	}
	time.Sleep(150 * time.Millisecond)
	for _, p := range h.platform.posts() {
		if p.Payload.ChannelID == "mail02" {
			t.Fatalf("forged mail posted into mail02: contact %q", p.Payload.ContactID)
		}
	}
	// The same forward again on its own channel is Mailgun's retry: taken
	// without a second post.
	if code, body := h.postForm("/mailgun/mail01/inbound", legit); code != http.StatusOK {
		t.Fatalf("Mailgun's retry: %d %s", code, body)
	}
}

// An event's signed triple replayed to another channel with the same
// event id but another event and mId cannot mark that channel's message
// failed.
func TestMailgunEventTokenReplayedWithAnotherEventIsRefused(t *testing.T) {
	h, _, _ := twoMailChannels(t, store.NewMemory())
	mid1 := mIDOf(t, h.postJSON("/message", mailToken, textRequest("mail01", "jane=doe@example=org", "from support")).Body.Bytes())
	mid2 := mIDOf(t, h.postJSON("/message", mail2Token, textRequest("mail02", "jane=doe@example=org", "from sales")).Body.Bytes())
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	const token = "tok-captured-ev-1"
	event := func(mid, name string) []byte {
		b, _ := json.Marshal(map[string]any{
			"signature": map[string]string{"timestamp": ts, "token": token, "signature": mailgunSignature(ts, token)},
			"event-data": map[string]any{"event": name, "id": "ev-captured-1", "recipient": "jane.doe@example.org",
				"severity": "permanent", "reason": "bounce", "timestamp": time.Now().Unix(),
				"user-variables":  map[string]string{"mid": mid},
				"delivery-status": map[string]any{"code": 550, "message": "forged: mailbox does not exist"}},
		})
		return b
	}
	if rec := h.do(http.MethodPost, "/mailgun/mail01/events", "", "application/json", event(mid1, "delivered")); rec.Code != http.StatusOK {
		t.Fatalf("legit event: %d %s", rec.Code, rec.Body)
	}
	waitFor(t, func() bool { return len(h.statusesFor(mid1)) > 0 })
	rec := h.do(http.MethodPost, "/mailgun/mail02/events", "", "application/json", event(mid2, "failed"))
	if rec.Code != http.StatusNotAcceptable {
		t.Errorf("replayed event token: %d %s, want 406", rec.Code, rec.Body)
	}
	time.Sleep(150 * time.Millisecond)
	if got := h.statusesFor(mid2); len(got) != 0 {
		t.Fatalf("a replayed token posted %+v for mail02's message", got)
	}
}

// Channels sharing a Mailgun domain each get every event. A late receipt
// of one channel's message (its job no longer kept) is posted by that
// channel only: the e-mail's variables name the channel that sent it.
func TestMailgunLateReceiptGoesOnlyToTheSendingChannel(t *testing.T) {
	fake := fakemailgun.New(t, "mg.example.com", mailgunKey)
	h := newHarness(t, func(c *Config) {
		c.Channels[3].Mailgun.APIURL = fake.URL
		addMailChannel(c, "mg.example.com", fake.URL)
	})
	mID := mIDOf(t, h.postJSON("/message", mailToken, textRequest("mail01", "jane=doe@example=org", "Hello from support")).Body.Bytes())
	later := time.Now().Add(8 * 24 * time.Hour)
	if err := h.st.Sweep(t.Context(), store.SweepRequest{Now: time.Now(), DoneBefore: later.Add(-keepDoneJobs)}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.st.JobByMID(t.Context(), store.Outbound, mID); err == nil {
		t.Fatal("the job is still kept")
	}
	sent := fake.Sent()
	if len(sent) != 1 || sent[0].Get("v:channel") != "mail01" {
		t.Fatalf("the e-mail does not name its channel: %d sent", len(sent))
	}
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	const token = "tok-late-open-1"
	ev, _ := json.Marshal(map[string]any{
		"signature": map[string]string{"timestamp": ts, "token": token, "signature": mailgunSignature(ts, token)},
		"event-data": map[string]any{"event": "opened", "id": "ev-late-open-1", "recipient": "jane.doe@example.org",
			"timestamp": time.Now().Unix(), "user-variables": map[string]string{"mid": mID, "channel": "mail01"}},
	})
	for _, ch := range []string{"mail02", "mail01"} { // the other channel's webhook first
		if rec := h.do(http.MethodPost, "/mailgun/"+ch+"/events", "", "application/json", ev); rec.Code != http.StatusOK {
			t.Fatalf("%s event: %d %s", ch, rec.Code, rec.Body)
		}
	}
	waitFor(t, func() bool { return len(h.statusesFor(mID)) > 0 })
	time.Sleep(100 * time.Millisecond)
	for _, p := range h.platform.posts() {
		for _, e := range p.Payload.Events {
			if e.MID == mID && p.Payload.ChannelID != "mail01" {
				t.Fatalf("mail01's receipt posted into %q", p.Payload.ChannelID)
			}
		}
	}
}

// slowEnqueue delays every Enqueue (a busy disk), widening the time
// between a webhook's token check and its record.
type slowEnqueue struct {
	store.Store
	delay time.Duration
}

func (s slowEnqueue) Enqueue(ctx context.Context, jobs []store.NewJob, keys []store.Key) ([]int64, error) {
	time.Sleep(s.delay)
	return s.Store.Enqueue(ctx, jobs, keys)
}

// Posts of one signed event token with different events, at once and on
// two channels, are taken one after the other: one is taken, the other is
// refused as a replay, and only one status reaches BonyChat.
func TestMailgunConcurrentReplaysOfOneTokenTakeOne(t *testing.T) {
	h, _, _ := twoMailChannels(t, slowEnqueue{store.NewMemory(), 200 * time.Millisecond})
	mids := map[string]string{
		"mail01": mIDOf(t, h.postJSON("/message", mailToken, textRequest("mail01", "jane=doe@example=org", "from support")).Body.Bytes()),
		"mail02": mIDOf(t, h.postJSON("/message", mail2Token, textRequest("mail02", "jane=doe@example=org", "from sales")).Body.Bytes()),
	}
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	const token = "tok-race-ev-1"
	codes := make(chan int, len(mids))
	for channel, mid := range mids {
		ev, _ := json.Marshal(map[string]any{
			"signature": map[string]string{"timestamp": ts, "token": token, "signature": mailgunSignature(ts, token)},
			"event-data": map[string]any{"event": "delivered", "id": "ev-race-1", "recipient": "jane.doe@example.org",
				"timestamp": time.Now().Unix(), "user-variables": map[string]string{"mid": mid, "channel": channel}},
		})
		go func() { codes <- h.do(http.MethodPost, "/mailgun/"+channel+"/events", "", "application/json", ev).Code }()
	}
	got := []int{<-codes, <-codes}
	slices.Sort(got)
	if !slices.Equal(got, []int{http.StatusOK, http.StatusNotAcceptable}) {
		t.Fatalf("answers %v, want one 200 and one 406", got)
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(h.statusesFor(mids["mail01"])) + len(h.statusesFor(mids["mail02"])); n != 1 {
		t.Fatalf("%d statuses posted for one signed token, want 1", n)
	}
}

// A redelivered Mailgun forward (Mailgun's retry after a timeout, another
// route's copy: the same Message-Id, already taken) is answered 200 without
// storing its attachments again: a copy would be linked from nothing and
// kept for media.retention.
func TestMailgunRedeliveryDoesNotStoreItsAttachmentsAgain(t *testing.T) {
	fake := fakemailgun.New(t, "mg.example.com", mailgunKey)
	dir := t.TempDir()
	h := newHarness(t, func(c *Config) {
		c.Channels[3].Mailgun.APIURL = fake.URL
		c.Media.Dir = dir
	})
	post := func(token string) int {
		var buf bytes.Buffer
		w := multipart.NewWriter(&buf)
		for k, v := range signedForward(token, "dup-1@mail.example.org", "Invoice", "see attached") {
			_ = w.WriteField(k, v[0])
		}
		_ = w.WriteField("attachment-count", "1")
		fw, _ := w.CreateFormFile("attachment-1", "invoice.pdf")
		_, _ = fw.Write(append([]byte("%PDF-1.4\n"), bytes.Repeat([]byte("x"), 100_000)...))
		_ = w.Close()
		req := httptest.NewRequest(http.MethodPost, "/mailgun/mail01/inbound", &buf)
		req.Header.Set("Content-Type", w.FormDataContentType())
		rec := httptest.NewRecorder()
		h.srv.Handler().ServeHTTP(rec, req)
		return rec.Code
	}
	for i, token := range []string{"token-first-0000000000000001", "token-retry-0000000000000002", "token-other-route-000000003"} {
		if code := post(token); code != http.StatusOK {
			t.Fatalf("delivery %d: %d", i+1, code)
		}
	}
	if n := len(h.waitPosts(1)); n != 1 {
		t.Fatalf("BonyChat got %d posts, want 1 (redeliveries are deduped)", n)
	}
	if files := mediaFiles(t, dir); len(files) != 1 {
		t.Errorf("one e-mail delivered 3 times left %d media files (%v), want 1", len(files), files)
	}
}
