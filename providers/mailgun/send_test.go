package mailgun

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bonychat/bonychat-adapter/internal/fakemailgun"
	"github.com/bonychat/bonychat-adapter/internal/testkit"
	"github.com/bonychat/bonychat-adapter/providers"
	"github.com/bonychat/bonychat-adapter/schema"
)

const (
	sendDomain  = "mg.example.com"
	sendKey     = "key-0123456789abcdef0123456789abcdef"
	sendSignKey = "sign-fedcba9876543210fedcba9876543210"
	sendFrom    = "Acme Support <support@mg.example.com>"
	sendSubject = "Your conversation with Acme"
	sendTo      = "jane.doe@example.com"
	sendContact = "jane=doe@example=com"
)

type sendEnv struct {
	p       *Provider
	fake    *fakemailgun.Server
	records *testkit.Records
	logs    *testkit.LogBuffer
}

// sendNew builds a provider against a new fake; fetch (may be nil) is the
// attachment fetcher. Neither errors nor logs may ever carry the API key.
func sendNew(t *testing.T, fetch *providers.Fetcher, edit ...func(*Config)) *sendEnv {
	t.Helper()
	fake := fakemailgun.New(t, sendDomain, sendKey)
	log, buf := testkit.NewLogger()
	cfg := Config{Domain: sendDomain, APIKey: sendKey, WebhookSigningKey: sendSignKey, APIURL: fake.URL,
		From: sendFrom, Subject: sendSubject}
	for _, f := range edit {
		f(&cfg)
	}
	if probs := cfg.Problems(); len(probs) > 0 {
		t.Fatalf("test config invalid: %v", probs)
	}
	e := &sendEnv{fake: fake, records: testkit.NewRecords(), logs: buf}
	p, err := New(cfg, providers.Deps{ChannelID: "mail01", IDType: schema.IDTypeCustom, Log: log,
		Records: e.records, Fetcher: fetch, Transport: testkit.NewLocalOnlyTransport()})
	if err != nil {
		t.Fatal(err)
	}
	e.p = p
	p.reconcilePause = 10 * time.Millisecond // events "appear" at once in the fake
	t.Cleanup(func() {
		if strings.Contains(buf.String(), sendKey) {
			t.Errorf("the API key was logged: %s", buf.String())
		}
	})
	return e
}

func (e *sendEnv) send(t *testing.T, ctx context.Context, contact string, m schema.Message, mID string) (providers.Sent, error) {
	t.Helper()
	sent, err := e.p.Send(ctx, providers.Recipient{ChannelID: "mail01", ContactID: contact}, m, mID)
	if err != nil {
		if strings.Contains(err.Error(), sendKey) || strings.Contains(providers.AsSendError(err).Reason, sendKey) {
			t.Fatalf("the API key is in the error: %v", err)
		}
	}
	return sent, err
}

func sendKind(t *testing.T, err error) *providers.SendError {
	t.Helper()
	var se *providers.SendError
	if !errors.As(err, &se) {
		t.Fatalf("error %v (%T) is not a *providers.SendError", err, err)
	}
	return se
}

func sendOnly(t *testing.T, f *fakemailgun.Server) fakemailgun.Message {
	t.Helper()
	got := f.Sent()
	if len(got) != 1 {
		t.Fatalf("fake received %d e-mails, want 1", len(got))
	}
	return got[0]
}

func text(s string) schema.Message { return schema.Message{Type: schema.TypeText, Text: &s} }

func ptr[T any](v T) *T { return &v }

func TestSendText(t *testing.T) {
	e := sendNew(t, nil)
	sent, err := e.send(t, context.Background(), sendContact, text("Hi <Jane> & co,\nsee https://example.com/a?b=1&c=2.\nBye"), "m1")
	if err != nil {
		t.Fatal(err)
	}
	if len(sent.ProviderIDs) != 1 || sent.ProviderIDs[0] != "m1@"+sendDomain {
		t.Fatalf("ProviderIDs = %v, want [m1@%s]", sent.ProviderIDs, sendDomain)
	}
	m := sendOnly(t, e.fake)
	want := map[string]string{
		"from": sendFrom, "to": sendTo, "subject": sendSubject,
		"h:Message-Id": "<m1@" + sendDomain + ">", "v:mid": "m1", "v:channel": "mail01",
		"text": "Hi <Jane> & co,\nsee https://example.com/a?b=1&c=2.\nBye",
	}
	for k, v := range want {
		if got := m.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	html := m.Get("html")
	for _, frag := range []string{
		"Hi &lt;Jane&gt; &amp; co,<br>",
		`see <a href="https://example.com/a?b=1&amp;c=2">https://example.com/a?b=1&amp;c=2</a>.<br>`,
		"Bye",
	} {
		if !strings.Contains(html, frag) {
			t.Errorf("html lacks %q:\n%s", frag, html)
		}
	}
	if strings.Contains(html, "<Jane>") {
		t.Errorf("html is not escaped: %s", html)
	}
	if len(m.Attachments) != 0 {
		t.Errorf("unexpected attachments: %v", m.Attachments)
	}
}

func TestSendUnknownContact(t *testing.T) {
	e := sendNew(t, nil)
	for _, id := range []string{"not an id", "Jane@example=com", "abc/" + strings.Repeat("A", 32), "+15551230000"} {
		_, err := e.send(t, context.Background(), id, text("hi"), "m1")
		se := sendKind(t, err)
		if se.Kind != providers.Permanent || se.Reason != "unknown contact ID; this server never handed it out" {
			t.Errorf("%q: got %v %q, want permanent unknown contact", id, se.Kind, se.Reason)
		}
	}
	if n := e.fake.Requests(); n != 0 {
		t.Fatalf("fake saw %d requests for unknown contacts", n)
	}
}

func TestSendContactStoreFailureIsRetryable(t *testing.T) {
	e := sendNew(t, nil)
	e.records.FailGets("", errors.New("disk on fire"))
	_, err := e.send(t, context.Background(), "abc/"+strings.Repeat("A", 32), text("hi"), "m1")
	if se := sendKind(t, err); se.Kind != providers.Unreachable {
		t.Fatalf("kind = %v, want unreachable", se.Kind)
	}
}

func TestSendToHashedContact(t *testing.T) {
	e := sendNew(t, nil)
	long := "a.very.long.local.part.of.an.address@subdomain.of.some.example.com"
	id, err := EncodeContactID(context.Background(), e.records, long)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.send(t, context.Background(), id, text("hi"), "m1"); err != nil {
		t.Fatal(err)
	}
	if got := sendOnly(t, e.fake).Get("to"); got != long {
		t.Fatalf("to = %q, want %q", got, long)
	}
}

func TestSendLocation(t *testing.T) {
	e := sendNew(t, nil)
	m := schema.Message{Type: schema.TypeLocation, Latitude: ptr(52.52), Longitude: ptr(13.405), Address: ptr("Alexanderplatz 1, Berlin")}
	if _, err := e.send(t, context.Background(), sendContact, m, "m2"); err != nil {
		t.Fatal(err)
	}
	got := sendOnly(t, e.fake)
	if want := "Alexanderplatz 1, Berlin\nhttps://maps.google.com/?q=52.52,13.405"; got.Get("text") != want {
		t.Errorf("text = %q, want %q", got.Get("text"), want)
	}
	if !strings.Contains(got.Get("html"), `<a href="https://maps.google.com/?q=52.52,13.405">`) {
		t.Errorf("html lacks the map link: %s", got.Get("html"))
	}
}

func TestSendQuickReply(t *testing.T) {
	e := sendNew(t, nil)
	m := schema.Message{Type: schema.TypeQuickReply, Title: ptr("How was it?"), Replies: []string{"Great & fast", "Meh"}}
	if _, err := e.send(t, context.Background(), sendContact, m, "m3"); err != nil {
		t.Fatal(err)
	}
	got := sendOnly(t, e.fake)
	if want := providers.QuickReplyText(m); got.Get("text") != want {
		t.Errorf("text = %q, want %q", got.Get("text"), want)
	}
	html := got.Get("html")
	for _, frag := range []string{
		"<p>How was it?</p>",
		`<a href="mailto:` + e.p.ReplyAddress(sendContact) + `?body=Great%20%26%20fast">Great &amp; fast</a>`,
		`<a href="mailto:` + e.p.ReplyAddress(sendContact) + `?body=Meh">Meh</a>`,
	} {
		if !strings.Contains(html, frag) {
			t.Errorf("html lacks %q:\n%s", frag, html)
		}
	}
}

func TestSendUnsupportedType(t *testing.T) {
	e := sendNew(t, nil)
	_, err := e.send(t, context.Background(), sendContact, schema.Message{Type: "carousel"}, "m1")
	if se := sendKind(t, err); se.Kind != providers.Permanent {
		t.Fatalf("kind = %v, want permanent", se.Kind)
	}
}

// fileServer serves body at /files/... (loopback; the fetcher is told to
// allow private networks).
func fileServer(t *testing.T, ctype string, body []byte) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/files/") {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", ctype)
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func fetcher(maxBytes int64) *providers.Fetcher {
	return providers.NewFetcher(providers.FetchConfig{MaxBytes: maxBytes, Timeout: 5 * time.Second, AllowPrivateNetworks: true})
}

// pdf is binary content: bytes that text handling would damage.
var pdf = append([]byte("%PDF-1.7\n\x00\x01\x02\xff\xfe\r\n"), bytes.Repeat([]byte{0, 0xff, 0x80, '\r', '\n'}, 2000)...)

func attachment(url, name, mimeType string) schema.Message {
	return schema.Message{Type: schema.TypeAttachment, Attachment: &schema.Attachment{Type: "file", URL: url, FileName: name, MimeType: mimeType}}
}

func TestSendAttachmentIsAttached(t *testing.T) {
	files := fileServer(t, "application/pdf", pdf)
	e := sendNew(t, fetcher(1<<20))
	if _, err := e.send(t, context.Background(), sendContact, attachment(files.URL+"/files/x", "invoice.pdf", "application/pdf"), "m4"); err != nil {
		t.Fatal(err)
	}
	got := sendOnly(t, e.fake)
	if len(got.Attachments) != 1 {
		t.Fatalf("attachments = %d, want 1", len(got.Attachments))
	}
	a := got.Attachments[0]
	if a.Field != "attachment" || a.FileName != "invoice.pdf" || !bytes.Equal(a.Data, pdf) {
		t.Fatalf("attachment = %s %q %d bytes (equal: %v)", a.Field, a.FileName, len(a.Data), bytes.Equal(a.Data, pdf))
	}
	if !strings.Contains(got.Get("text"), "invoice.pdf") {
		t.Errorf("text does not name the file: %q", got.Get("text"))
	}
}

func TestSendAttachmentNameFromMimeType(t *testing.T) {
	files := fileServer(t, "application/octet-stream", []byte("\xff\xd8\xff\xe0 not really a jpeg"))
	e := sendNew(t, fetcher(1<<20))
	if _, err := e.send(t, context.Background(), sendContact, attachment(files.URL+"/files/", "", "image/jpeg"), "m5"); err != nil {
		t.Fatal(err)
	}
	if a := sendOnly(t, e.fake).Attachments; len(a) != 1 || a[0].FileName != "attachment.jpg" {
		t.Fatalf("attachments = %+v, want one named attachment.jpg", a)
	}
}

func TestSendAttachmentFallsBackToLink(t *testing.T) {
	files := fileServer(t, "application/pdf", pdf)
	cases := []struct {
		name string
		max  int64
		url  string
	}{
		{"too large", 100, files.URL + "/files/big.pdf"},
		{"not found", 1 << 20, files.URL + "/missing.pdf"},
		{"unreachable", 1 << 20, "http://" + closedAddr(t) + "/files/x.pdf"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := sendNew(t, fetcher(c.max))
			sent, err := e.send(t, context.Background(), sendContact, attachment(c.url, "report.pdf", "application/pdf"), "m6")
			if err != nil {
				t.Fatalf("a link fallback must not fail the send: %v", err)
			}
			if len(sent.ProviderIDs) != 1 {
				t.Fatalf("ProviderIDs = %v", sent.ProviderIDs)
			}
			got := sendOnly(t, e.fake)
			if len(got.Attachments) != 0 {
				t.Fatalf("unexpected attachment %+v", got.Attachments)
			}
			if want := "report.pdf: " + c.url; got.Get("text") != want {
				t.Errorf("text = %q, want %q", got.Get("text"), want)
			}
			if !strings.Contains(got.Get("html"), `<a href="`+c.url+`">`) {
				t.Errorf("html lacks the link: %s", got.Get("html"))
			}
		})
	}
}

// A file of media.max_bytes (20 MiB) is over Mailgun's 25 MB once base64
// encoded; one that fits once encoded is attached.
func TestMediaMaxBytesFileDoesNotFitMailgun(t *testing.T) {
	e := sendNew(t, nil)
	withFile := func(n int) body {
		return body{Text: "Attached: a.bin", HTML: htmlDoc("<p>Attached: a.bin</p>"), Files: []file{{Name: "a.bin", Data: make([]byte, n)}}}
	}
	if e.p.fitsMailgun(withFile(20 << 20)) {
		t.Error("a 20 MiB file fits Mailgun's 25 MB")
	}
	if !e.p.fitsMailgun(withFile(18_000_000)) {
		t.Error("an 18 MB file (24.6 MB encoded) does not fit")
	}
	if e.p.fitsMailgun(withFile(18_500_000)) {
		t.Error("an 18.5 MB file (25.3 MB encoded) fits")
	}
}

// A file that would make the e-mail larger than Mailgun accepts is linked,
// as one too large to download is: the e-mail goes out, the file reachable.
func TestSendAttachmentTooLargeForMailgunIsLinked(t *testing.T) {
	files := fileServer(t, "application/pdf", pdf)
	e := sendNew(t, fetcher(1<<20))
	e.p.maxMessage = messageOverhead + len(pdf) // under its encoded size
	url := files.URL + "/files/x.pdf"
	m := attachment(url, "invoice.pdf", "application/pdf")
	m.Attachment.Description = "Your invoice"
	if _, err := e.send(t, context.Background(), sendContact, m, "m9"); err != nil {
		t.Fatalf("a link fallback must not fail the send: %v", err)
	}
	got := sendOnly(t, e.fake)
	if len(got.Attachments) != 0 || got.Get("text") != "Your invoice\ninvoice.pdf: "+url ||
		!strings.Contains(got.Get("html"), `<a href="`+url+`">`) {
		t.Fatalf("attachments %d, text %q, html %q: want the file linked", len(got.Attachments), got.Get("text"), got.Get("html"))
	}
	if !strings.Contains(e.logs.String(), "larger than Mailgun accepts") {
		t.Errorf("the log does not say why: %s", e.logs.String())
	}

	e.p.maxMessage = maxMessageBytes
	if _, err := e.send(t, context.Background(), sendContact, m, "m10"); err != nil {
		t.Fatal(err)
	}
	if sent := e.fake.Sent(); len(sent) != 2 || len(sent[1].Attachments) != 1 {
		t.Fatalf("within the limit the file is not attached: %+v", sent)
	}
}

// closedAddr is a loopback address nobody listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

func TestSendErrorMapping(t *testing.T) {
	cases := []struct {
		name     string
		script   []fakemailgun.Behaviour
		key      string
		kind     providers.ErrorKind
		reason   string // substring
		attempts int    // sends the fake saw
		sent     int    // e-mails that may have gone out
	}{
		{"400 is permanent with Mailgun's message", []fakemailgun.Behaviour{fakemailgun.Error(400, "'h:Reply-To' parameter is not a valid address. please check documentation")},
			sendKey, providers.Permanent, "Mailgun refused the e-mail: 'h:Reply-To' parameter is not a valid address", 1, 0},
		{"400 for the recipient names the address", []fakemailgun.Behaviour{fakemailgun.Error(400, "to parameter is not a valid address. please check documentation")},
			sendKey, providers.Permanent, sendTo + " is not a valid e-mail address", 1, 0},
		{"401 is config", nil, "key-wrong", providers.Config, "api_key", 0, 0},
		{"403 is config, with Mailgun's words", []fakemailgun.Behaviour{fakemailgun.Error(403, "Domain mg.example.com is not allowed to send: it is disabled")},
			sendKey, providers.Config, "(check api_key, domain and api_url): Domain mg.example.com is not allowed to send: it is disabled", 1, 0},
		{"408 may come from a proxy that forwarded it: reconciled, then retryable", []fakemailgun.Behaviour{fakemailgun.Error(408, "Request Timeout")},
			sendKey, providers.Unreachable, "Mailgun does not show the e-mail yet", 1, 0},
		{"413 names the attachments", []fakemailgun.Behaviour{fakemailgun.Error(413, "request entity too large")},
			sendKey, providers.Permanent, "the e-mail with its attachments is larger than Mailgun accepts (25 MB)", 1, 0},
		{"429 is retried, then throttled", []fakemailgun.Behaviour{fakemailgun.TooManyRequests(""), fakemailgun.TooManyRequests(""), fakemailgun.TooManyRequests("")},
			sendKey, providers.Throttled, "rate limiting", 3, 0},
		// A 5xx is reconciled (not re-sent blindly): the fake took nothing,
		// so the events API has no accepted event and the job may retry.
		{"500 is not retried, reconciled, then retryable", []fakemailgun.Behaviour{fakemailgun.Error(500, "Internal Server Error")},
			sendKey, providers.Unreachable, "Mailgun does not show the e-mail yet", 1, 0},
		{"503 is not retried, reconciled, then retryable", []fakemailgun.Behaviour{fakemailgun.Error(503, "Service Unavailable")},
			sendKey, providers.Unreachable, "Mailgun does not show the e-mail yet", 1, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := sendNew(t, nil, func(cfg *Config) { cfg.APIKey = providers.Secret(c.key) })
			e.fake.Script(c.script...)
			_, err := e.send(t, context.Background(), sendContact, text("hello"), "m7")
			se := sendKind(t, err)
			if se.Kind != c.kind || !strings.Contains(err.Error(), c.reason) {
				t.Errorf("got %v %q, want %v containing %q", se.Kind, err.Error(), c.kind, c.reason)
			}
			if strings.Contains(err.Error(), c.key) {
				t.Errorf("the API key is in the error: %v", err)
			}
			if n := len(e.fake.Attempts()); n != c.attempts {
				t.Errorf("fake saw %d sends, want %d", n, c.attempts)
			}
			if n := len(e.fake.Sent()); n != c.sent {
				t.Errorf("fake sent %d e-mails, want %d", n, c.sent)
			}
		})
	}
}

func TestSendDialFailureIsUnreachable(t *testing.T) {
	e := sendNew(t, nil, func(cfg *Config) { cfg.APIURL = "http://" + closedAddr(t) })
	_, err := e.send(t, context.Background(), sendContact, text("hello"), "m8")
	if se := sendKind(t, err); se.Kind != providers.Unreachable {
		t.Fatalf("kind = %v (%v), want unreachable", se.Kind, err)
	}
}

func TestSendTimeoutAfterWriteIsLookedUpBeforeAnyRetry(t *testing.T) {
	var seen, looked atomic.Int32
	stall := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet { // the events API, asked after the timeout: down
			looked.Add(1)
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		seen.Add(1)
		_, _ = io.Copy(io.Discard, r.Body) // the whole e-mail arrived
		<-r.Context().Done()
	}))
	t.Cleanup(stall.Close)
	e := sendNew(t, nil, func(cfg *Config) { cfg.APIURL = stall.URL })
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := e.send(t, ctx, sendContact, text("hello"), "m9")
	// The events API is down too: retried later, looked up before that.
	if se := sendKind(t, err); se.Kind != providers.Unreachable || !strings.Contains(err.Error(), "looked up again") {
		t.Fatalf("kind = %v (%v), want a retry that looks first", se.Kind, err)
	}
	stall.Close() // waits for the handler
	if n := seen.Load(); n != 1 {
		t.Fatalf("server saw %d sends, want 1 (a timeout must not be retried)", n)
	}
	if looked.Load() == 0 {
		t.Fatal("the events API was not asked: reconciliation must outlive the caller's context")
	}
}

// A 429 is retried with the same bytes: the attachment arrives intact on
// the retry, not empty.
func TestSendRetryAfter429ResendsAttachmentIntact(t *testing.T) {
	files := fileServer(t, "application/pdf", pdf)
	e := sendNew(t, fetcher(1<<20))
	e.fake.Script(fakemailgun.TooManyRequests(""))
	if _, err := e.send(t, context.Background(), sendContact, attachment(files.URL+"/files/x", "invoice.pdf", "application/pdf"), "m10"); err != nil {
		t.Fatal(err)
	}
	attempts := e.fake.Attempts()
	if len(attempts) != 2 || attempts[0].Status != 429 || attempts[1].Status != 200 {
		t.Fatalf("attempts = %d, want a 429 then a 200", len(attempts))
	}
	for i, a := range attempts {
		if len(a.Attachments) != 1 || !bytes.Equal(a.Attachments[0].Data, pdf) {
			t.Fatalf("attempt %d: attachment missing or damaged", i)
		}
	}
	sendOnly(t, e.fake)
}

// A job-level retry after Throttled calls Send again: it builds a fresh
// message, so the attachment is not sent empty the second time.
func TestSendAgainAfterThrottledBuildsFreshMessage(t *testing.T) {
	files := fileServer(t, "application/pdf", pdf)
	e := sendNew(t, fetcher(1<<20))
	e.fake.Script(fakemailgun.TooManyRequests(""), fakemailgun.TooManyRequests(""), fakemailgun.TooManyRequests(""))
	m := attachment(files.URL+"/files/x", "invoice.pdf", "application/pdf")
	_, err := e.send(t, context.Background(), sendContact, m, "m11")
	if se := sendKind(t, err); se.Kind != providers.Throttled {
		t.Fatalf("first send: %v, want throttled", err)
	}
	if _, err := e.send(t, context.Background(), sendContact, m, "m11"); err != nil {
		t.Fatal(err)
	}
	got := sendOnly(t, e.fake)
	if len(got.Attachments) != 1 || !bytes.Equal(got.Attachments[0].Data, pdf) {
		t.Fatal("the second send's attachment is missing or damaged")
	}
	if got.Get("h:Message-Id") != "<m11@"+sendDomain+">" {
		t.Fatalf("Message-Id = %q", got.Get("h:Message-Id"))
	}
}

func TestMessageID(t *testing.T) {
	cases := map[string]string{
		"m1":               "m1@d.com",
		"abc.def_1-2+3=4":  "abc.def_1-2+3=4@d.com",
		"has space":        "b64.aGFzIHNwYWNl@d.com",
		"a..b":             "b64.YS4uYg@d.com",
		".a":               "b64.LmE@d.com",
		"<x@y>":            "b64.PHhAeT4@d.com",
		"b64.aGFzIHNwYWNl": "b64.YjY0LmFHRnpJSE53WVdObA@d.com",
		"ünï":              "b64.w7xuw68@d.com",
	}
	for in, want := range cases {
		if got := messageID(in, "d.com"); got != want {
			t.Errorf("messageID(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestHTMLText(t *testing.T) {
	cases := map[string]string{
		"a\nb":                     "a<br>\nb",
		"a\r\nb":                   "a<br>\nb",
		"<script>":                 "&lt;script&gt;",
		"(see https://x.io/a_(b))": `(see <a href="https://x.io/a_(b)">https://x.io/a_(b)</a>)`,
		"at https://x.io/p, then":  `at <a href="https://x.io/p">https://x.io/p</a>, then`,
		`"https://x.io/q?a=1&b=2"`: `&#34;<a href="https://x.io/q?a=1&amp;b=2">https://x.io/q?a=1&amp;b=2</a>&#34;`,
		"javascript:alert(1)":      "javascript:alert(1)",
		"ftp://x.io":               "ftp://x.io",
	}
	for in, want := range cases {
		if got := htmlText(in); got != want {
			t.Errorf("htmlText(%q) = %q, want %q", in, got, want)
		}
	}
}
