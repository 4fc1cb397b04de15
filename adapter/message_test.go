package adapter

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/bonychat/bonychat-adapter/providers"
)

func TestMessageAcceptedTextReturnsMID(t *testing.T) {
	fake := &fakeProvider{}
	h := newHarnessWith(t, nil, fake)
	rec := h.postJSON("/message", demoToken, textRequest("demo", phoneContact, "Hi from BonyChat"))
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	var got struct{ MID string }
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || got.MID == "" || len(got.MID) > 50 {
		t.Fatalf("want an mId of 1..50 characters, got %q (%v)", got.MID, err)
	}
	if fake.sentCount() != 1 || *fake.sent[0].Text != "Hi from BonyChat" {
		t.Fatalf("provider should have received the text once, got %+v", fake.sent)
	}
}

func TestMessageIDsAreUniqueAndSortedByTime(t *testing.T) {
	h := newHarnessWith(t, nil, &fakeProvider{})
	var ids []string
	for range 50 {
		rec := h.postJSON("/message", demoToken, textRequest("demo", phoneContact, "x"))
		var got map[string]string
		_ = json.Unmarshal(rec.Body.Bytes(), &got)
		ids = append(ids, got["mId"])
		time.Sleep(time.Millisecond) // ULIDs order by millisecond
	}
	if !slices.IsSorted(ids) {
		t.Errorf("mIds should sort by creation time: %v", ids)
	}
	if len(slices.Compact(slices.Clone(ids))) != len(ids) {
		t.Errorf("mIds should be unique: %v", ids)
	}
}

func TestMessageAuth(t *testing.T) {
	body := textRequest("demo", phoneContact, "hi")
	cases := []struct {
		name   string
		header string
		body   map[string]any
		want   int
	}{
		{"current token", "Bearer " + demoToken, body, 200},
		{"previous token during rotation", "Bearer " + demoPrevToken, body, 200},
		{"scheme is case-insensitive", "bearer " + demoToken, body, 200},
		{"upper-case scheme", "BEARER " + demoToken, body, 200},
		{"missing header", "", body, 401},
		{"wrong token", "Bearer wrong-token-000000000000", body, 401},
		{"token of another channel", "Bearer " + customToken, body, 401},
		{"unknown channel", "Bearer " + demoToken, textRequest("nope", phoneContact, "hi"), 401},
		{"basic scheme", "Basic " + demoToken, body, 401},
		{"bearer without token", "Bearer ", body, 401},
		{"token without scheme", demoToken, body, 401},
		{"token with a suffix", "Bearer " + demoToken + "x", body, 401},
		{"token prefix", "Bearer " + demoToken[:len(demoToken)-1], body, 401},
	}
	h := newHarnessWith(t, nil, &fakeProvider{})
	var unauthorizedBodies []string
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			raw, _ := json.Marshal(tc.body)
			req := newJSONRequest("/message", raw)
			if tc.header != "" {
				req.Header.Set("Authorization", tc.header)
			}
			rec := h.doRequest(req, raw)
			if rec.Code != tc.want {
				t.Fatalf("want %d, got %d: %s", tc.want, rec.Code, rec.Body)
			}
			if tc.want == 401 {
				if !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("401 must carry WWW-Authenticate: Bearer, got %q", rec.Header().Get("WWW-Authenticate"))
				}
				unauthorizedBodies = append(unauthorizedBodies, rec.Body.String())
			}
		})
	}
	if len(slices.Compact(unauthorizedBodies)) != 1 {
		t.Errorf("every 401 must look the same (unknown channel = wrong token), got %q", slices.Compact(unauthorizedBodies))
	}
}

// previous_token_until closes the rotation window by itself; until then a
// request let in by the old token is logged (once per interval), so the
// operator can tell when BonyChat has moved to the new one.
func TestPreviousTokenIsRefusedAfterItsUntilAndItsUseIsLogged(t *testing.T) {
	const used, refused = "a request used this channel's previous_token;",
		"a request used this channel's previous_token after previous_token_until; refused"
	cases := []struct {
		name, until string
		want        int
		logged      string
	}{
		{"no end date", "", 200, used},
		{"end date ahead", "2999-12-31", 200, used},
		{"end date passed", "2000-01-01", 401, refused},
		{"end instant passed", "2000-01-01T00:00:00Z", 401, refused},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarnessWith(t, func(c *Config) { c.Channels[0].PreviousTokenUntil = providers.Until(tc.until) },
				&fakeProvider{})
			for range 2 {
				if rec := h.postJSON("/message", demoPrevToken, textRequest("demo", phoneContact, "hi")); rec.Code != tc.want {
					t.Fatalf("previous token: want %d, got %d: %s", tc.want, rec.Code, rec.Body)
				}
			}
			if rec := h.postJSON("/message", demoToken, textRequest("demo", phoneContact, "hi")); rec.Code != 200 {
				t.Fatalf("current token: want 200, got %d: %s", rec.Code, rec.Body)
			}
			logs := h.logs.String()
			if strings.Count(logs, tc.logged) != 1 || strings.Count(logs, "previous_token after")+strings.Count(logs, used) != 1 {
				t.Errorf("want %q logged once, and nothing else about the previous token:\n%s", tc.logged, logs)
			}
		})
	}
}

// Start-up says when a rotation's leftovers should go: a previous token
// past its end date, or an end date whose token was emptied (which is no
// reason to refuse to start).
func TestStartUpWarnsOfARotationsLeftovers(t *testing.T) {
	const passed, alone = "previous_token_until has passed", "previous_token_until is set but previous_token is not"
	cases := []struct {
		until, previous, warning string
	}{
		{"2000-01-01", demoPrevToken, passed},
		{"2999-12-31", demoPrevToken, ""},
		{"", demoPrevToken, ""},
		{"2999-12-31", "", alone},
	}
	for _, tc := range cases {
		h := newHarness(t, func(c *Config) {
			c.Channels[0].PreviousTokenUntil, c.Channels[0].PreviousToken = providers.Until(tc.until), Secret(tc.previous)
		})
		logs := h.logs.String()
		for _, w := range []string{passed, alone} {
			if got := strings.Contains(logs, w); got != (w == tc.warning) {
				t.Errorf("until %q, previous token %v: %q logged = %v, want %v", tc.until, tc.previous != "", w, got, !got)
			}
		}
	}
}

func TestMessageAuthRunsBeforeTheBodyIsProcessed(t *testing.T) {
	fake := &fakeProvider{}
	h := newHarnessWith(t, nil, fake)
	const wrong = "wrong-token-000000000000"
	cases := []struct{ name, token, ctype, body string }{
		{"no token, malformed JSON", "", "application/json", `{"channelId":`},
		{"wrong token, malformed JSON", wrong, "application/json", `{"channelId":`},
		{"wrong token, not JSON", wrong, "text/plain", `hello`},
		{"wrong token, invalid message", wrong, "application/json", `{"channelId":"demo","contactId":"x","message":{"type":"sticker"}}`},
		{"no token, unknown fields", "", "application/json", `{"channelId":"demo","evil":1}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := h.do(http.MethodPost, "/message", tc.token, tc.ctype, []byte(tc.body))
			if rec.Code != http.StatusUnauthorized {
				t.Fatalf("want 401 before any body error, got %d: %s", rec.Code, rec.Body)
			}
		})
	}
	if fake.sentCount() != 0 {
		t.Fatal("nothing may reach the provider without authentication")
	}
}

func TestMessageTransportErrors(t *testing.T) {
	h := newHarnessWith(t, nil, &fakeProvider{})
	valid, _ := json.Marshal(textRequest("demo", phoneContact, "hi"))
	huge := []byte(`{"channelId":"demo","contactId":"+60177872890","message":{"type":"text","text":"` + strings.Repeat("a", 1<<20) + `"}}`)
	cases := []struct {
		name, contentType string
		body              []byte
		want              int
	}{
		{"JSON with charset", "application/json; charset=utf-8", valid, 200},
		{"text/plain", "text/plain", valid, 415},
		{"form", "application/x-www-form-urlencoded", valid, 415},
		{"no content type", "", valid, 415},
		{"body over 1 MiB", "application/json", huge, 400}, // PROTOCOL: refused like any out-of-bounds input
		{"malformed JSON", "application/json", []byte(`{"channelId":"demo","contactId":`), 400},
		{"empty body", "application/json", nil, 400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := h.do(http.MethodPost, "/message", demoToken, tc.contentType, tc.body)
			if rec.Code != tc.want {
				t.Fatalf("want %d, got %d: %s", tc.want, rec.Code, rec.Body)
			}
			if tc.want != 200 {
				errorBody(t, rec)
			}
		})
	}
}

func TestMessageMalformedJSONWithValidTokenIs400(t *testing.T) {
	h := newHarnessWith(t, nil, &fakeProvider{})
	// channelId is readable, the rest is broken: auth passes, decoding fails.
	rec := h.do(http.MethodPost, "/message", demoToken, "application/json", []byte(`{"channelId":"demo","message":{]}`))
	if rec.Code != http.StatusUnauthorized && rec.Code != http.StatusBadRequest {
		t.Fatalf("got %d", rec.Code)
	}
	rec = h.do(http.MethodPost, "/message", demoToken, "application/json", []byte(`{"channelId":"demo","contactId":"+60177872890","message":{"type":"text","text":"a"}} trailing`))
	if rec.Code != http.StatusBadRequest {
		t.Fatalf("trailing data: want 400, got %d", rec.Code)
	}
}

func TestMessageValidationNamesEveryField(t *testing.T) {
	h := newHarnessWith(t, nil, &fakeProvider{})
	body := map[string]any{"channelId": "demo", "contactId": "60177872890", "message": map[string]any{
		"type": "quick_reply", "title": strings.Repeat("é", 257), "replies": []string{"ok", ""}, "text": "stray"}}
	rec := h.postJSON("/message", demoToken, body)
	if rec.Code != http.StatusBadRequest {
		t.Fatalf("want 400, got %d", rec.Code)
	}
	got := map[string]string{}
	for _, d := range errorBody(t, rec).Error.Details {
		got[d.Field] = d.Rule
	}
	want := map[string]string{"contactId": "e164", "message.title": "max", "message.replies[1]": "min", "message.text": "not_allowed"}
	for field, rule := range want {
		if got[field] != rule {
			t.Errorf("want %s: %s in details, got %v", field, rule, got)
		}
	}
}

// The message of a refusal is all some BonyChat screens show: it names the
// first problem in words and says how many more the details hold.
func TestMessageRefusalMessageNamesTheFirstProblem(t *testing.T) {
	h := newHarnessWith(t, nil, &fakeProvider{})
	rec := h.postJSON("/message", demoToken, textRequest("demo", "60177872890", "hi"))
	body := errorBody(t, rec)
	if want := "invalid request: " + body.Error.Details[0].Field + ": " + body.Error.Details[0].Message; body.Error.Message != want ||
		!strings.Contains(want, "contactId") {
		t.Errorf("message %q, want %q naming contactId", body.Error.Message, want)
	}
	rec = h.postJSON("/message", demoToken, map[string]any{"channelId": "demo", "contactId": "60177872890",
		"message": map[string]any{"type": "text", "text": ""}})
	if msg := errorBody(t, rec).Error.Message; !strings.HasSuffix(msg, "(and 1 more problem, see details)") {
		t.Errorf("message %q does not count the other problem", msg)
	}
}

func TestMessageBasePathPrefixesTheRoute(t *testing.T) {
	h := newHarnessWith(t, func(c *Config) { c.BasePath = "/bony" }, &fakeProvider{})
	if rec := h.postJSON("/bony/message", demoToken, textRequest("demo", phoneContact, "hi")); rec.Code != 200 {
		t.Fatalf("/bony/message: want 200, got %d", rec.Code)
	}
	if rec := h.postJSON("/message", demoToken, textRequest("demo", phoneContact, "hi")); rec.Code != 404 {
		t.Fatalf("/message outside base_path: want 404, got %d", rec.Code)
	}
}

func TestUnknownRoutesAndMethods(t *testing.T) {
	h := newHarness(t, nil)
	cases := []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/nope", 404},
		{http.MethodPost, "/message/", 404},
		{http.MethodGet, "/message", 405},
		{http.MethodDelete, "/healthz", 405},
		{http.MethodPost, "/_demo/platform", 404}, // demo off by default
	}
	for _, tc := range cases {
		rec := h.do(tc.method, tc.path, demoToken, "application/json", []byte(`{}`))
		if rec.Code != tc.want {
			t.Errorf("%s %s: want %d, got %d", tc.method, tc.path, tc.want, rec.Code)
		}
		errorBody(t, rec)
	}
}

func TestMessageSendErrorsBecomeReadableAnswers(t *testing.T) {
	cases := []struct {
		name       string
		err        error
		want       int
		wantInMsg  string
		retryAfter string
	}{
		{"permanent", &providers.SendError{Kind: providers.Permanent, Reason: "+6012 is not a valid mobile number"}, 400, "+6012 is not a valid mobile number", ""},
		{"config names the channel", &providers.SendError{Kind: providers.Config, Reason: "credentials refused", Err: errors.New("auth " + demoToken)}, 502, "channel demo", ""},
		{"throttled: stored, retried in the background", &providers.SendError{Kind: providers.Throttled, Reason: "rate limited", RetryAfter: 1500 * time.Millisecond}, 200, "", ""},
		{"unreachable: stored, retried in the background", &providers.SendError{Kind: providers.Unreachable, Reason: "connection refused"}, 200, "", ""},
		{"ambiguous", &providers.SendError{Kind: providers.Ambiguous, Reason: "timeout after the request was sent"}, 502, "timeout after the request was sent; the message may have been sent", ""},
		{"untyped error is ambiguous", errors.New("boom"), 502, "the provider's answer was not understood; the message may have been sent", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarnessWith(t, nil, &fakeProvider{sendErr: tc.err})
			rec := h.postJSON("/message", demoToken, textRequest("demo", phoneContact, "hi"))
			if rec.Code != tc.want {
				t.Fatalf("want %d, got %d: %s", tc.want, rec.Code, rec.Body)
			}
			if tc.want != 200 {
				if msg := errorBody(t, rec).Error.Message; !strings.Contains(msg, tc.wantInMsg) {
					t.Errorf("message %q should contain %q", msg, tc.wantInMsg)
				}
			}
			if strings.Contains(rec.Body.String(), demoToken) || strings.Contains(h.logs.String(), demoToken) {
				t.Error("a secret reached the answer or the log")
			}
			if got := rec.Header().Get("Retry-After"); got != tc.retryAfter {
				t.Errorf("Retry-After: want %q, got %q", tc.retryAfter, got)
			}
		})
	}
}

func TestProviderPanicIsOutcomeUnknownAndLogged(t *testing.T) {
	h := newHarnessWith(t, nil, &fakeProvider{panics: true})
	rec := h.postJSON("/message", demoToken, textRequest("demo", phoneContact, "hi"))
	if rec.Code != http.StatusBadGateway || !strings.Contains(rec.Body.String(), "internal error in the provider; the message may have been sent") {
		t.Fatalf("want 502 saying the message may have been sent, got %d %s", rec.Code, rec.Body)
	}
	logs := h.logs.String()
	if !strings.Contains(logs, "provider panicked") || strings.Contains(logs, demoToken) {
		t.Error("the panic must be logged, with secrets redacted")
	}
}

func TestHandlerPanicBecomes500WithoutInternals(t *testing.T) {
	h := newHarness(t, nil)
	e := gin.New()
	e.Use(h.srv.requestLog, h.srv.recovery)
	e.GET("/boom", func(*gin.Context) { panic("secret " + demoToken) })
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/boom", nil))
	if rec.Code != http.StatusInternalServerError {
		t.Fatalf("want 500, got %d", rec.Code)
	}
	if msg := errorBody(t, rec).Error.Message; msg != "internal error" {
		t.Errorf("500 must not leak internals, got %q", msg)
	}
	if logs := h.logs.String(); !strings.Contains(logs, "panic while handling request") || strings.Contains(logs, demoToken) {
		t.Error("the panic must be logged, with secrets redacted")
	}
}

func newJSONRequest(path string, body []byte) *http.Request {
	req, _ := http.NewRequest(http.MethodPost, specHost+path, strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	return req
}

// TestMessageProtocolSamples sends every testdata/message sample through the
// HTTP handler: valid ones are accepted, invalid ones refused naming the
// expected field and rule (and each exchange is checked against openapi.yaml).
func TestMessageProtocolSamples(t *testing.T) {
	h := newHarnessWith(t, nil, &fakeProvider{})
	valid, _ := filepath.Glob("../testdata/message/valid/*.json")
	invalid, _ := filepath.Glob("../testdata/message/invalid/*.json")
	if len(valid) < 10 || len(invalid) < 12 {
		t.Fatalf("too few samples: %d valid, %d invalid", len(valid), len(invalid))
	}
	for _, path := range valid {
		t.Run("valid/"+filepath.Base(path), func(t *testing.T) {
			rec := h.do(http.MethodPost, "/message", demoToken, "application/json", mustRead(t, path))
			if rec.Code != http.StatusOK {
				t.Fatalf("want 200, got %d: %s", rec.Code, rec.Body)
			}
		})
	}
	for _, path := range invalid {
		if strings.HasSuffix(path, ".expect.json") {
			continue
		}
		t.Run("invalid/"+filepath.Base(path), func(t *testing.T) {
			var want struct {
				Status      int
				Field, Rule string
			}
			if err := json.Unmarshal(mustRead(t, strings.TrimSuffix(path, ".json")+".expect.json"), &want); err != nil {
				t.Fatal(err)
			}
			rec := h.do(http.MethodPost, "/message", demoToken, "application/json", mustRead(t, path))
			if rec.Code != want.Status {
				t.Fatalf("want %d, got %d: %s", want.Status, rec.Code, rec.Body)
			}
			if want.Field == "" {
				return
			}
			for _, d := range errorBody(t, rec).Error.Details {
				if d.Field == want.Field && d.Rule == want.Rule {
					return
				}
			}
			t.Errorf("want detail %s/%s, got %s", want.Field, want.Rule, rec.Body)
		})
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Every offending field is named at once: an unknown field does not hide
// a broken limit beside it (PROTOCOL: "names every offending field").
func TestMessageUnknownFieldAndBrokenLimitAreBothNamed(t *testing.T) {
	h := newHarness(t, nil)
	body := []byte(`{"channelId":"demo","contactId":"+60177872890","message":{"type":"text","text":"` +
		strings.Repeat("a", 7001) + `","extra":1}}`)
	rec := h.do(http.MethodPost, "/message", demoToken, "application/json", body)
	e := errorBody(t, rec)
	named := map[string]bool{}
	for _, d := range e.Error.Details {
		named[d.Field] = true
	}
	if !named["message.extra"] || !named["message.text"] {
		t.Fatalf("message.extra is unknown and message.text is over 7000; details name only %v", named)
	}
}

// A body over http.max_body_bytes is refused like any out-of-bounds input
// (PROTOCOL): 400, naming "body".
func TestMessageOversizeBodyIsA400NamingTheBody(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.HTTP.MaxBodyBytes = 4096 })
	body := []byte(`{"channelId":"demo","contactId":"+60177872890","message":{"type":"text","text":"` +
		strings.Repeat("a", 5000) + `"}}`)
	rec := h.do(http.MethodPost, "/message", demoToken, "application/json", body)
	if rec.Code != http.StatusBadRequest {
		t.Fatalf("a body over the size limit: want 400, got %d", rec.Code)
	}
	if d := errorBody(t, rec).Error.Details; len(d) != 1 || d[0].Field != "body" || d[0].Limit == nil || *d[0].Limit != 4096 {
		t.Fatalf("details %+v: want the body named, with its limit", d)
	}
}

// An empty fileName, or an empty description on a non-image, counts as
// none: the code takes them, and openapi.yaml agrees (the contract check
// of every exchange fails a 200 to a request the spec refuses).
func TestMessageEmptyAttachmentFieldsCountAsAbsent(t *testing.T) {
	for name, att := range map[string]map[string]any{
		"empty fileName":          {"type": "file", "url": "https://example.com/f.pdf", "fileName": ""},
		"empty description video": {"type": "video", "url": "https://example.com/v.mp4", "description": ""},
	} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, nil)
			rec := h.postJSON("/message", demoToken, map[string]any{"channelId": "demo", "contactId": phoneContact,
				"message": map[string]any{"type": "attachment", "attachment": att}})
			if rec.Code != http.StatusOK {
				t.Fatalf("%d %s", rec.Code, rec.Body)
			}
		})
	}
}

// A wrong JSON type does not hide the other problems: the missing
// contactId and the out-of-range longitude are named with it, each once.
func TestMessageWrongTypeDoesNotHideOtherProblems(t *testing.T) {
	h := newHarness(t, nil)
	rec := h.postJSON("/message", demoToken, map[string]any{"channelId": "demo",
		"message": map[string]any{"type": "location", "latitude": "3.1", "longitude": 500}})
	if rec.Code != http.StatusBadRequest {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	named := map[string]bool{}
	for _, d := range errorBody(t, rec).Error.Details {
		if named[d.Field] {
			t.Errorf("%s named twice", d.Field)
		}
		named[d.Field] = true
	}
	for _, f := range []string{"message.latitude", "contactId", "message.longitude"} {
		if !named[f] {
			t.Errorf("%s not named; details name %v", f, named)
		}
	}
}
