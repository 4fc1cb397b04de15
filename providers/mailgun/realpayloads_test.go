package mailgun

// Payload shapes Mailgun really sends, from captures and samples published
// by Mailgun and by projects that parse its posts. testdata/mailgun/SOURCES.md
// says where each fixture comes from and what was changed.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bonychat/bonychat-adapter/internal/testkit"
	"github.com/bonychat/bonychat-adapter/providers"
	"github.com/bonychat/bonychat-adapter/schema"
)

// rpInbound runs r through the inbound handler, expects 200 and one ingest.
func rpInbound(t *testing.T, env *hdEnv, r *http.Request) providers.Inbound {
	t.Helper()
	hdCheckOK(t, hdInbound(env, r))
	if len(env.ingest.got) != 1 {
		t.Fatalf("ingested %d times, want 1", len(env.ingest.got))
	}
	in := env.ingest.got[0]
	inCheckValid(t, in)
	return in
}

// rpTexts are the text events' texts, rpFiles the attachment events' file
// names and types.
func rpTexts(in providers.Inbound) []string {
	var out []string
	for _, e := range in.Events {
		if e.Message.Type == schema.TypeText {
			out = append(out, hdText(e.Message))
		}
	}
	return out
}

func rpFiles(in providers.Inbound) []string {
	var out []string
	for _, e := range in.Events {
		if a := e.Message.Attachment; a != nil {
			out = append(out, a.FileName+" "+a.MimeType+" "+a.Type)
		}
	}
	return out
}

func rpContact(t *testing.T, env *hdEnv, addr string) string {
	t.Helper()
	id, err := EncodeContactID(context.Background(), env.rec, addr)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// A parsed forward as captured on the wire: every header also posted as its
// own field (Received four times), ", "-separated JSON, attachment parts
// with a Content-Length header.
func TestRealParsedForward(t *testing.T) {
	env := hdSetup(t)
	in := rpInbound(t, env, hdSigned(t, "forward-real-parsed.txt", hdFresh(time.Minute), hdToken))
	if in.DedupeKey != "E102015D-F580-4316-81FA-7324838A3AE8@example.test" || in.ContactID != rpContact(t, env, "jane@example.test") {
		t.Errorf("DedupeKey %q ContactID %q", in.DedupeKey, in.ContactID)
	}
	if c := in.Contact; c.FirstName != "Jane" || c.LastName != "Doe" {
		t.Errorf("contact %+v", c)
	}
	want := []string{"Subject: Test\n\nbold text\n\n\n\nsome more bold text\n\n\n\nsome italic text"}
	if got := rpTexts(in); !slices.Equal(got, want) {
		t.Errorf("texts %q, want stripped-text %q", got, want)
	}
	if got := rpFiles(in); !slices.Equal(got, []string{"foo.txt text/plain file", "bar.txt text/plain file"}) {
		t.Errorf("attachments %q", got)
	}
	if len(env.media.Saved()) != 2 || string(env.media.Saved()[0].Body) != "Lorem ipsum dolor sit amet, consectetur adipiscing elit.\r\n" {
		t.Errorf("saved %+v", env.media.Saved())
	}
}

// forward() to a URL ending in "mime": the message comes only as body-mime
// (Apple Mail, nested multiparts, two attachments), with no body-plain.
func TestRealRawMIMEForward(t *testing.T) {
	env := hdSetup(t)
	in := rpInbound(t, env, hdSigned(t, "forward-real-mime.form", hdFresh(time.Minute), hdToken))
	if in.DedupeKey != "99CF7D8C-FCD4-443F-8E04-69C4E470D18F@example.test" {
		t.Errorf("DedupeKey %q", in.DedupeKey)
	}
	texts := rpTexts(in)
	want := "Subject: Test\n\nbold text\n\n\n\nsome more bold text\n\n\n\nsome italic text\n\n> multiline\n> quoted\n> text\n\n\n--\nSignature block"
	if len(texts) != 1 || texts[0] != want {
		t.Errorf("texts %q, want the text/plain part %q", texts, want)
	}
	if got := rpFiles(in); !slices.Equal(got, []string{"foo.txt text/plain file", "bar.txt text/plain file"}) {
		t.Errorf("attachments %q", got)
	}
	if len(env.media.Saved()) != 2 || string(env.media.Saved()[1].Body) != "Nam accumsan euismod eros et rhoncus.\r\n" {
		t.Errorf("saved %+v", env.media.Saved())
	}
}

// body-mime alone, without message-headers or any header field: From,
// Subject and Message-ID come from the MIME; the text is quoted-printable.
func TestAnymailRawMIMEForward(t *testing.T) {
	env := hdSetup(t)
	in := rpInbound(t, env, hdSigned(t, "forward-anymail-mime.form", hdFresh(time.Minute), hdToken))
	if in.ContactID != rpContact(t, env, "test@example.test") || in.DedupeKey != "CAEPk3RKEx@mail.example.test" {
		t.Errorf("ContactID %q DedupeKey %q", in.ContactID, in.DedupeKey)
	}
	if got := rpTexts(in); !slices.Equal(got, []string{"Subject: Raw MIME test\n\nIt's a body…"}) {
		t.Errorf("texts %q", got)
	}
}

// body-mime as a file part of a multipart body, as some receivers report it.
func TestRawMIMEAsFilePart(t *testing.T) {
	env := hdSetup(t)
	form, err := url.ParseQuery(string(inFile(t, "forward-anymail-mime.form")))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for _, k := range []string{"recipient", "sender", "timestamp", "token", "signature"} {
		_ = w.WriteField(k, form.Get(k))
	}
	fw, _ := w.CreateFormFile("body-mime", "message.mime")
	_, _ = io.WriteString(fw, form.Get("body-mime"))
	_ = w.Close()
	ts := hdFresh(time.Minute)
	in := rpInbound(t, env, hdForwardBody(t, buf.Bytes(), w.FormDataContentType(), ts, hdToken, hdSign(inSigningKey, ts, hdToken)))
	if got := rpTexts(in); !slices.Equal(got, []string{"Subject: Raw MIME test\n\nIt's a body…"}) {
		t.Errorf("texts %q", got)
	}
}

// The Mailgun route tester's sample: an inline image named by
// content-id-map, a file, and the thread headers as fields of their own.
func TestRouteTesterForward(t *testing.T) {
	f := inParse(t, "forward-route-tester.txt")
	if f.Text != "Hi Alice,\n\nThis is Bob.\n\nI also attached a file." || f.MessageID != "517ACC75.5010709@sandbox.example.test" ||
		f.InReplyTo != "517AC78B.5060404@sandbox.example.test" || !slices.Equal(f.References, []string{"517AC78B.5060404@sandbox.example.test"}) {
		t.Errorf("parsed %+v", f)
	}
	var got []string
	for _, a := range f.Attachments {
		got = append(got, a.FileName+" "+a.ContentType+" "+a.ContentID)
	}
	if want := []string{"inline.png image/png part1.04060802.06030207@sandbox.example.test", "file.txt text/plain "}; !slices.Equal(got, want) {
		t.Errorf("attachments %q, want %q", got, want)
	}
	env := hdSetup(t)
	in := rpInbound(t, env, hdSigned(t, "forward-route-tester.txt", hdFresh(time.Minute), hdToken))
	if files := rpFiles(in); !slices.Equal(files, []string{"inline.png image/png image", "file.txt text/plain file"}) {
		t.Errorf("attachment events %q", files)
	}
}

// Mailgun has posted content-id-maps with repeated keys: every attachment a
// key names keeps its content id.
func TestUnusualContentIDMap(t *testing.T) {
	f := inParse(t, "forward-unusual-cid-map.txt")
	var cids []string
	for _, a := range f.Attachments {
		cids = append(cids, a.FileName+"="+a.ContentID)
	}
	if want := []string{"att1.png=", "att2.png=", "att3.png=abc", "att4.png=abc"}; !slices.Equal(cids, want) {
		t.Errorf("content ids %q, want %q", cids, want)
	}
}

// message-headers with a value that is not a string (Content-Type as
// [type, {params}]) must not lose the mail.
func TestLegacyHeaderValues(t *testing.T) {
	f := inParse(t, "forward-legacy-headers.form")
	if f.MessageID != "20160421175529.19495.89030.B3AE3728@example.test" || f.Text != "Testing the headers." {
		t.Errorf("parsed %+v", f)
	}
	env := hdSetup(t)
	rpInbound(t, env, hdSigned(t, "forward-legacy-headers.form", hdFresh(time.Minute), hdToken))
}

// Unreadable side fields (message-headers, content-id-map, attachments)
// are logged and skipped: the mail itself is delivered.
func TestUnreadableSideFieldsStillDeliver(t *testing.T) {
	env := hdSetup(t)
	log, buf := testkit.NewLogger()
	env.p.deps.Log = log
	form := url.Values{"from": {"a@example.test"}, "subject": {"Hi"}, "body-plain": {"Hello"},
		"Message-Id": {"<side@example.test>"}, "message-headers": {`{"Message-Id": "<x@y>"}`},
		"attachments": {`"not a list"`}, "content-id-map": {"not json"}}
	ts := hdFresh(time.Minute)
	r := hdForwardBody(t, []byte(form.Encode()), "application/x-www-form-urlencoded", ts, hdToken, hdSign(inSigningKey, ts, hdToken))
	in := rpInbound(t, env, r)
	want := []string{"Subject: Hi\n\nHello", "(an attachment of this e-mail is missing: the list of attachments Mailgun stored could not be read)"}
	if in.DedupeKey != "side@example.test" || !slices.Equal(rpTexts(in), want) {
		t.Errorf("DedupeKey %q texts %q, want %q", in.DedupeKey, rpTexts(in), want)
	}
	for _, field := range []string{"message-headers", "content-id-map", "attachments"} {
		if !strings.Contains(buf.String(), field) {
			t.Errorf("log does not name %s: %s", field, buf)
		}
	}
}

// rpStorage is a stand-in for Mailgun's message storage: it serves the
// store() fixture's attachments to the API key, and counts requests.
type rpStorage struct {
	mu       sync.Mutex
	requests int
	srv      *httptest.Server
	down     atomic.Bool // answer 503 to everything
}

func newRPStorage(t *testing.T) *rpStorage {
	s := &rpStorage{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests++
		s.mu.Unlock()
		if user, pass, ok := r.BasicAuth(); !ok || user != "api" || pass != "key-1" {
			http.Error(w, "Forbidden", http.StatusUnauthorized)
			return
		}
		if s.down.Load() {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		switch r.URL.Path {
		case "/v3/domains/mg.example.test/messages/MESSAGE_KEY/attachments/0":
			_, _ = io.WriteString(w, "%PDF-1.4 stored")
		case "/v3/domains/mg.example.test/messages/MESSAGE_KEY/attachments/1":
			_, _ = w.Write(rpPNG(t))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *rpStorage) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// rpPNG is the inline image of forward-multipart.txt.
func rpPNG(t *testing.T) []byte {
	f := inParse(t, "forward-multipart.txt")
	return f.Attachments[2].Body
}

// rpStoreNotify is the store() fixture with its storage URLs moved to base,
// signed, for a provider whose API (and so storage) is at apiURL.
func rpStoreNotify(t *testing.T, env *hdEnv, apiURL, base string) *http.Request {
	return rpStoreNotifyAged(t, env, apiURL, base, time.Minute)
}

// rpStoreNotifyAged is rpStoreNotify first posted age ago (Mailgun's
// retries keep the first timestamp).
func rpStoreNotifyAged(t *testing.T, env *hdEnv, apiURL, base string, age time.Duration) *http.Request {
	env.p.cfg.APIURL = apiURL
	env.p.sender = newSender(env.p.cfg, testkit.NewLocalOnlyTransport())
	raw := bytes.ReplaceAll(inFile(t, "forward-store-notify.txt"), []byte("https://storage.mailgun.net"), []byte(base))
	ts := hdFresh(age)
	ctype := strings.TrimSpace(string(inFile(t, "forward-store-notify.ct")))
	return hdForwardBody(t, raw, ctype, ts, hdToken, hdSign(inSigningKey, ts, hdToken))
}

// A store(notify=…) notification lists its attachments as JSON with URLs:
// they are fetched from Mailgun's storage with the API key.
func TestStoreNotifyFetchesAttachments(t *testing.T) {
	// Parsing fetches nothing; content-id-map names the inline one by URL.
	f := inParse(t, "forward-store-notify.txt")
	if len(f.Attachments) != 2 || f.Attachments[0].Body != nil || f.Attachments[1].ContentID != "ii_store01" ||
		!strings.HasSuffix(f.Attachments[1].URL, "/MESSAGE_KEY/attachments/1") {
		t.Errorf("parsed attachments %+v", f.Attachments)
	}
	env := hdSetup(t)
	storage := newRPStorage(t)
	in := rpInbound(t, env, rpStoreNotify(t, env, storage.srv.URL, storage.srv.URL))
	if got := rpTexts(in); !slices.Equal(got, []string{"Subject: Scan attached\n\nTest body plain"}) {
		t.Errorf("texts %q", got)
	}
	if got := rpFiles(in); !slices.Equal(got, []string{"attachment.pdf application/pdf file", "logo.png image/png image"}) {
		t.Errorf("attachments %q", got)
	}
	if len(env.media.Saved()) != 2 || string(env.media.Saved()[0].Body) != "%PDF-1.4 stored" || !bytes.Equal(env.media.Saved()[1].Body, rpPNG(t)) {
		t.Errorf("saved %+v", env.media.Saved())
	}
	if storage.count() != 2 {
		t.Errorf("%d storage requests, want 2", storage.count())
	}
}

// Mailgun's retry of a notification already taken does not fetch its
// attachments again, nor reach the ingester: its dedupe would drop the
// events anyway.
func TestStoreNotifyRedeliveryFetchesNothing(t *testing.T) {
	env := hdSetup(t)
	storage := newRPStorage(t)
	rpInbound(t, env, rpStoreNotify(t, env, storage.srv.URL, storage.srv.URL))
	hdCheckOK(t, hdInbound(env, rpStoreNotify(t, env, storage.srv.URL, storage.srv.URL)))
	if storage.count() != 2 {
		t.Errorf("%d storage requests, want 2: the redelivery fetched the attachments again", storage.count())
	}
	if len(env.ingest.got) != 1 {
		t.Errorf("the redelivery was ingested again: %d ingests, want 1", len(env.ingest.got))
	}
}

// Storage that fails for a passing reason makes a young notification fail
// with 503, so Mailgun posts it again while it keeps the mail: nothing is
// taken, and the retry delivers the attachment.
func TestStoreNotifyRetriedWhileStorageIsDown(t *testing.T) {
	env := hdSetup(t)
	storage := newRPStorage(t)
	storage.down.Store(true)
	w := hdInbound(env, rpStoreNotify(t, env, storage.srv.URL, storage.srv.URL))
	if w.Code != http.StatusServiceUnavailable || len(env.ingest.got) != 0 {
		t.Fatalf("status %d, %d ingested: want 503 and nothing taken", w.Code, len(env.ingest.got))
	}
	storage.down.Store(false)
	in := rpInbound(t, env, rpStoreNotify(t, env, storage.srv.URL, storage.srv.URL))
	if got := rpFiles(in); len(got) != 2 {
		t.Fatalf("the retry delivered %q, want both attachments", got)
	}
}

// An attachment that cannot be fetched (storage unreachable, or a URL that
// is not Mailgun's) does not hold the mail back: the text is delivered and
// the agent is told which attachment is missing. The API key is never sent
// to a host that is not Mailgun's.
func TestStoreNotifyUnfetchableAttachments(t *testing.T) {
	for name, setup := range map[string]func(t *testing.T, env *hdEnv, other *rpStorage) *http.Request{
		// Real Mailgun URLs over a loopback-only transport: the fetch fails,
		// and Mailgun has retried long enough (the signature's accepted
		// age is an hour here: half of it).
		"storage unreachable for half an hour": func(t *testing.T, env *hdEnv, _ *rpStorage) *http.Request {
			return rpStoreNotifyAged(t, env, DefaultAPIURL, "https://storage.mailgun.net", 31*time.Minute)
		},
		"not a Mailgun host": func(t *testing.T, env *hdEnv, other *rpStorage) *http.Request {
			api := newRPStorage(t)
			return rpStoreNotify(t, env, api.srv.URL, other.srv.URL)
		},
	} {
		t.Run(name, func(t *testing.T) {
			env := hdSetup(t)
			log, buf := testkit.NewLogger()
			env.p.deps.Log = log
			other := newRPStorage(t)
			in := rpInbound(t, env, setup(t, env, other))
			texts := rpTexts(in)
			if len(texts) != 3 || texts[0] != "Subject: Scan attached\n\nTest body plain" ||
				!strings.Contains(texts[1], `"attachment.pdf"`) || !strings.Contains(texts[2], `"logo.png"`) {
				t.Errorf("texts %q: want the text and a note per missing attachment", texts)
			}
			if len(env.media.Saved()) != 0 || other.count() != 0 {
				t.Errorf("saved %d, foreign host asked %d times", len(env.media.Saved()), other.count())
			}
			if logs := buf.String(); !strings.Contains(logs, "attachment.pdf") || strings.Contains(logs, "key-1") {
				t.Errorf("the log must name the attachment and never the API key: %s", logs)
			}
		})
	}
}

// A parsed forward's text fields can together exceed what Go's multipart
// reader keeps for non-file fields by default (maxMemory + 10 MB): a mail
// within Mailgun's 25 MB must not be refused (413 is retried, never taken).
func TestLargeTextFieldsAreTaken(t *testing.T) {
	env := hdSetup(t)
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	ts := hdFresh(time.Minute)
	big := strings.Repeat("<p>newsletter</p>\n", 10<<20/18)
	for _, kv := range [][2]string{{"from", "big@example.test"}, {"subject", "Big"}, {"stripped-text", "short reply"},
		{"body-html", big}, {"stripped-html", big}, {"timestamp", ts}, {"token", hdToken},
		{"signature", hdSign(inSigningKey, ts, hdToken)}} {
		_ = w.WriteField(kv[0], kv[1])
	}
	fw, _ := w.CreateFormFile("attachment-1", "a.txt")
	_, _ = io.WriteString(fw, "attached")
	_ = w.Close()
	r := httptest.NewRequest(http.MethodPost, "/mailgun/mail01/inbound", &buf)
	r.Header.Set("Content-Type", w.FormDataContentType())
	in := rpInbound(t, env, r)
	if got := rpTexts(in); !slices.Equal(got, []string{"Subject: Big\n\nshort reply"}) || len(rpFiles(in)) != 1 {
		t.Errorf("texts %q files %q", got, rpFiles(in))
	}
}

// rpCutReader gives body, then fails with err as a dropped connection does.
type rpCutReader struct {
	r   io.Reader
	err error
}

func (c rpCutReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err == io.EOF {
		return n, c.err
	}
	return n, err
}

// A forward cut off in transit could be read on Mailgun's retry: 5xx, not
// 406 (which would drop the mail for good).
func TestInterruptedForwardIsRetried(t *testing.T) {
	reset := errors.New("read tcp 127.0.0.1:8080->127.0.0.1:50000: read: connection reset by peer")
	for _, tc := range []struct {
		file string
		err  error
	}{
		{"forward-multipart.txt", io.ErrUnexpectedEOF}, {"forward-multipart.txt", reset},
		{"forward-urlencoded.form", io.ErrUnexpectedEOF}, {"forward-urlencoded.form", reset},
	} {
		t.Run(tc.file+"/"+tc.err.Error(), func(t *testing.T) {
			env := hdSetup(t)
			full := hdSigned(t, tc.file, hdFresh(time.Minute), hdToken)
			body, _ := io.ReadAll(full.Body)
			r := httptest.NewRequest(http.MethodPost, "/mailgun/mail01/inbound", rpCutReader{bytes.NewReader(body[:len(body)/2]), tc.err})
			r.Header.Set("Content-Type", full.Header.Get("Content-Type"))
			// Served directly: the contract check would read the body first.
			w := httptest.NewRecorder()
			env.p.inboundHandler(maxForwardBytes).ServeHTTP(w, r)
			hdCheckError(t, w, http.StatusServiceUnavailable)
			if len(env.ingest.got) != 0 {
				t.Errorf("ingested %d times", len(env.ingest.got))
			}
		})
	}
}

// An attachment-N part without a file name is a plain form value to Go's
// multipart reader: it is still an attachment.
func TestNamelessAttachmentPart(t *testing.T) {
	env := hdSetup(t)
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	ts := hdFresh(time.Minute)
	for _, kv := range [][2]string{{"from", "cam@example.test"}, {"subject", "Photo"}, {"body-plain", "See the photo."},
		{"attachment-count", "1"}, {"timestamp", ts}, {"token", hdToken}, {"signature", hdSign(inSigningKey, ts, hdToken)}} {
		_ = w.WriteField(kv[0], kv[1])
	}
	pw, _ := w.CreatePart(map[string][]string{
		"Content-Disposition": {`form-data; name="attachment-1"; filename=""`}, "Content-Type": {"image/png"}})
	_, _ = pw.Write(rpPNG(t))
	_ = w.Close()
	r := httptest.NewRequest(http.MethodPost, "/mailgun/mail01/inbound", &buf)
	r.Header.Set("Content-Type", w.FormDataContentType())
	in := rpInbound(t, env, r)
	if got := rpFiles(in); !slices.Equal(got, []string{"attachment-1.png image/png image"}) {
		t.Errorf("attachments %q", got)
	}
	if len(env.media.Saved()) != 1 || !bytes.Equal(env.media.Saved()[0].Body, rpPNG(t)) {
		t.Errorf("saved %+v", env.media.Saved())
	}
}

// attachment-count announces more attachments than arrived: each missing
// one is a note, so the agent knows.
func TestAnnouncedAttachmentsThatDidNotArrive(t *testing.T) {
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for _, kv := range [][2]string{{"from", "a@example.test"}, {"body-plain", "Two files."}, {"attachment-count", "2"}} {
		_ = w.WriteField(kv[0], kv[1])
	}
	fw, _ := w.CreateFormFile("attachment-1", "one.txt")
	_, _ = io.WriteString(fw, "one")
	_ = w.Close()
	r := httptest.NewRequest(http.MethodPost, "/inbound", &buf)
	r.Header.Set("Content-Type", w.FormDataContentType())
	f, err := ParseForward(r, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Attachments) != 2 || f.Attachments[0].FileName != "one.txt" || f.Attachments[1].missing() == "" || len(f.Problems) != 1 {
		t.Errorf("attachments %+v problems %q", f.Attachments, f.Problems)
	}
}

// attachment-count is the sender's word (the signature does not cover the
// body): however large, the attachments that did not arrive are one
// placeholder and one note to the agent, never a note (or an allocation)
// each.
func TestAnAnnouncedAttachmentCountSizesNothing(t *testing.T) {
	f := inParseForm(t, url.Values{"from": {"a@example.test"}, "body-plain": {"hi"}, "attachment-count": {"1000000000"}})
	if len(f.Attachments) != 1 || f.Attachments[0].Missing != 1000000000 {
		t.Fatalf("%d placeholders (first %+v), want one standing for all", len(f.Attachments), f.Attachments[0])
	}
	note, err := hdSetup(t).p.inboundAttachment(context.Background(), f.Attachments[0], 1)
	if err != nil || note.Text == nil || !strings.Contains(*note.Text, "1000000000 attachments of this e-mail are missing") {
		t.Fatalf("note %+v, %v", note, err)
	}
}

// Header values in message-headers (and body-mime) are as the mail has
// them: RFC 2047 encoded words, also in charsets net/mail does not know.
func TestEncodedWordHeaders(t *testing.T) {
	headers := `[["From", "=?windows-1252?Q?J=F6rg_M=FCller?= <jm@example.test>"],` +
		`["Subject", "=?UTF-8?Q?Rechnung_f=C3=BCr_M=C3=A4rz?="], ["Message-Id", "<enc-1@example.test>"]]`
	f := inParseForm(t, url.Values{"message-headers": {headers}, "body-plain": {"Hallo"}})
	if f.Subject != "Rechnung für März" {
		t.Errorf("Subject %q", f.Subject)
	}
	p, _, _ := inProvider(t)
	in := inEvents(t, p, f, true)
	if c := in.Contact; c.FirstName != "Jörg" || c.LastName != "Müller" || c.Email != "jm@example.test" {
		t.Errorf("contact %+v", c)
	}
	// Mailgun's own subject field, should it carry encoded words, too.
	f = inParseForm(t, url.Values{"from": {"a@example.test"}, "subject": {"=?ISO-8859-1?Q?Gr=FC=DFe?="}})
	if f.Subject != "Grüße" {
		t.Errorf("Subject %q", f.Subject)
	}
}

// A raw MIME text part in Latin-1 or Windows-1252 is delivered as UTF-8.
func TestRawMIMECharsets(t *testing.T) {
	mime := "From: a@example.test\r\nSubject: =?windows-1252?Q?=80_price?=\r\nContent-Type: text/plain; charset=windows-1252\r\n" +
		"Content-Transfer-Encoding: quoted-printable\r\n\r\nPreis: 5 =80, Gr=FC=DFe\r\n"
	f := inParseForm(t, url.Values{"body-mime": {mime}})
	if f.Subject != "€ price" || f.Text != "Preis: 5 €, Grüße" {
		t.Errorf("Subject %q Text %q", f.Subject, f.Text)
	}
}

// Mail from Japan, Russia and China still often comes in their legacy
// charsets, in the body and in encoded-word headers: both arrive as UTF-8.
func TestRawMIMELegacyAsianAndCyrillicCharsets(t *testing.T) {
	for _, tc := range []struct {
		charset, subjectWord, body string
		subject, text              string
	}{
		// ISO-2022-JP (7-bit escapes): "こんにちは" / "日本".
		{"iso-2022-jp", "=?ISO-2022-JP?B?GyRCJDMkcyRLJEEkTxsoQg==?=", "\x1b$BF|K\\\x1b(B",
			"こんにちは", "日本"},
		// Shift_JIS: "テスト".
		{"shift_jis", "=?Shift_JIS?B?g2WDWINn?=", "\x83\x65\x83\x58\x83\x67", "テスト", "テスト"},
		// KOI8-R: "Привет".
		{"koi8-r", "=?KOI8-R?Q?=F0=D2=C9=D7=C5=D4?=", "\xf0\xd2\xc9\xd7\xc5\xd4", "Привет", "Привет"},
		// GB2312 (read as GBK): "中文".
		{"gb2312", "=?GB2312?B?1tDOxA==?=", "\xd6\xd0\xce\xc4", "中文", "中文"},
	} {
		t.Run(tc.charset, func(t *testing.T) {
			mime := "From: a@example.test\r\nSubject: " + tc.subjectWord + "\r\nContent-Type: text/plain; charset=" +
				tc.charset + "\r\n\r\n" + tc.body + "\r\n"
			f := inParseForm(t, url.Values{"body-mime": {mime}})
			if f.Subject != tc.subject || f.Text != tc.text {
				t.Errorf("Subject %q Text %q; want %q, %q", f.Subject, f.Text, tc.subject, tc.text)
			}
		})
	}
}

// A few charset labels WHATWG maps to its "replacement" encoding would turn
// a whole text into one U+FFFD: such a text is kept, and a "UTF8" encoded
// word is decoded as UTF-8.
func TestRawMIMEOddCharsetLabelsKeepTheText(t *testing.T) {
	for _, charset := range []string{"hz-gb-2312", "iso-2022-kr", "iso-2022-cn"} {
		t.Run(charset, func(t *testing.T) {
			mime := "From: a@example.test\r\nSubject: =?" + charset + "?Q?Hello?=\r\nContent-Type: text/plain; charset=" +
				charset + "\r\n\r\nHello world\r\n"
			f := inParseForm(t, url.Values{"body-mime": {mime}})
			if f.Text != "Hello world" || !strings.Contains(f.Subject, "Hello") {
				t.Errorf("Subject %q Text %q: the text was lost", f.Subject, f.Text)
			}
		})
	}
	if got := decodeHeader("=?UTF8?Q?Gr=C3=BC=C3=9Fe?="); got != "Grüße" {
		t.Errorf("a UTF8-labelled encoded word = %q, want Grüße", got)
	}
}

// A body-mime of very many parts is read up to maxMIMEParts, in time
// linear in its size; the rest is a problem, the text read so far is kept.
func TestRawMIMEPartsAreCapped(t *testing.T) {
	var b strings.Builder
	b.WriteString("From: a@example.test\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n")
	for range 50000 {
		b.WriteString("--b\r\n\r\nx\r\n")
	}
	b.WriteString("--b--\r\n")
	m, err := parseRawMIME(b.String())
	if !errors.Is(err, errTooManyParts) || m == nil || m.parts != maxMIMEParts+1 {
		t.Fatalf("err %v, parts read %d: want errTooManyParts after %d", err, m.parts, maxMIMEParts)
	}
	if want := maxMIMEParts - 1; strings.Count(m.text, "x") != want { // the first part is the multipart itself
		t.Errorf("%d text parts kept, want %d", strings.Count(m.text, "x"), want)
	}
}

// The signature is checked before the mail in the form is parsed: an
// unsigned post never costs a walk of its body-mime (here one that cannot
// be read at all, which a parse first would answer "could not be read").
func TestUnsignedForwardIsRefusedBeforeItsMailIsParsed(t *testing.T) {
	env := hdSetup(t)
	raw := []byte(url.Values{"body-mime": {"not a mail header line\r\n\r\nbody"}}.Encode())
	w := hdInbound(env, hdForwardBody(t, raw, "application/x-www-form-urlencoded", hdFresh(time.Minute), hdToken, "bad"))
	if w.Code != http.StatusNotAcceptable || !strings.Contains(w.Body.String(), "signature") {
		t.Fatalf("status %d %s: want 406 for the signature", w.Code, w.Body)
	}
	if len(env.ingest.got) != 0 {
		t.Fatal("an unsigned forward was ingested")
	}
}

// body-mime's attachments come base64-encoded, named in encoded words,
// inline images with a Content-ID.
func TestRawMIMEAttachments(t *testing.T) {
	png := base64.StdEncoding.EncodeToString(rpPNG(t))
	mime := "From: a@example.test\r\nMessage-ID: <b64@example.test>\r\nContent-Type: multipart/mixed; boundary=b1\r\n\r\n" +
		"--b1\r\nContent-Type: multipart/related; boundary=b2\r\n\r\n" +
		"--b2\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Logo: <img src=\"cid:logo@x\"></p>\r\n" +
		"--b2\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\nContent-ID: <logo@x>\r\n\r\n" + png[:40] + "\r\n" + png[40:] + "\r\n--b2--\r\n" +
		"--b1\r\nContent-Type: application/pdf; name=\"=?UTF-8?Q?Rechnung_M=C3=A4rz.pdf?=\"\r\nContent-Disposition: attachment\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQ=\r\n--b1--\r\n"
	f := inParseForm(t, url.Values{"body-mime": {mime}})
	if f.Text != "Logo:" || f.MessageID != "b64@example.test" || len(f.Attachments) != 2 {
		t.Fatalf("parsed %+v", f)
	}
	if a := f.Attachments[0]; a.ContentType != "image/png" || a.ContentID != "logo@x" || !bytes.Equal(a.Body, rpPNG(t)) {
		t.Errorf("inline image %q %q %d bytes", a.ContentType, a.ContentID, len(a.Body))
	}
	if a := f.Attachments[1]; a.FileName != "Rechnung März.pdf" || a.ContentType != "application/pdf" || string(a.Body) != "%PDF-1.4" {
		t.Errorf("attachment %q %q %q", a.FileName, a.ContentType, a.Body)
	}
}

func TestRealEventFixtures(t *testing.T) {
	for _, tc := range []struct {
		file, mid, value, contact, reason string
	}{
		{"event-delivered-real.json", "01JD3RE4L0DE1IVERED000000", schema.StatusDelivered, "recipient@example.test", ""},
		{"event-failed-permanent-real.json", "01JD3RE4LB0UNCE0000000000", schema.StatusFailed, "invalid@example.test",
			"bounced: invalid@example.test could not be delivered to: 550 5.1.1 The email account that you tried to reach does not exist. Please try 5.1.1 double-checking the recipient's email address for typos"},
		{"event-failed-greylisted.json", "", "", "", ""},
		// No recipient field: the address is message.headers.to; the
		// reason is reject.reason.
		{"event-rejected.json", "01JD3RE4LREJECTED00000000", schema.StatusFailed, "recipient@example.test",
			"Mailgun refused to send to recipient@example.test: Sandbox subdomains are for test purposes only."},
		// "Could not load user-variables…": nothing to report, but no 406.
		{"event-uservars-string.json", "", "", "", ""},
		{"event-accepted-nested-vars.json", "01JD3RE4LNESTED0000000000", schema.StatusSent, "dude@example.test", ""},
		{"event-accepted-docs.json", "01JD3RE4LD0CS000000000000", schema.StatusSent, "recipient@example.test", ""},
	} {
		t.Run(tc.file, func(t *testing.T) {
			env := hdSetup(t)
			hdCheckOK(t, hdServe(t, env.p.handleEvents, hdEvent(t, tc.file, inSigningKey, time.Minute)))
			var want []testkit.StatusCall
			if tc.mid != "" {
				want = []testkit.StatusCall{{Contact: rpContact(t, env, tc.contact), MID: tc.mid, Value: tc.value, Reason: tc.reason}}
			}
			if !slices.Equal(env.statuses.Calls(), want) {
				t.Errorf("PostStatus calls %+v, want %+v", env.statuses.Calls(), want)
			}
		})
	}
}

func TestParseEventNestedUserVariables(t *testing.T) {
	e := inEvent(t, "event-accepted-nested-vars.json")
	for k, want := range map[string]string{"mid": "01JD3RE4LNESTED0000000000", "custom": "value",
		"parent": `{"child": "user defined variable"}`, "a-list": "[1,2,3,4,5]"} {
		if got := e.UserVariables[k]; got != want {
			t.Errorf("user-variables[%s] = %q, want %q", k, got, want)
		}
	}
	if e := inEvent(t, "event-uservars-string.json"); len(e.UserVariables) != 0 || !strings.Contains(e.Problem, "Could not load user-variables") {
		t.Errorf("user-variables %q problem %q", e.UserVariables, e.Problem)
	}
}

func ExampleParseEvent() {
	e, err := ParseEvent([]byte(`{"signature": {"timestamp": "1529704976", "token": "t", "signature": "s"},
		"event-data": {"event": "rejected", "reject": {"reason": "Sandbox subdomains are for test purposes only.", "description": ""},
		"message": {"headers": {"to": "Recipient Name <recipient@example.test>"}}}}`))
	if err != nil {
		panic(err)
	}
	value, reason, _ := StatusFor(e)
	fmt.Println(e.Recipient)
	fmt.Println(value, reason)
	// Output:
	// recipient@example.test
	// failed Mailgun refused to send to recipient@example.test: Sandbox subdomains are for test purposes only.
}

// hdEventDoc is hdEventBody for any event-data.
func hdEventDoc(t *testing.T, data map[string]any) *http.Request {
	t.Helper()
	ts := hdFresh(time.Minute)
	body, err := json.Marshal(map[string]any{
		"signature":  map[string]string{"timestamp": ts, "token": hdToken, "signature": hdSign(inSigningKey, ts, hdToken)},
		"event-data": data,
	})
	if err != nil {
		t.Fatal(err)
	}
	return hdJSONRequest(bytes.NewReader(body))
}

// When Mailgun lost the user-variables, a bounce of one of our e-mails is
// still reported: our Message-Id names its mId. Another sender's mail on
// the domain (no lost variables) or a foreign Message-Id reports nothing.
func TestEventWithLostUserVariablesFallsBackToOurMessageID(t *testing.T) {
	const lost = "Could not load user-variables. They were either truncated or invalid JSON"
	for _, tc := range []struct {
		name, messageID string
		vars            any
		sent            bool // the contact's thread records the e-mail as sent
		mid             string
	}{
		{"plain mId", "<01JD3RE4LF4LLBACK00000000@mg.example.com>", lost, true, "01JD3RE4LF4LLBACK00000000"},
		{"mId in base64", messageID("mid with spaces/ü", "MG.example.com"), lost, true, "mid with spaces/ü"},
		{"our form, but not an e-mail we sent to the contact", "20260101120000.1.ABCDEF@mg.example.com", lost, false, ""},
		{"not our domain", "01JD3RE4LF4LLBACK00000000@elsewhere.example.com", lost, true, ""},
		{"variables not lost: another sender's mail", "01JD3RE4LF4LLBACK00000000@mg.example.com", map[string]string{}, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := hdSetup(t)
			if tc.sent {
				contact := rpContact(t, env, "jane.doe@example.org")
				if err := env.p.recordOutbound(context.Background(), contact, strings.Trim(tc.messageID, "<>"), "Hello"); err != nil {
					t.Fatal(err)
				}
			}
			hdCheckOK(t, hdServe(t, env.p.handleEvents, hdEventDoc(t, map[string]any{
				"id": "ev-lost", "event": "failed", "severity": "permanent", "reason": "bounce", "recipient": "jane.doe@example.org",
				"message": map[string]any{"headers": map[string]string{"message-id": tc.messageID}}, "user-variables": tc.vars})))
			var got []string
			for _, c := range env.statuses.Calls() {
				got = append(got, c.MID+" "+c.Value)
			}
			var want []string
			if tc.mid != "" {
				want = []string{tc.mid + " " + schema.StatusFailed}
			}
			if !slices.Equal(got, want) {
				t.Errorf("statuses %q, want %q", got, want)
			}
		})
	}
}

func TestMidOfMessageIDUndoesMessageID(t *testing.T) {
	for _, mid := range []string{"01JD3RE4L0DE1IVERED000000", "a.b-c_d+e=f", "with space", "b64.looks-encoded", "ü/🙂", "x..y"} {
		if got := midOfMessageID("<"+messageID(mid, "mg.example.com")+">", "mg.example.com"); got != mid {
			t.Errorf("midOfMessageID(messageID(%q)) = %q", mid, got)
		}
	}
	for _, id := range []string{"", "no-at-sign", "x@other.example.com", "b64.!!!@mg.example.com", "a b@mg.example.com"} {
		if got := midOfMessageID(id, "mg.example.com"); got != "" {
			t.Errorf("midOfMessageID(%q) = %q, want none", id, got)
		}
	}
}

// A contact's mail with stored attachments, then a plain one read while
// those are still being fetched: the first is stored first, in the order
// they were read, not as their fetches finished.
func TestAMailFetchingStoredAttachmentsIsStoredBeforeTheContactsNextOne(t *testing.T) {
	env := hdSetup(t)
	storage := newRPStorage(t)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(500 * time.Millisecond) // a slow storage
		storage.srv.Config.Handler.ServeHTTP(w, r)
	}))
	t.Cleanup(slow.Close)
	stored := rpStoreNotify(t, env, slow.URL, slow.URL)
	ts, token := hdFresh(time.Minute), "b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6071829a1"
	plainRaw := bytes.ReplaceAll(inFile(t, "forward-urlencoded.form"), []byte("bob%40example.net"), []byte("sam%40example.test"))
	plain := hdForwardBody(t, plainRaw, "application/x-www-form-urlencoded", ts, token, hdSign(inSigningKey, ts, token))

	first := make(chan *httptest.ResponseRecorder, 1)
	go func() { first <- hdInbound(env, stored) }()
	time.Sleep(150 * time.Millisecond) // the first is fetching its attachments
	hdCheckOK(t, hdInbound(env, plain))
	hdCheckOK(t, <-first)
	env.ingest.mu.Lock()
	defer env.ingest.mu.Unlock()
	if len(env.ingest.got) != 2 {
		t.Fatalf("ingested %d forwards, want 2", len(env.ingest.got))
	}
	for i, in := range env.ingest.got {
		if in.ContactID != env.ingest.got[0].ContactID {
			t.Fatalf("forward %d is of contact %q, want both of %q", i, in.ContactID, env.ingest.got[0].ContactID)
		}
	}
	if got := len(rpFiles(env.ingest.got[0])); got != 2 {
		t.Errorf("the first forward stored had %d attachments, want the store() one (2) first", got)
	}
}

// A store() notification lists at most maxMIMEParts attachments to fetch
// (each with the API key), as a raw-MIME mail is read up to that many
// parts; the rest become one note for the agent.
func TestStoredAttachmentsPastTheCapBecomeOneNote(t *testing.T) {
	list := make([]map[string]string, maxMIMEParts+2)
	for i := range list {
		list[i] = map[string]string{"url": fmt.Sprintf("https://storage.mailgun.net/v3/x/attachments/%d", i), "name": "f.pdf",
			"content-type": "application/pdf"}
	}
	raw, err := json.Marshal(list)
	if err != nil {
		t.Fatal(err)
	}
	f := &Forward{}
	got := f.storedAttachments(string(raw), nil)
	if len(got) != maxMIMEParts+1 || got[maxMIMEParts-1].URL == "" || got[maxMIMEParts].Missing != 2 {
		t.Fatalf("%d attachments, the last %+v; want %d to fetch and one note for 2", len(got), got[len(got)-1], maxMIMEParts)
	}
	if len(f.Problems) != 1 || !strings.Contains(f.Problems[0], "the last 2 were left out") {
		t.Errorf("problems %q; want one naming the 2 left out", f.Problems)
	}
	env := hdSetup(t)
	note, err := env.p.inboundAttachment(context.Background(), got[maxMIMEParts], maxMIMEParts+1)
	want := "(2 attachments of this e-mail are missing: this server takes at most 1000 attachments of an e-mail)"
	if err != nil || note.Text == nil || *note.Text != want {
		t.Errorf("note %+v, %v; want %q", note, err, want)
	}
}
