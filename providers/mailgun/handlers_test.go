package mailgun

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bonychat/bonychat-adapter/internal/contract"
	"github.com/bonychat/bonychat-adapter/internal/testkit"
	"github.com/bonychat/bonychat-adapter/providers"
	"github.com/bonychat/bonychat-adapter/schema"
)

// hdNow is the handlers' clock in these tests.
var hdNow = time.Date(2026, 11, 19, 12, 0, 0, 0, time.UTC)

// hdIngester records what it is given and answers err.
type hdIngester struct {
	mu  sync.Mutex
	got []providers.Inbound
	err error
	// takenErr, when set, is Taken's answer: it cannot tell.
	takenErr error
}

func (g *hdIngester) Ingest(_ context.Context, in providers.Inbound) ([]string, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.err != nil {
		return nil, g.err
	}
	g.got = append(g.got, in)
	return nil, nil
}

// Taken answers providers.InboundDedupe as the adapter does: true for a
// dedupe key ingested before.
func (g *hdIngester) Taken(_ context.Context, dedupeKey string) (bool, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.takenErr != nil {
		return false, g.takenErr
	}
	for _, in := range g.got {
		if in.DedupeKey == dedupeKey {
			return true, nil
		}
	}
	return false, nil
}

type hdEnv struct {
	t        testing.TB
	p        *Provider
	ingest   *hdIngester
	statuses *testkit.Statuses
	media    *testkit.Media
	rec      *testkit.Records
}

func hdSetup(t *testing.T) *hdEnv {
	t.Helper()
	env := &hdEnv{t: t, ingest: &hdIngester{}, statuses: &testkit.Statuses{}, media: &testkit.Media{BaseURL: inMediaURL}, rec: testkit.NewRecords()}
	cfg := Config{Domain: "mg.example.com", APIKey: "key-1", WebhookSigningKey: inSigningKey,
		From: "Acme Support <support@mg.example.com>", Subject: "Your conversation with Acme",
		SignatureMaxAge: time.Hour}
	p, err := New(cfg, providers.Deps{ChannelID: "mail01", IDType: schema.IDTypeCustom, Media: env.media,
		Records: env.rec, Ingest: env.ingest, Statuses: env.statuses, Transport: testkit.NewLocalOnlyTransport()})
	if err != nil {
		t.Fatal(err)
	}
	p.now = func() time.Time { return hdNow }
	env.p = p
	return env
}

// hdSign is Mailgun's signature of timestamp and token with key.
func hdSign(key, timestamp, token string) string {
	return hex.EncodeToString(sign(providers.Secret(key), timestamp, token))
}

// hdFresh is a timestamp age before hdNow.
func hdFresh(age time.Duration) string { return strconv.FormatInt(hdNow.Add(-age).Unix(), 10) }

// hdForward is a testdata forward (name.form urlencoded, name.txt
// multipart) with timestamp, token and signature replaced.
func hdForward(t *testing.T, name, timestamp, token, signature string) *http.Request {
	t.Helper()
	ctype := "application/x-www-form-urlencoded"
	if base, ok := strings.CutSuffix(name, ".txt"); ok {
		ctype = strings.TrimSpace(string(inFile(t, base+".ct")))
	}
	return hdForwardBody(t, inFile(t, name), ctype, timestamp, token, signature)
}

// hdForwardBody is a forward body (urlencoded, or multipart when ctype
// says so) with timestamp, token and signature replaced.
func hdForwardBody(t *testing.T, raw []byte, ctype, timestamp, token, signature string) *http.Request {
	t.Helper()
	fields := map[string]string{"timestamp": timestamp, "token": token, "signature": signature}
	var body []byte
	if strings.HasPrefix(ctype, "multipart/") {
		_, params, err := mime.ParseMediaType(ctype)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		mw := multipart.NewWriter(&out)
		if err := mw.SetBoundary(params["boundary"]); err != nil {
			t.Fatal(err)
		}
		mr := multipart.NewReader(bytes.NewReader(raw), params["boundary"])
		for {
			part, err := mr.NextRawPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			content, err := io.ReadAll(part)
			if err != nil {
				t.Fatal(err)
			}
			if v, ok := fields[part.FormName()]; ok && part.FileName() == "" {
				content = []byte(v)
			}
			pw, err := mw.CreatePart(part.Header)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = pw.Write(content)
		}
		if err := mw.Close(); err != nil {
			t.Fatal(err)
		}
		body = out.Bytes()
	} else {
		form, err := url.ParseQuery(string(raw))
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range fields {
			form.Set(k, v)
		}
		body = []byte(form.Encode())
	}
	r := httptest.NewRequest(http.MethodPost, "/mailgun/mail01/inbound", bytes.NewReader(body))
	r.Header.Set("Content-Type", ctype)
	return r
}

// hdSigned is a forward freshly signed with the channel's key.
func hdSigned(t *testing.T, name, timestamp, token string) *http.Request {
	t.Helper()
	return hdForward(t, name, timestamp, token, hdSign(inSigningKey, timestamp, token))
}

// hdServe runs one request and checks the exchange against openapi.yaml.
func hdServe(t testing.TB, h http.HandlerFunc, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	contract.Handler(t, h).ServeHTTP(w, r)
	return w
}

func hdInbound(env *hdEnv, r *http.Request) *httptest.ResponseRecorder {
	return hdServe(env.t, env.p.inboundHandler(maxForwardBytes), r)
}

func hdCheckOK(t *testing.T, w *httptest.ResponseRecorder) {
	t.Helper()
	if w.Code != http.StatusOK {
		t.Fatalf("status %d, want 200; body %s", w.Code, w.Body)
	}
	var got map[string]string
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || got["status"] != "ok" {
		t.Fatalf("body %q, want {\"status\":\"ok\"}", w.Body)
	}
}

func hdCheckError(t *testing.T, w *httptest.ResponseRecorder, status int) {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status %d, want %d; body %s", w.Code, status, w.Body)
	}
	var got providers.ErrorBody
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || got.Error.Message == "" {
		t.Fatalf("body %q is not the JSON error shape", w.Body)
	}
}

const hdToken = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6071829"

func TestRoutes(t *testing.T) {
	env := hdSetup(t)
	got := map[string]bool{}
	for _, rt := range env.p.Routes() {
		if rt.Method != http.MethodPost || rt.BearerAuth || rt.Handler == nil {
			t.Errorf("route %+v: want POST, signature-verified, with a handler", rt)
		}
		got[rt.Action] = true
	}
	if !got["inbound"] || !got["events"] || len(got) != 2 {
		t.Errorf("actions %v, want inbound and events", got)
	}
}

func TestHandleInboundMultipart(t *testing.T) {
	env := hdSetup(t)
	w := hdInbound(env, hdSigned(t, "forward-multipart.txt", hdFresh(time.Minute), hdToken))
	hdCheckOK(t, w)
	if len(env.ingest.got) != 1 {
		t.Fatalf("ingested %d times, want 1", len(env.ingest.got))
	}
	in := env.ingest.got[0]
	want := inParse(t, "forward-multipart.txt")
	if want.MessageID == "" || in.DedupeKey != want.MessageID {
		t.Errorf("DedupeKey %q, want the Message-Id %q", in.DedupeKey, want.MessageID)
	}
	wantKeys := []providers.InboundKey{{Name: "mailgun-token:" + hdToken, Value: want.MessageID}}
	if !reflect.DeepEqual(in.Keys, wantKeys) {
		t.Errorf("Keys %+v, want %+v", in.Keys, wantKeys)
	}
	inCheckValid(t, in)
	var attachments int
	for _, e := range in.Events {
		if e.Type != schema.EventMessage {
			t.Errorf("event %q has type %q", e.MID, e.Type)
		}
		if e.Message.Type == schema.TypeAttachment {
			attachments++
		}
	}
	if attachments != 3 || len(env.media.Saved()) != 3 {
		t.Errorf("%d attachment events, %d saved; want 3 (two attachments and an inline image)", attachments, len(env.media.Saved()))
	}
	if len(in.Media) != 3 {
		t.Errorf("Inbound.Media %q: want the 3 saved links, for Ingest to remove if it does not store the mail", in.Media)
	}
	// A first message starts a thread: its subject is shown, and recorded.
	if first := in.Events[0].Message; first.Type != schema.TypeText || !strings.HasPrefix(hdText(first), "Subject: ") {
		t.Errorf("first event %+v: want the text with the subject on a new thread", first)
	}
	if _, ok := env.rec.Value(nsThread, env.p.threadKey(in.ContactID)); !ok {
		t.Errorf("no thread recorded for %q", in.ContactID)
	}
}

func TestHandleInboundThreadContinues(t *testing.T) {
	env := hdSetup(t)
	hdCheckOK(t, hdInbound(env, hdSigned(t, "forward-urlencoded.form", hdFresh(time.Minute), hdToken)))
	// A second mail of the same conversation (same subject, another
	// Message-Id), another token.
	raw := bytes.ReplaceAll(inFile(t, "forward-urlencoded.form"), []byte("GA1234"), []byte("GA5678"))
	ts, token := hdFresh(0), strings.Repeat("b", 50)
	second := hdForwardBody(t, raw, "application/x-www-form-urlencoded", ts, token, hdSign(inSigningKey, ts, token))
	hdCheckOK(t, hdInbound(env, second))
	if len(env.ingest.got) != 2 {
		t.Fatalf("ingested %d times, want 2", len(env.ingest.got))
	}
	if text := hdText(env.ingest.got[0].Events[0].Message); !strings.HasPrefix(text, "Subject: Opening hours") {
		t.Errorf("first mail's text %q: want the subject prefix", text)
	}
	if text := hdText(env.ingest.got[1].Events[0].Message); strings.HasPrefix(text, "Subject:") {
		t.Errorf("the thread's second mail %q: want no subject prefix", text)
	}
}

func TestHandleInboundRefusesBadSignature(t *testing.T) {
	for name, sig := range map[string]string{
		"other key": hdSign("key-someone-else", hdFresh(time.Minute), hdToken),
		"missing":   "",
		"not hex":   "zz",
	} {
		t.Run(name, func(t *testing.T) {
			env := hdSetup(t)
			w := hdInbound(env, hdForward(t, "forward-multipart.txt", hdFresh(time.Minute), hdToken, sig))
			hdCheckError(t, w, http.StatusNotAcceptable)
			if len(env.ingest.got) != 0 || len(env.media.Saved()) != 0 || len(env.rec.Puts()) != 0 {
				t.Errorf("stored something: %d ingested, %d media, %d records",
					len(env.ingest.got), len(env.media.Saved()), len(env.rec.Puts()))
			}
		})
	}
}

func TestHandleInboundRefusesStaleTimestamp(t *testing.T) {
	env := hdSetup(t)
	// Older than signature_max_age (an hour here), correctly signed.
	w := hdInbound(env, hdSigned(t, "forward-urlencoded.form", hdFresh(time.Hour+time.Minute), hdToken))
	hdCheckError(t, w, http.StatusNotAcceptable)
	// The testdata's own signature is valid but its timestamp is not ours.
	w = hdInbound(env, inRequest(t, "forward-urlencoded.form"))
	hdCheckError(t, w, http.StatusNotAcceptable)
	if len(env.ingest.got) != 0 {
		t.Errorf("ingested %d times, want none", len(env.ingest.got))
	}
}

// Mailgun's retry of a forward already taken is answered 200 and not
// ingested again (nor its attachments saved again).
func TestHandleInboundRetryOfATakenForwardIsNotIngestedAgain(t *testing.T) {
	env := hdSetup(t)
	ts := hdFresh(50 * time.Minute) // Mailgun's retry resends the original timestamp
	hdCheckOK(t, hdInbound(env, hdSigned(t, "forward-multipart.txt", ts, hdToken)))
	saved := len(env.media.Saved())
	hdCheckOK(t, hdInbound(env, hdSigned(t, "forward-multipart.txt", ts, hdToken)))
	if len(env.ingest.got) != 1 || saved == 0 || len(env.media.Saved()) != saved {
		t.Fatalf("ingested %d times, saved %d then %d media; want 1 ingest and no media saved again",
			len(env.ingest.got), saved, len(env.media.Saved()))
	}
}

// A retry that cannot be checked against the ingester's dedupe (its store
// does not answer) is ingested again with the same keys and mIds, for the
// ingester to drop.
func TestHandleInboundUncheckedRetryIsIngestedWithTheSameKeys(t *testing.T) {
	env := hdSetup(t)
	env.ingest.takenErr = errors.New("store down")
	ts := hdFresh(50 * time.Minute) // Mailgun's retry resends the original timestamp
	hdCheckOK(t, hdInbound(env, hdSigned(t, "forward-urlencoded.form", ts, hdToken)))
	hdCheckOK(t, hdInbound(env, hdSigned(t, "forward-urlencoded.form", ts, hdToken)))
	if len(env.ingest.got) != 2 {
		t.Fatalf("ingested %d times, want 2 (the ingester decides what is a duplicate)", len(env.ingest.got))
	}
	a, b := env.ingest.got[0], env.ingest.got[1]
	if a.DedupeKey == "" || a.DedupeKey != b.DedupeKey || !reflect.DeepEqual(a.Keys, b.Keys) || len(a.Keys) != 1 {
		t.Errorf("redelivery keys differ: %q %+v vs %q %+v", a.DedupeKey, a.Keys, b.DedupeKey, b.Keys)
	}
	if len(a.Events) != len(b.Events) || a.Events[0].MID != b.Events[0].MID {
		t.Errorf("redelivery mIds differ:\n%+v\n%+v", a.Events, b.Events)
	}
}

func TestHandleInboundIngestFailures(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want int
	}{
		{"replayed token", &providers.IngestError{Status: http.StatusNotAcceptable, Message: "token replayed"}, http.StatusNotAcceptable},
		{"store unavailable", &providers.IngestError{Status: http.StatusServiceUnavailable, Message: "try again"}, http.StatusServiceUnavailable},
		{"plain error", errors.New("database down"), http.StatusServiceUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := hdSetup(t)
			env.ingest.err = tc.err
			w := hdInbound(env, hdSigned(t, "forward-urlencoded.form", hdFresh(time.Minute), hdToken))
			hdCheckError(t, w, tc.want)
			if k := hdThreadPuts(env.rec); len(k) != 0 {
				t.Errorf("thread recorded although nothing was ingested: %q", k)
			}
		})
	}
}

func TestHandleInboundStoreFailureIs503(t *testing.T) {
	env := hdSetup(t)
	env.rec.FailGets("", errors.New("records down"))
	w := hdInbound(env, hdSigned(t, "forward-urlencoded.form", hdFresh(time.Minute), hdToken))
	hdCheckError(t, w, http.StatusServiceUnavailable)
	if len(env.ingest.got) != 0 {
		t.Errorf("ingested %d times, want none", len(env.ingest.got))
	}
}

func TestHandleInboundThreadFailureStillOK(t *testing.T) {
	env := hdSetup(t)
	env.rec.FailPuts("", errors.New("records read-only"))
	hdCheckOK(t, hdInbound(env, hdSigned(t, "forward-urlencoded.form", hdFresh(time.Minute), hdToken)))
	if len(env.ingest.got) != 1 {
		t.Errorf("ingested %d times, want 1", len(env.ingest.got))
	}
}

func TestHandleInboundOversize(t *testing.T) {
	for _, name := range []string{"forward-multipart.txt", "forward-urlencoded.form"} {
		t.Run(name, func(t *testing.T) {
			env := hdSetup(t)
			w := hdServe(t, env.p.inboundHandler(512), hdSigned(t, name, hdFresh(time.Minute), hdToken))
			hdCheckError(t, w, http.StatusRequestEntityTooLarge)
			if len(env.ingest.got) != 0 {
				t.Errorf("ingested %d times, want none", len(env.ingest.got))
			}
		})
	}
}

// readCounter counts the bytes read from it.
type readCounter struct {
	r io.Reader
	n int
}

func (c *readCounter) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += n
	return n, err
}

// A forward whose Content-Length is over the cap is refused before its
// body is read: unsigned, it would hold forward memory while read.
func TestHandleInboundRefusesAnOversizeContentLengthUnread(t *testing.T) {
	env := hdSetup(t)
	r := hdSigned(t, "forward-urlencoded.form", hdFresh(time.Minute), hdToken)
	body := &readCounter{r: r.Body}
	r.Body = io.NopCloser(body)
	r.ContentLength = 513
	w := httptest.NewRecorder() // not through the contract check, which reads the body
	env.p.inboundHandler(512).ServeHTTP(w, r)
	hdCheckError(t, w, http.StatusRequestEntityTooLarge)
	if body.n != 0 {
		t.Errorf("%d bytes of the body were read before it was refused, want none", body.n)
	}
}

// hdEvent is a testdata event with a fresh signature (signed with key).
func hdEvent(t *testing.T, name, key string, age time.Duration) *http.Request {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(inFile(t, name), &doc); err != nil {
		t.Fatal(err)
	}
	ts, token := hdFresh(age), hdToken
	doc["signature"] = map[string]any{"timestamp": ts, "token": token, "signature": hdSign(key, ts, token)}
	body, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodPost, "/mailgun/mail01/events", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	return r
}

func TestHandleEventsFixtures(t *testing.T) {
	const mid = "01JD2XK8Q3W5Y7Z9A1B3C5D7E9"
	for _, tc := range []struct {
		file   string
		want   *testkit.StatusCall // contact filled in below
		reason string              // substring of the reason
	}{
		{"event-accepted.json", &testkit.StatusCall{MID: mid, Value: schema.StatusSent}, ""},
		{"event-delivered.json", &testkit.StatusCall{MID: mid, Value: schema.StatusDelivered}, ""},
		{"event-opened.json", &testkit.StatusCall{MID: mid, Value: schema.StatusRead}, ""},
		{"event-failed-permanent.json", &testkit.StatusCall{MID: "01JD2Y0000BOUNCE00000000", Value: schema.StatusFailed}, "550 5.1.1"},
		{"event-failed-temporary.json", nil, ""},
		{"event-uservars-empty-array.json", nil, ""},
	} {
		t.Run(tc.file, func(t *testing.T) {
			env := hdSetup(t)
			hdCheckOK(t, hdServe(t, env.p.handleEvents, hdEvent(t, tc.file, inSigningKey, time.Minute)))
			if tc.want == nil {
				if len(env.statuses.Calls()) != 0 {
					t.Errorf("PostStatus calls %+v, want none", env.statuses.Calls())
				}
				return
			}
			if len(env.statuses.Calls()) != 1 {
				t.Fatalf("PostStatus calls %+v, want one", env.statuses.Calls())
			}
			got := env.statuses.Calls()[0]
			contact, err := EncodeContactID(context.Background(), env.rec, inEvent(t, tc.file).Recipient)
			if err != nil {
				t.Fatal(err)
			}
			if got.Contact != contact || got.MID != tc.want.MID || got.Value != tc.want.Value {
				t.Errorf("PostStatus(%q, %q, %q), want (%q, %q, %q)", got.Contact, got.MID, got.Value,
					contact, tc.want.MID, tc.want.Value)
			}
			if (tc.reason == "") != (got.Reason == "") || !strings.Contains(got.Reason, tc.reason) {
				t.Errorf("reason %q, want one containing %q", got.Reason, tc.reason)
			}
		})
	}
}

func TestHandleEventsWithoutMid(t *testing.T) {
	env := hdSetup(t)
	var doc map[string]any
	_ = json.Unmarshal(inFile(t, "event-delivered.json"), &doc)
	doc["event-data"].(map[string]any)["user-variables"] = []any{}
	ts := hdFresh(time.Minute)
	doc["signature"] = map[string]any{"timestamp": ts, "token": hdToken, "signature": hdSign(inSigningKey, ts, hdToken)}
	body, _ := json.Marshal(doc)
	r := httptest.NewRequest(http.MethodPost, "/mailgun/mail01/events", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	hdCheckOK(t, hdServe(t, env.p.handleEvents, r))
	if len(env.statuses.Calls()) != 0 {
		t.Errorf("PostStatus calls %+v, want none", env.statuses.Calls())
	}
}

func TestHandleEventsRefused(t *testing.T) {
	for name, r := range map[string]func(t *testing.T) *http.Request{
		"bad signature": func(t *testing.T) *http.Request {
			return hdEvent(t, "event-delivered.json", "key-someone-else", time.Minute)
		},
		"stale timestamp": func(t *testing.T) *http.Request {
			return hdEvent(t, "event-delivered.json", inSigningKey, 2*time.Hour)
		},
		"testdata signature": func(t *testing.T) *http.Request {
			return hdJSONRequest(bytes.NewReader(inFile(t, "event-delivered.json")))
		},
		"not an event": func(t *testing.T) *http.Request {
			return hdJSONRequest(strings.NewReader(`{"hello":1}`))
		},
	} {
		t.Run(name, func(t *testing.T) {
			env := hdSetup(t)
			hdCheckError(t, hdServe(t, env.p.handleEvents, r(t)), http.StatusNotAcceptable)
			if len(env.statuses.Calls()) != 0 {
				t.Errorf("PostStatus calls %+v, want none", env.statuses.Calls())
			}
		})
	}
}

func TestHandleEventsPostStatusFailing(t *testing.T) {
	env := hdSetup(t)
	env.statuses.Fail(errors.New("store down"))
	hdCheckError(t, hdServe(t, env.p.handleEvents, hdEvent(t, "event-delivered.json", inSigningKey, time.Minute)),
		http.StatusServiceUnavailable)
}

func TestHandleEventsOversize(t *testing.T) {
	env := hdSetup(t)
	r := hdJSONRequest(bytes.NewReader(bytes.Repeat([]byte(" "), maxEventBytes+1)))
	hdCheckError(t, hdServe(t, env.p.handleEvents, r), http.StatusRequestEntityTooLarge)
}

// hdThreadPuts are the puts of thread records ("ns|key"), in order.
func hdThreadPuts(r *testkit.Records) []string {
	var out []string
	for _, put := range r.Puts() {
		if strings.HasPrefix(put, nsThread+"|") {
			out = append(out, put)
		}
	}
	return out
}

func hdText(m *schema.Message) string {
	if m == nil || m.Text == nil {
		return ""
	}
	return *m.Text
}

// hdJSONRequest is an event webhook POST with body.
func hdJSONRequest(body io.Reader) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/mailgun/mail01/events", body)
	r.Header.Set("Content-Type", "application/json")
	return r
}

// hdEventBody is a delivered event for mid, signed with token.
func hdEventBody(t *testing.T, eventID, token, mid string) *http.Request {
	t.Helper()
	ts := hdFresh(time.Minute)
	body, err := json.Marshal(map[string]any{
		"signature": map[string]string{"timestamp": ts, "token": token, "signature": hdSign(inSigningKey, ts, token)},
		"event-data": map[string]any{"id": eventID, "event": "delivered", "recipient": "jane.doe@example.org",
			"user-variables": map[string]string{"mid": mid}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return hdJSONRequest(bytes.NewReader(body))
}

func TestEventTokensCannotBeReplayed(t *testing.T) {
	env := hdSetup(t)
	hdCheckOK(t, hdServe(t, env.p.handleEvents, hdEventBody(t, "ev-1", "tok-ev-1", "mid-1")))
	hdCheckOK(t, hdServe(t, env.p.handleEvents, hdEventBody(t, "ev-1", "tok-ev-1", "mid-1")))
	if n := len(env.statuses.Calls()); n != 1 {
		t.Fatalf("a Mailgun retry of an event is acknowledged once: %d status calls", n)
	}
	hdCheckError(t, hdServe(t, env.p.handleEvents, hdEventBody(t, "ev-forged", "tok-ev-1", "mid-2")), http.StatusNotAcceptable)
	if n := len(env.statuses.Calls()); n != 1 {
		t.Fatal("a captured token with another event must not post a status")
	}
	// The token is remembered for as long as anything about a message is
	// kept, not forever: one record per webhook would grow the store.
	exp := env.rec.Expiries.Of(nsTokens, "tok-ev-1")
	if d := time.Until(exp); d < providers.MessageRecordTTL-time.Minute || d > providers.MessageRecordTTL {
		t.Fatalf("token record expires in %v, want about %v", d, providers.MessageRecordTTL)
	}
}

func TestEventTokenCannotBeReusedForInboundMail(t *testing.T) {
	env := hdSetup(t)
	hdCheckOK(t, hdServe(t, env.p.handleEvents, hdEventBody(t, "ev-2", hdToken, "mid-3")))
	hdCheckError(t, hdInbound(env, hdSigned(t, "forward-urlencoded.form", hdFresh(time.Minute), hdToken)), http.StatusNotAcceptable)
	if n := len(env.ingest.got); n != 0 {
		t.Fatalf("a forged forward with an event's token must store nothing: %d ingests", n)
	}
}

// A signature (timestamp, token) that signed a route forward to one
// channel signs nothing else on another channel of the same account (same
// signing key): the signature covers no body, and the token registry is
// the only replay protection, so it is kept across channels.
func TestATokenUsedOnOneChannelSignsNothingElseOnAnother(t *testing.T) {
	env := hdSetup(t)
	ts := hdFresh(time.Minute)
	hdCheckOK(t, hdInbound(env, hdSigned(t, "forward-urlencoded.form", ts, hdToken)))

	// Channel mail02: same account, same signing key, same store.
	cfg := env.p.cfg
	cfg.From = "Sales <sales@mg.example.com>"
	ing := &hdIngester{}
	p2, err := New(cfg, providers.Deps{ChannelID: "mail02", IDType: schema.IDTypeCustom, Media: env.media,
		Records: env.rec, Ingest: ing, Statuses: &testkit.Statuses{}, Transport: testkit.NewLocalOnlyTransport()})
	if err != nil {
		t.Fatal(err)
	}
	p2.now = env.p.now
	form, err := url.ParseQuery(string(inFile(t, "forward-urlencoded.form")))
	if err != nil {
		t.Fatal(err)
	}
	form.Set("Message-Id", "<forged@attacker.example>")
	form.Set("message-headers", `[["From","bob@example.net"],["To","sales@mg.example.com"],["Message-Id","<forged@attacker.example>"]]`)
	form.Set("body-plain", "Forged: please refund to account 999")
	form.Set("stripped-text", "Forged: please refund to account 999")
	r := hdForwardBody(t, []byte(form.Encode()), "application/x-www-form-urlencoded", ts, hdToken, hdSign(inSigningKey, ts, hdToken))
	r.URL.Path = "/mailgun/mail02/inbound"
	w := hdServe(t, p2.inboundHandler(maxForwardBytes), r)
	if w.Code == http.StatusOK || len(ing.got) != 0 {
		t.Fatalf("a token already used for another mail on mail01 signed a forged mail on mail02: status %d, %d ingests", w.Code, len(ing.got))
	}
}

// A mail whose From is a business address Mailgun did not vouch for is
// posted as a message from that address with the warning, even when it
// names no outside recipient (an echo would have none to go to): the
// handler and InboundEvents agree on its contact.
func TestAnUnverifiedBusinessMailIsPostedWithAWarning(t *testing.T) {
	env := hdSetup(t)
	env.p.cfg.BusinessAddresses = []string{"example.net"}
	w := hdInbound(env, hdSigned(t, "forward-urlencoded.form", hdFresh(time.Minute), hdToken))
	hdCheckOK(t, w)
	if len(env.ingest.got) != 1 {
		t.Fatalf("%d ingests, want 1", len(env.ingest.got))
	}
	in := env.ingest.got[0]
	if !strings.HasPrefix(hdText(in.Events[0].Message), unverifiedBusinessNote) {
		t.Fatalf("events %+v: want the unverified warning", in.Events)
	}
}

// A forward ingested whose thread and token were not recorded (Mailgun hung
// up after its timeout, ending the request after the ingest): Mailgun's
// retry, answered without ingesting again, records the thread then.
func TestHandleInboundRetryRecordsTheThreadTheFirstTryMissed(t *testing.T) {
	env := hdSetup(t)
	ts := hdFresh(50 * time.Minute)
	env.rec.FailPuts("", context.Canceled)
	hdInbound(env, hdSigned(t, "forward-urlencoded.form", ts, hdToken))
	if len(env.ingest.got) != 1 || len(hdThreadPuts(env.rec)) != 0 {
		t.Fatalf("first delivery: %d ingests, %d thread records; want 1 and none", len(env.ingest.got), len(hdThreadPuts(env.rec)))
	}
	env.rec.FailPuts("", nil)
	hdCheckOK(t, hdInbound(env, hdSigned(t, "forward-urlencoded.form", ts, hdToken)))
	if len(env.ingest.got) != 1 || len(hdThreadPuts(env.rec)) == 0 {
		t.Fatalf("the retry: %d ingests, %d thread records; want 1 and the thread recorded", len(env.ingest.got), len(hdThreadPuts(env.rec)))
	}
}
