package twilio

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bonychat/bonychat-adapter/internal/contract"
	"github.com/bonychat/bonychat-adapter/internal/testkit"
	"github.com/bonychat/bonychat-adapter/providers"
	"github.com/bonychat/bonychat-adapter/schema"
)

// The test account. The SIDs are the ones in testdata/twilio.
const (
	hookAccount  = "AC6b1f3e0d9a2c47e58f1d3b6a9c0e2f47"
	hookToken    = "f3a9c1e7b5d2048e6a1c3b5d7e9f0a2b"
	hookOldToken = "0b2d4f6a8c1e3a5c7e9b1d3f5a7c9e1d"
	hookPublic   = "https://adapter.example.com"
	hookChannel  = "sms01"
	hookFrom     = "+15550001111"
	hookContact  = "+14155550123"
	hookWAUser   = "+447700900123"

	hookInbound = "/twilio/" + hookChannel + "/inbound"
	hookStatus  = "/twilio/" + hookChannel + "/status"

	hookSMSSid  = "SM9e4c2a1f7b3d5e8a0c6f2b4d1e3a5c7b"
	hookMMSSid  = "MM2f8d4b6a0c1e3f5a7b9d2c4e6f8a0b1c"
	hookLocSid  = "SM1b3d5f7a9c2e4a6c8e0f2b4d6a8c1e3f"
	hookBtnSid  = "SM8c0e2a4d6f8b1d3f5a7c9e1b3d5f7a9c"
	hookStopSid = "SM5a7c9e1d3f5b7d9f1a3c5e7b9d1f3a5c"
	hookMedia1  = "ME4a6c8e0b2d4f6a8c0e2b4d6f8a1c3e5d"
	hookMedia2  = "ME7d9f1b3c5e7a9d1f3b5c7e9a2d4f6b8c"

	// hookTwilioAPI is the media host in the testdata, rewritten to the fake.
	hookTwilioAPI = "https://api.twilio.com"
)

var (
	hookJPEG = []byte("\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00 jpeg body")
	hookPDF  = []byte("%PDF-1.4\n1 0 obj <<>> endobj\n%%EOF\n")
)

// hookSign signs a webhook exactly as Twilio does, written apart from
// signature.go: HMAC-SHA1 keyed by the auth token over the full URL and
// every posted name+value (names in byte order, a repeated name's values
// in order too), base64.
func hookSign(token, fullURL string, form url.Values) string {
	data := fullURL
	for _, name := range slices.Sorted(maps.Keys(form)) {
		for _, v := range slices.Sorted(slices.Values(form[name])) {
			data += name + v
		}
	}
	mac := hmac.New(sha1.New, []byte(token))
	mac.Write([]byte(data))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// hookIngester records every Inbound, checks that what it would post is
// valid for BonyChat, and posts a DedupeKey only once, like the adapter.
type hookIngester struct {
	t        *testing.T
	mu       sync.Mutex
	calls    []providers.Inbound
	posted   []providers.Inbound
	seen     map[string]bool
	err      error
	takenErr error
}

func (g *hookIngester) Ingest(_ context.Context, in providers.Inbound) ([]string, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.calls = append(g.calls, in)
	if g.err != nil {
		return nil, g.err
	}
	payload := schema.WebhookPayload{ChannelID: hookChannel, ContactID: in.ContactID,
		Events: schema.FitEvents(in.Events), Contact: schema.FitContact(in.Contact)}
	if err := schema.ValidatePayload(&payload, schema.IDTypePhone); err != nil {
		g.t.Errorf("BonyChat would refuse the inbound: %v\n%s", err, hookJSON(payload))
	}
	var ids []string
	for _, e := range in.Events {
		ids = append(ids, e.MID)
	}
	if in.DedupeKey != "" && g.seen[in.DedupeKey] {
		return ids, nil
	}
	g.seen[in.DedupeKey] = true
	g.posted = append(g.posted, in)
	return ids, nil
}

// Taken answers providers.InboundDedupe as the adapter does, from the
// dedupe keys taken; takenErr stands for a store that cannot be read.
func (g *hookIngester) Taken(_ context.Context, dedupeKey string) (bool, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.seen[dedupeKey], g.takenErr
}

func (g *hookIngester) snapshot() (calls, posted []providers.Inbound) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.calls), slices.Clone(g.posted)
}

// hookFile is one media item of the fake Twilio: its CDN answer.
type hookFile struct {
	ContentType string
	Body        []byte
	Disposition string
	Status      int // non-zero: the CDN answers this instead
}

// hookEnv is a provider behind a stand-in of the adapter's routes, with a
// fake Twilio media API (Basic auth, 302 to a CDN on another host) and a
// CDN that must never see the credentials.
type hookEnv struct {
	t        *testing.T
	p        *Provider
	records  *testkit.Records
	ingest   *hookIngester
	statuses *testkit.Statuses
	media    *testkit.Media
	logs     *testkit.LogBuffer
	client   *http.Client
	adapter  *httptest.Server
	api      *httptest.Server
	cdn      *httptest.Server

	filesMu   sync.Mutex
	files     map[string]hookFile
	apiHits   atomic.Int32
	badAuth   atomic.Int32
	cdnHits   atomic.Int32
	cdnLeaked atomic.Int32 // CDN requests that carried credentials
}

// hookMaxBody is the stand-in's body cap (the adapter's MaxBytesReader).
const hookMaxBody = 64 << 10

func newHookEnv(t *testing.T, mutate ...func(*Config, *providers.Deps)) *hookEnv {
	t.Helper()
	e := &hookEnv{
		t:        t,
		records:  testkit.NewRecords(),
		ingest:   &hookIngester{t: t, seen: map[string]bool{}},
		statuses: &testkit.Statuses{},
		media:    &testkit.Media{BaseURL: "https://pub.example"},
		client:   &http.Client{Transport: testkit.NewLocalOnlyTransport()},
		files: map[string]hookFile{
			hookMedia1: {ContentType: "image/jpeg", Body: hookJPEG},
			hookMedia2: {ContentType: "application/pdf", Body: hookPDF, Disposition: `inline; filename="receipt.pdf"`},
		},
	}
	e.cdn = httptest.NewServer(http.HandlerFunc(e.serveCDN))
	t.Cleanup(e.cdn.Close)
	e.api = httptest.NewServer(http.HandlerFunc(e.serveMediaAPI))
	t.Cleanup(e.api.Close)

	log, buf := testkit.NewLogger()
	e.logs = buf
	// The media API stands for Twilio's API host: the account's credentials
	// go to api_url only.
	cfg := Config{AccountSID: hookAccount, AuthToken: hookToken, PreviousAuthToken: hookOldToken, From: hookFrom,
		APIURL: e.api.URL}
	deps := providers.Deps{
		ChannelID: hookChannel,
		IDType:    schema.IDTypePhone,
		PublicURL: hookPublic,
		Log:       log,
		Ingest:    e.ingest,
		Statuses:  e.statuses,
		Media:     e.media,
		Fetcher:   providers.NewFetcher(providers.FetchConfig{AllowPrivateNetworks: true, Timeout: 5 * time.Second}),
		Records:   e.records,
		Transport: testkit.NewLocalOnlyTransport(),
	}
	for _, m := range mutate {
		m(&cfg, &deps)
	}
	if problems := cfg.Problems(); len(problems) > 0 {
		t.Fatalf("test config: %v", problems)
	}
	p, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	e.p = p

	mux := http.NewServeMux()
	for _, rt := range p.Routes() {
		if rt.BearerAuth {
			t.Fatalf("route %s must verify Twilio's signature, not a bearer token", rt.Action)
		}
		mux.HandleFunc(rt.Method+" /twilio/{channelId}/"+rt.Action, func(w http.ResponseWriter, r *http.Request) {
			r.Body = http.MaxBytesReader(w, r.Body, hookMaxBody)
			rt.Handler(w, r)
		})
	}
	e.adapter = httptest.NewServer(contract.Handler(t, mux)) // every exchange checked against openapi.yaml
	t.Cleanup(e.adapter.Close)
	t.Cleanup(func() {
		for _, secret := range []string{hookToken, hookOldToken} {
			if strings.Contains(e.logs.String(), secret) {
				t.Errorf("an auth token was logged:\n%s", e.logs.String())
			}
		}
	})
	return e
}

// serveMediaAPI is Twilio's media URL: Basic auth with the account SID and
// auth token, then a redirect to the CDN (another host, with a signed query).
func (e *hookEnv) serveMediaAPI(w http.ResponseWriter, r *http.Request) {
	e.apiHits.Add(1)
	user, pass, ok := r.BasicAuth()
	if !ok || user != hookAccount || pass != hookToken {
		e.badAuth.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"code":20003,"message":"Authenticate","more_info":"https://www.twilio.com/docs/errors/20003","status":401}`)
		return
	}
	sid := r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
	http.Redirect(w, r, e.cdn.URL+"/v1/"+sid+"?Expires=1736942400&Signature=c2lnbmVk&Key-Pair-Id=K2JCJMDEHXQW5F", http.StatusFound)
}

func (e *hookEnv) serveCDN(w http.ResponseWriter, r *http.Request) {
	e.cdnHits.Add(1)
	if r.Header.Get("Authorization") != "" {
		e.cdnLeaked.Add(1)
	}
	e.filesMu.Lock()
	f, ok := e.files[strings.TrimPrefix(r.URL.Path, "/v1/")]
	e.filesMu.Unlock()
	switch {
	case !ok:
		http.NotFound(w, r)
		return
	case f.Status != 0:
		w.WriteHeader(f.Status)
		return
	}
	if f.ContentType != "" {
		w.Header().Set("Content-Type", f.ContentType)
	}
	if f.Disposition != "" {
		w.Header().Set("Content-Disposition", f.Disposition)
	}
	_, _ = w.Write(f.Body)
}

func (e *hookEnv) addFile(sid string, f hookFile) {
	e.filesMu.Lock()
	defer e.filesMu.Unlock()
	e.files[sid] = f
}

// mediaURL is the fake's URL of a media item, shaped like Twilio's.
func (e *hookEnv) mediaURL(messageSid, mediaSid string) string {
	return e.api.URL + "/2010-04-01/Accounts/" + hookAccount + "/Messages/" + messageSid + "/Media/" + mediaSid
}

// testdata reads a testdata payload: the exact body Twilio posts. Media
// URLs are pointed at the fake media API (still Twilio's path).
func (e *hookEnv) testdata(name string) string {
	e.t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "testdata", "twilio", name))
	if err != nil {
		e.t.Fatal(err)
	}
	body := strings.TrimRight(string(raw), "\r\n")
	if _, err := url.ParseQuery(body); err != nil {
		e.t.Fatalf("%s is not a form body: %v", name, err)
	}
	body = strings.ReplaceAll(body, url.QueryEscape(hookTwilioAPI), url.QueryEscape(e.api.URL))
	form, _ := url.ParseQuery(body)
	for k, v := range form {
		if strings.HasPrefix(k, "MediaUrl") && !strings.HasPrefix(v[0], e.api.URL) {
			e.t.Fatalf("%s: %s would leave the machine: %s", name, k, v[0])
		}
	}
	return body
}

type hookResponse struct {
	Status      int
	ContentType string
	Body        string
}

// post sends body to the stand-in adapter with the given signature header
// ("" for none); edit may change the request (headers, Host).
func (e *hookEnv) post(target, body, signature string, edit ...func(*http.Request)) hookResponse {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.adapter.URL+target, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", "TwilioProxy/1.1")
	req.Header.Set("I-Twilio-Idempotency-Token", "b8d1ba3c-2f1e-4c8a-9d6e-0f1a2b3c4d5e")
	if signature != "" {
		req.Header.Set(SignatureHeader, signature)
	}
	for _, f := range edit {
		f(req)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return hookResponse{resp.StatusCode, resp.Header.Get("Content-Type"), string(b)}
}

// postSigned signs body with the auth token over the public URL, as Twilio.
func (e *hookEnv) postSigned(target, body string) hookResponse {
	e.t.Helper()
	return e.post(target, body, e.sign(hookToken, hookPublic+target, body))
}

func (e *hookEnv) sign(token, fullURL, body string) string {
	e.t.Helper()
	form, err := url.ParseQuery(body)
	if err != nil {
		e.t.Fatal(err)
	}
	return hookSign(token, fullURL, form)
}

func (e *hookEnv) optedOut(contact string) bool {
	e.t.Helper()
	out, err := e.p.optedOut(context.Background(), contact)
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

func (e *hookEnv) setOptedOut(contact string) {
	e.t.Helper()
	if err := e.p.setOptOut(context.Background(), contact, true); err != nil {
		e.t.Fatal(err)
	}
}

func (e *hookEnv) offer(contact string, expires time.Time, options ...string) {
	e.t.Helper()
	memo := quickReplyMemo{Options: options, Expires: expires}
	if err := e.p.putJSON(context.Background(), nsQuickReply, e.p.quickReplyKey(contact), memo, time.Time{}); err != nil {
		e.t.Fatal(err)
	}
}

// onlyInbound is the one Inbound posted so far.
func (e *hookEnv) onlyInbound() providers.Inbound {
	e.t.Helper()
	_, posted := e.ingest.snapshot()
	if len(posted) != 1 {
		e.t.Fatalf("want 1 inbound posted, got %d: %s", len(posted), hookJSON(posted))
	}
	return posted[0]
}

func hookAssertTwiML(t *testing.T, r hookResponse) {
	t.Helper()
	if r.Status != http.StatusOK {
		t.Fatalf("status %d, body %s", r.Status, r.Body)
	}
	if mt := strings.TrimSpace(strings.Split(r.ContentType, ";")[0]); mt != "text/xml" {
		t.Fatalf("Content-Type %q: Twilio needs text/xml (text/plain would be texted to the contact)", r.ContentType)
	}
	if r.Body != `<?xml version="1.0" encoding="UTF-8"?><Response/>` {
		t.Fatalf("body %q, want the empty TwiML response", r.Body)
	}
}

func hookAssertError(t *testing.T, r hookResponse, status int) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d; body %s", r.Status, status, r.Body)
	}
	var body providers.ErrorBody
	if !providers.IsJSON(r.ContentType) || json.Unmarshal([]byte(r.Body), &body) != nil || body.Error.Message == "" {
		t.Fatalf("want the JSON error shape, got %q %s", r.ContentType, r.Body)
	}
}

func hookJSON(v any) string {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

func hookText(s string) *schema.Message { return schema.TextMessage(s) }

func hookPtr[T any](v T) *T { return &v }

// hookStrip checks that every event has a timestamp and clears it
// for comparison.
func hookStrip(t *testing.T, events []schema.Event) []schema.Event {
	t.Helper()
	out := slices.Clone(events)
	for i := range out {
		if out[i].Timestamp <= 0 || out[i].Type != schema.EventMessage {
			t.Fatalf("event %d: type %q timestamp %d", i, out[i].Type, out[i].Timestamp)
		}
		out[i].Timestamp = 0
	}
	return out
}

func hookEvent(mid string, m *schema.Message) schema.Event {
	return schema.Event{Type: schema.EventMessage, MID: mid, Message: m}
}

// hookSMSForm is a minimal real-shaped SMS webhook from the test contact.
func hookSMSForm(sid, body string) url.Values {
	return url.Values{
		"ToCountry": {"US"}, "SmsMessageSid": {sid}, "NumMedia": {"0"}, "SmsSid": {sid}, "SmsStatus": {"received"},
		"Body": {body}, "FromCountry": {"US"}, "To": {hookFrom}, "NumSegments": {"1"}, "MessageSid": {sid},
		"AccountSid": {hookAccount}, "From": {hookContact}, "ApiVersion": {"2010-04-01"},
	}
}

func TestInbound_TestdataPayloadsBecomeEvents(t *testing.T) {
	cases := []struct {
		file    string
		contact string
		events  func(e *hookEnv) []schema.Event
		profile *schema.Contact
		saved   []testkit.SavedMedia
		optOut  bool
	}{
		{
			file: "sms.form", contact: hookContact,
			events: func(*hookEnv) []schema.Event {
				return []schema.Event{hookEvent(hookSMSSid, hookText("Hi, is my order #1042 ready for pickup?"))}
			},
			profile: &schema.Contact{Phone: hookContact, CountryCode: "US"},
		},
		{
			file: "mms-two-media.form", contact: hookContact,
			events: func(*hookEnv) []schema.Event {
				return []schema.Event{
					hookEvent(hookMMSSid, hookText("Here is the damaged box and the receipt")),
					hookEvent(hookMMSSid+"-1", &schema.Message{Type: "attachment", Attachment: &schema.Attachment{Type: "image",
						URL: "https://pub.example/media/1/" + hookMMSSid + "-1.jpg", MimeType: "image/jpeg", FileName: hookMMSSid + "-1.jpg"}}),
					hookEvent(hookMMSSid+"-2", &schema.Message{Type: "attachment", Attachment: &schema.Attachment{Type: "file",
						URL: "https://pub.example/media/2/" + hookMMSSid + "-2.pdf", MimeType: "application/pdf", FileName: hookMMSSid + "-2.pdf"}}),
				}
			},
			profile: &schema.Contact{Phone: hookContact, CountryCode: "US"},
			saved: []testkit.SavedMedia{
				{Name: hookMMSSid + "-1.jpg", ContentType: "image/jpeg", Body: hookJPEG},
				{Name: hookMMSSid + "-2.pdf", ContentType: "application/pdf", Body: hookPDF},
			},
		},
		{
			file: "whatsapp-location.form", contact: hookWAUser,
			events: func(*hookEnv) []schema.Event {
				return []schema.Event{hookEvent(hookLocSid, &schema.Message{Type: "location",
					Latitude: hookPtr(51.5033635), Longitude: hookPtr(-0.1276248), Address: hookPtr("10 Downing Street, London SW1A 2AA")})}
			},
			profile: &schema.Contact{FirstName: "Jane", LastName: "van der Berg", Phone: hookWAUser},
		},
		{
			file: "whatsapp-button.form", contact: hookWAUser,
			events: func(*hookEnv) []schema.Event {
				return []schema.Event{hookEvent(hookBtnSid, hookText("Yes, confirm"))}
			},
			profile: &schema.Contact{FirstName: "Jane", LastName: "van der Berg", Phone: hookWAUser},
		},
		{
			file: "stop.form", contact: hookContact,
			events: func(*hookEnv) []schema.Event {
				return []schema.Event{hookEvent(hookStopSid, hookText("Stop"))}
			},
			profile: &schema.Contact{Phone: hookContact, CountryCode: "US"},
			optOut:  true,
		},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			e := newHookEnv(t)
			hookAssertTwiML(t, e.postSigned(hookInbound, e.testdata(tc.file)))
			in := e.onlyInbound()
			form, _ := url.ParseQuery(e.testdata(tc.file))
			if in.DedupeKey != form.Get("MessageSid") || in.ContactID != tc.contact {
				t.Fatalf("dedupe key %q contact %q, want %q %q", in.DedupeKey, in.ContactID, form.Get("MessageSid"), tc.contact)
			}
			if got, want := hookStrip(t, in.Events), tc.events(e); !reflect.DeepEqual(got, want) {
				t.Fatalf("events:\n%s\nwant:\n%s", hookJSON(got), hookJSON(want))
			}
			if !reflect.DeepEqual(in.Contact, tc.profile) {
				t.Fatalf("contact %s, want %s", hookJSON(in.Contact), hookJSON(tc.profile))
			}
			if got := e.media.Saved(); (len(got) > 0 || len(tc.saved) > 0) && !reflect.DeepEqual(got, tc.saved) {
				t.Fatalf("media saved %+v, want %+v", got, tc.saved)
			}
			if got := e.optedOut(tc.contact); got != tc.optOut {
				t.Fatalf("opted out = %v, want %v", got, tc.optOut)
			}
		})
	}
}

func TestInbound_MediaIsFetchedWithBasicAuthAndTheCDNNeverSeesIt(t *testing.T) {
	e := newHookEnv(t)
	hookAssertTwiML(t, e.postSigned(hookInbound, e.testdata("mms-two-media.form")))
	if e.apiHits.Load() != 2 || e.badAuth.Load() != 0 {
		t.Fatalf("media API: %d requests, %d without the account's credentials", e.apiHits.Load(), e.badAuth.Load())
	}
	if e.cdnHits.Load() != 2 {
		t.Fatalf("the redirect to the CDN was not followed: %d CDN requests", e.cdnHits.Load())
	}
	if n := e.cdnLeaked.Load(); n != 0 {
		t.Fatalf("%d CDN requests carried the account's credentials", n)
	}
}

func TestInbound_MediaTypeAndFileName(t *testing.T) {
	cases := []struct {
		name       string
		posted     string // MediaContentType0; "" for none
		file       hookFile
		wantType   string
		wantMime   string
		wantSuffix string
	}{
		{"jpeg is an image named .jpg", "image/jpeg", hookFile{ContentType: "image/jpeg", Body: hookJPEG}, "image", "image/jpeg", ".jpg"},
		{"png", "image/png", hookFile{ContentType: "image/png", Body: []byte("\x89PNG\r\n\x1a\npng")}, "image", "image/png", ".png"},
		{"gif", "image/gif", hookFile{ContentType: "image/gif", Body: []byte("GIF89a")}, "image", "image/gif", ".gif"},
		{"mp4 is a video", "video/mp4", hookFile{ContentType: "video/mp4", Body: []byte("mp4")}, "video", "video/mp4", ".mp4"},
		{"3gpp video", "video/3gpp", hookFile{ContentType: "video/3gpp", Body: []byte("3gp")}, "video", "video/3gpp", ".3gp"},
		{"ogg voice note is audio", "audio/ogg", hookFile{ContentType: "audio/ogg", Body: []byte("OggS")}, "audio", "audio/ogg", ".ogg"},
		{"amr audio", "audio/amr", hookFile{ContentType: "audio/amr", Body: []byte("#!AMR")}, "audio", "audio/amr", ".amr"},
		{"vcard is a file", "text/vcard", hookFile{ContentType: "text/vcard", Body: []byte("BEGIN:VCARD")}, "file", "text/vcard", ".vcf"},
		{"pdf is a file", "application/pdf", hookFile{ContentType: "application/pdf", Body: hookPDF}, "file", "application/pdf", ".pdf"},
		{"docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
			hookFile{ContentType: "application/octet-stream", Body: []byte("PK\x03\x04")},
			"file", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", ".docx"},
		{"posted type with parameters, any case", "Image/JPEG; charset=binary", hookFile{ContentType: "image/jpeg", Body: hookJPEG},
			"image", "image/jpeg", ".jpg"},
		{"no posted type: the download's", "", hookFile{ContentType: "image/png", Body: []byte("\x89PNG\r\n\x1a\npng")}, "image", "image/png", ".png"},
		{"unknown type: the downloaded file's extension", "application/x-bonychat-test",
			hookFile{ContentType: "application/x-bonychat-test", Body: []byte("x"), Disposition: `attachment; filename="data.XYZ"`},
			"file", "application/x-bonychat-test", ".xyz"},
		{"unknown type, no name: .bin", "application/x-bonychat-test", hookFile{ContentType: "application/x-bonychat-test", Body: []byte("x")},
			"file", "application/x-bonychat-test", ".bin"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newHookEnv(t)
			const sid, media = "MM00000000000000000000000000000001", "ME00000000000000000000000000000001"
			e.addFile(media, tc.file)
			form := hookSMSForm(sid, "")
			form.Set("NumMedia", "1")
			form.Set("MediaUrl0", e.mediaURL(sid, media))
			if tc.posted != "" {
				form.Set("MediaContentType0", tc.posted)
			}
			hookAssertTwiML(t, e.postSigned(hookInbound, form.Encode()))
			in := e.onlyInbound()
			wantName := sid + "-1" + tc.wantSuffix
			want := []schema.Event{hookEvent(sid+"-1", &schema.Message{Type: "attachment", Attachment: &schema.Attachment{
				Type: tc.wantType, URL: "https://pub.example/media/1/" + wantName, MimeType: tc.wantMime, FileName: wantName}})}
			if got := hookStrip(t, in.Events); !reflect.DeepEqual(got, want) {
				t.Fatalf("events:\n%s\nwant:\n%s", hookJSON(got), hookJSON(want))
			}
			saved := e.media.Saved()
			if len(saved) != 1 || saved[0].Name != wantName || saved[0].ContentType != tc.wantMime || string(saved[0].Body) != string(tc.file.Body) {
				t.Fatalf("saved %+v", saved)
			}
		})
	}
}

func TestInbound_MediaThatCannotBeFetchedBecomesANoteAndTheMessageIsKept(t *testing.T) {
	cases := []struct {
		name  string
		setup func(e *hookEnv) string // returns MediaUrl1
	}{
		{"CDN answers 404", func(e *hookEnv) string {
			e.addFile("MEbroken0000000000000000000000000", hookFile{Status: http.StatusNotFound})
			return e.mediaURL(hookMMSSid, "MEbroken0000000000000000000000000")
		}},
		{"CDN answers 500", func(e *hookEnv) string {
			e.addFile("MEbroken0000000000000000000000000", hookFile{Status: http.StatusInternalServerError})
			return e.mediaURL(hookMMSSid, "MEbroken0000000000000000000000000")
		}},
		{"host refuses connections", func(e *hookEnv) string {
			dead := httptest.NewServer(http.NotFoundHandler())
			dead.Close()
			return dead.URL + "/2010-04-01/Accounts/" + hookAccount + "/Messages/" + hookMMSSid + "/Media/MEdead"
		}},
		{"MediaUrl missing", func(*hookEnv) string { return "" }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newHookEnv(t)
			form := hookSMSForm(hookMMSSid, "Two photos")
			form.Set("NumMedia", "2")
			form.Set("MediaUrl0", e.mediaURL(hookMMSSid, hookMedia1))
			form.Set("MediaContentType0", "image/jpeg")
			if u := tc.setup(e); u != "" {
				form.Set("MediaUrl1", u)
			}
			form.Set("MediaContentType1", "image/png")
			hookAssertTwiML(t, e.postSigned(hookInbound, form.Encode()))
			events := hookStrip(t, e.onlyInbound().Events)
			if len(events) != 3 || events[0].MID != hookMMSSid || events[1].MID != hookMMSSid+"-1" ||
				events[1].Message.Type != "attachment" || events[2].MID != hookMMSSid+"-2" || events[2].Message.Type != "text" {
				t.Fatalf("events:\n%s", hookJSON(events))
			}
			note := *events[2].Message.Text
			for _, part := range []string{"image/png", "could not be downloaded", hookMMSSid, "item 2"} {
				if !strings.Contains(note, part) {
					t.Errorf("note %q does not mention %q", note, part)
				}
			}
			if !strings.Contains(e.logs.String(), "twilio media could not be downloaded") {
				t.Errorf("the failure was not logged:\n%s", e.logs.String())
			}
		})
	}
}

func TestInbound_MediaStoreFailureAnswers503AndPostsNothing(t *testing.T) {
	e := newHookEnv(t)
	e.media.Fail(errors.New("disk full"))
	r := e.postSigned(hookInbound, e.testdata("mms-two-media.form"))
	hookAssertError(t, r, http.StatusServiceUnavailable)
	if calls, _ := e.ingest.snapshot(); len(calls) != 0 {
		t.Fatalf("ingested %d", len(calls))
	}
}

// Ingest gets the links of the media saved for the message (and only
// those) in Inbound.Media: it removes them if it does not store the events.
func TestInbound_SavedMediaAreHandedToIngest(t *testing.T) {
	e := newHookEnv(t)
	hookAssertTwiML(t, e.postSigned(hookInbound, e.testdata("mms-two-media.form")))
	in := e.onlyInbound()
	var links []string
	for _, ev := range in.Events {
		if ev.Message.Attachment != nil {
			links = append(links, ev.Message.Attachment.URL)
		}
	}
	if len(links) != 2 || !slices.Equal(in.Media, links) {
		t.Fatalf("Inbound.Media %q, want the two saved links %q", in.Media, links)
	}
	if d := e.media.Discarded(); len(d) != 0 {
		t.Fatalf("a stored message's media were discarded: %q", d)
	}
}

// A message the provider gives up before Ingest (its second media item
// cannot be saved, its opt-out cannot be recorded) is answered 503; the
// media saved for it are removed, as nothing will link them and Twilio's
// redelivery saves its own.
func TestInbound_MediaOfAMessageGivenUpBeforeIngestAreDiscarded(t *testing.T) {
	cases := []struct {
		name  string
		setup func(e *hookEnv) string // the form body
		saved int
	}{
		{"the second media item cannot be saved", func(e *hookEnv) string {
			e.media.FailAfter(1, errors.New("disk full"))
			return e.testdata("mms-two-media.form")
		}, 1},
		{"the opt-out cannot be recorded", func(e *hookEnv) string {
			e.records.FailPuts(nsOptOut, errors.New("database is locked"))
			form, _ := url.ParseQuery(e.testdata("mms-two-media.form"))
			form.Set("Body", "STOP")
			return form.Encode()
		}, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newHookEnv(t)
			hookAssertError(t, e.postSigned(hookInbound, tc.setup(e)), http.StatusServiceUnavailable)
			if calls, _ := e.ingest.snapshot(); len(calls) != 0 {
				t.Fatalf("ingested %d", len(calls))
			}
			saved := e.media.Saved()
			var links []string
			for i, m := range saved {
				links = append(links, fmt.Sprintf("%s/media/%d/%s", e.media.BaseURL, i+1, url.PathEscape(m.Name)))
			}
			if len(saved) != tc.saved || !slices.Equal(e.media.Discarded(), links) {
				t.Fatalf("saved %d (%q), discarded %q: want the %d saved discarded", len(saved), links, e.media.Discarded(), tc.saved)
			}
		})
	}
}

func TestInbound_RefusesUnsignedOrMissignedRequestsAndStoresNothing(t *testing.T) {
	body := func(e *hookEnv) string { return e.testdata("mms-two-media.form") }
	cases := []struct {
		name string
		sig  func(e *hookEnv) string
		edit func(r *http.Request)
	}{
		{"no signature", func(*hookEnv) string { return "" }, nil},
		{"signed with another token", func(e *hookEnv) string {
			return e.sign("ffffffffffffffffffffffffffffffff", hookPublic+hookInbound, body(e))
		}, nil},
		{"signature of another body", func(e *hookEnv) string {
			return e.sign(hookToken, hookPublic+hookInbound, e.testdata("sms.form"))
		}, nil},
		{"signed over http instead of https", func(e *hookEnv) string {
			return e.sign(hookToken, "http://adapter.example.com"+hookInbound, body(e))
		}, nil},
		{"signed over another channel's path", func(e *hookEnv) string {
			return e.sign(hookToken, hookPublic+"/twilio/other/inbound", body(e))
		}, nil},
		{"signed over the URL the Host and X-Forwarded headers claim", func(e *hookEnv) string {
			return e.sign(hookToken, "https://evil.example"+hookInbound, body(e))
		}, func(r *http.Request) {
			r.Host = "evil.example"
			r.Header.Set("X-Forwarded-Host", "evil.example")
			r.Header.Set("X-Forwarded-Proto", "https")
			r.Header.Set("Forwarded", "host=evil.example;proto=https")
		}},
		{"signed over the loopback URL actually requested", func(e *hookEnv) string {
			return e.sign(hookToken, e.adapter.URL+hookInbound, body(e))
		}, nil},
		{"garbage signature", func(*hookEnv) string { return "not-a-signature" }, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newHookEnv(t)
			var edits []func(*http.Request)
			if tc.edit != nil {
				edits = append(edits, tc.edit)
			}
			r := e.post(hookInbound, body(e), tc.sig(e), edits...)
			hookAssertError(t, r, http.StatusForbidden)
			calls, _ := e.ingest.snapshot()
			if len(calls) != 0 || e.apiHits.Load() != 0 || len(e.media.Saved()) != 0 || len(e.records.Puts()) != 0 {
				t.Fatalf("something happened for a refused request: %d ingests, %d media fetches, %d saves, %d records",
					len(calls), e.apiHits.Load(), len(e.media.Saved()), len(e.records.Puts()))
			}
		})
	}
}

func TestInbound_AcceptsTheRotatedPreviousToken(t *testing.T) {
	e := newHookEnv(t)
	body := e.testdata("sms.form")
	hookAssertTwiML(t, e.post(hookInbound, body, e.sign(hookOldToken, hookPublic+hookInbound, body)))
	e.onlyInbound()
}

func TestInbound_RefusesAddressesThatAreNotPhoneNumbers(t *testing.T) {
	cases := []struct{ name, from string }{
		{"no From", ""},
		{"not E.164", "4155550123"},
		{"messenger address", "messenger:1234567890"},
		{"short code with prefix", "whatsapp:12345abc"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newHookEnv(t)
			form := hookSMSForm(hookSMSSid, "hello")
			form.Set("From", tc.from)
			hookAssertError(t, e.postSigned(hookInbound, form.Encode()), http.StatusBadRequest)
			if calls, _ := e.ingest.snapshot(); len(calls) != 0 {
				t.Fatal("ingested")
			}
		})
	}
}

func TestInbound_RefusesAMissingMessageSid(t *testing.T) {
	e := newHookEnv(t)
	form := hookSMSForm(hookSMSSid, "hello")
	form.Del("MessageSid")
	hookAssertError(t, e.postSigned(hookInbound, form.Encode()), http.StatusBadRequest)
}

func TestInbound_WhatsAppPrefixIsStrippedFromTheContact(t *testing.T) {
	e := newHookEnv(t)
	form := hookSMSForm(hookSMSSid, "hola")
	form.Set("From", "whatsapp:"+hookWAUser)
	form.Set("To", "whatsapp:+14155238886")
	hookAssertTwiML(t, e.postSigned(hookInbound, form.Encode()))
	if in := e.onlyInbound(); in.ContactID != hookWAUser || in.Contact.Phone != hookWAUser {
		t.Fatalf("contact %q phone %q", in.ContactID, in.Contact.Phone)
	}
}

func TestInbound_DuplicateDeliveryCarriesTheSameDedupeKeyAndTheSameAnswer(t *testing.T) {
	cases := []struct {
		name     string
		takenErr error // the ingester cannot tell whether it took the message
		ingests  int
	}{
		{"redeliveries are answered at once: the ingester took the message", nil, 1},
		{"the ingester cannot tell: its own dedupe still holds", errors.New("disk I/O error"), 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newHookEnv(t)
			e.ingest.takenErr = tc.takenErr
			body := e.testdata("sms.form")
			for range 3 { // Twilio's retry, then the fallback URL
				hookAssertTwiML(t, e.postSigned(hookInbound, body))
			}
			calls, posted := e.ingest.snapshot()
			if len(calls) != tc.ingests || len(posted) != 1 {
				t.Fatalf("%d ingests, %d posted; want %d, 1", len(calls), len(posted), tc.ingests)
			}
			for _, c := range calls {
				if c.DedupeKey != hookSMSSid {
					t.Fatalf("dedupe key %q", c.DedupeKey)
				}
			}
		})
	}
}

func TestInbound_RedeliveredMediaIsNotDownloadedAgain(t *testing.T) {
	t.Run("taken the first time", func(t *testing.T) {
		e := newHookEnv(t)
		body := e.testdata("mms-two-media.form")
		hookAssertTwiML(t, e.postSigned(hookInbound, body))
		hookAssertTwiML(t, e.postSigned(hookInbound, body)) // Twilio's retry
		calls, posted := e.ingest.snapshot()
		if e.apiHits.Load() != 2 || e.cdnHits.Load() != 2 || len(e.media.Saved()) != 2 {
			t.Fatalf("media API %d, CDN %d requests, %d saved: want each item once",
				e.apiHits.Load(), e.cdnHits.Load(), len(e.media.Saved()))
		}
		if len(calls) != 1 || len(posted) != 1 {
			t.Fatalf("%d ingests, %d posted", len(calls), len(posted))
		}
	})
	t.Run("refused the first time: the redelivery goes the full way", func(t *testing.T) {
		e := newHookEnv(t)
		body := e.testdata("mms-two-media.form")
		e.ingest.err = &providers.IngestError{Status: http.StatusServiceUnavailable, Message: "events could not be stored; try again"}
		hookAssertError(t, e.postSigned(hookInbound, body), http.StatusServiceUnavailable)
		e.ingest.mu.Lock()
		e.ingest.err = nil
		e.ingest.mu.Unlock()
		hookAssertTwiML(t, e.postSigned(hookInbound, body))
		if _, posted := e.ingest.snapshot(); len(posted) != 1 || len(posted[0].Events) != 3 {
			t.Fatalf("posted %s", hookJSON(posted))
		}
		if e.apiHits.Load() != 4 {
			t.Fatalf("media API %d requests, want 4 (the refused delivery's media are fetched again)", e.apiHits.Load())
		}
	})
}

func TestInbound_IngestFailureAnswersItsStatusSoTwilioRetries(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want int
	}{
		{"store unavailable", &providers.IngestError{Status: http.StatusServiceUnavailable, Message: "events could not be stored; try again"},
			http.StatusServiceUnavailable},
		{"plain error", errors.New("boom"), http.StatusServiceUnavailable},
		{"refused", &providers.IngestError{Status: http.StatusBadRequest, Message: "invalid"}, http.StatusBadRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newHookEnv(t)
			e.ingest.err = tc.err
			hookAssertError(t, e.postSigned(hookInbound, e.testdata("sms.form")), tc.want)
		})
	}
}

func TestInbound_RecordsUnavailableAnswers503(t *testing.T) {
	e := newHookEnv(t)
	e.records.FailGets("", errors.New("database is locked"))
	hookAssertError(t, e.postSigned(hookInbound, e.testdata("sms.form")), http.StatusServiceUnavailable)
	if calls, _ := e.ingest.snapshot(); len(calls) != 0 {
		t.Fatal("ingested")
	}
}

func TestInbound_OversizedBodyIs413(t *testing.T) {
	e := newHookEnv(t)
	form := hookSMSForm(hookSMSSid, strings.Repeat("x", hookMaxBody))
	hookAssertError(t, e.postSigned(hookInbound, form.Encode()), http.StatusRequestEntityTooLarge)
}

func TestInbound_WhatsAppButtonAndBody(t *testing.T) {
	cases := []struct {
		name, body, button string
		want               []schema.Event
	}{
		{"button only", "", "Track my order", []schema.Event{hookEvent(hookBtnSid, hookText("Track my order"))}},
		{"button equal to body: once", "Track my order", "Track my order", []schema.Event{hookEvent(hookBtnSid, hookText("Track my order"))}},
		{"button differing from body: both", "hi", "Track my order",
			[]schema.Event{hookEvent(hookBtnSid, hookText("hi")), hookEvent(hookBtnSid+"-button", hookText("Track my order"))}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newHookEnv(t)
			form := hookSMSForm(hookBtnSid, tc.body)
			form.Set("From", "whatsapp:"+hookWAUser)
			form.Set("ButtonText", tc.button)
			form.Set("ButtonPayload", "track")
			form.Set("MessageType", "button")
			hookAssertTwiML(t, e.postSigned(hookInbound, form.Encode()))
			if got := hookStrip(t, e.onlyInbound().Events); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("events:\n%s", hookJSON(got))
			}
		})
	}
}

func TestInbound_WhatsAppLocation(t *testing.T) {
	cases := []struct {
		name   string
		fields map[string]string
		want   []schema.Event
	}{
		{"address from Label when there is no Address",
			map[string]string{"Latitude": "3.1390", "Longitude": "101.6869", "Label": "KLCC Park"},
			[]schema.Event{hookEvent(hookLocSid, &schema.Message{Type: "location", Latitude: hookPtr(3.139), Longitude: hookPtr(101.6869), Address: hookPtr("KLCC Park")})}},
		{"no address at all",
			map[string]string{"Latitude": "-33.8568", "Longitude": "151.2153"},
			[]schema.Event{hookEvent(hookLocSid, &schema.Message{Type: "location", Latitude: hookPtr(-33.8568), Longitude: hookPtr(151.2153)})}},
		{"a body besides the location",
			map[string]string{"Latitude": "0", "Longitude": "0", "Body": "meet here", "Address": "Null Island"},
			[]schema.Event{hookEvent(hookLocSid, hookText("meet here")),
				hookEvent(hookLocSid+"-location", &schema.Message{Type: "location", Latitude: hookPtr(0.0), Longitude: hookPtr(0.0), Address: hookPtr("Null Island")})}},
		{"a body repeating the label is not a second event",
			map[string]string{"Latitude": "1.5", "Longitude": "2.5", "Body": "Cafe Ole", "Label": "Cafe Ole"},
			[]schema.Event{hookEvent(hookLocSid, &schema.Message{Type: "location", Latitude: hookPtr(1.5), Longitude: hookPtr(2.5), Address: hookPtr("Cafe Ole")})}},
		{"coordinates out of range are left out, the text kept",
			map[string]string{"Latitude": "95", "Longitude": "10", "Body": "here"},
			[]schema.Event{hookEvent(hookLocSid, hookText("here"))}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newHookEnv(t)
			form := hookSMSForm(hookLocSid, "")
			form.Set("From", "whatsapp:"+hookWAUser)
			form.Set("MessageType", "location")
			for k, v := range tc.fields {
				form.Set(k, v)
			}
			hookAssertTwiML(t, e.postSigned(hookInbound, form.Encode()))
			if got := hookStrip(t, e.onlyInbound().Events); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("events:\n%s", hookJSON(got))
			}
		})
	}
}

func TestInbound_ContactProfile(t *testing.T) {
	cases := []struct {
		name, profileName, country string
		want                       *schema.Contact
	}{
		{"no profile name", "", "MY", &schema.Contact{Phone: hookContact, CountryCode: "MY"}},
		{"one word", "Aisyah", "", &schema.Contact{FirstName: "Aisyah", Phone: hookContact}},
		{"split at the first space", "Jane van der Berg", "GB",
			&schema.Contact{FirstName: "Jane", LastName: "van der Berg", Phone: hookContact, CountryCode: "GB"}},
		{"surrounding space trimmed", "  Li  Wei ", "", &schema.Contact{FirstName: "Li", LastName: "Wei", Phone: hookContact}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newHookEnv(t)
			form := hookSMSForm(hookSMSSid, "hi")
			form.Set("ProfileName", tc.profileName)
			form.Set("FromCountry", tc.country)
			hookAssertTwiML(t, e.postSigned(hookInbound, form.Encode()))
			if got := e.onlyInbound().Contact; !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("contact %s", hookJSON(got))
			}
		})
	}
}

func TestInbound_QuickReplyAnswersBecomeTheOptionText(t *testing.T) {
	options := []string{"Small", "Medium", "Extra large"}
	future := time.Now().Add(time.Hour)
	cases := []struct {
		name    string
		offer   bool
		contact string // whose options; default the sender
		expires time.Time
		body    string
		want    string
	}{
		{"number", true, "", future, "2", "Medium"},
		{"number with a dot", true, "", future, "2.", "Medium"},
		{"number with spaces", true, "", future, " 2 ", "Medium"},
		{"number with a parenthesis", true, "", future, "3)", "Extra large"},
		{"option text in another case", true, "", future, "extra LARGE", "Extra large"},
		{"option text with spaces", true, "", future, "  small ", "Small"},
		{"number out of range", true, "", future, "4", "4"},
		{"zero", true, "", future, "0", "0"},
		{"number with words", true, "", future, "2 please", "2 please"},
		{"text containing an option", true, "", future, "Medium please", "Medium please"},
		{"expired options", true, "", time.Now().Add(-time.Minute), "2", "2"},
		{"no options offered", false, "", future, "2", "2"},
		{"options offered to someone else", true, "+14155550199", future, "2", "2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newHookEnv(t)
			if tc.offer {
				whom := cmp.Or(tc.contact, hookContact)
				e.offer(whom, tc.expires, options...)
			}
			hookAssertTwiML(t, e.postSigned(hookInbound, hookSMSForm(hookSMSSid, tc.body).Encode()))
			want := []schema.Event{hookEvent(hookSMSSid, hookText(tc.want))}
			if got := hookStrip(t, e.onlyInbound().Events); !reflect.DeepEqual(got, want) {
				t.Fatalf("events:\n%s", hookJSON(got))
			}
		})
	}
}

func TestInbound_QuickReplyOptionsExpireAfterTheirTTL(t *testing.T) {
	e := newHookEnv(t)
	now := time.Date(2025, 1, 15, 12, 0, 0, 0, time.UTC)
	e.p.now = func() time.Time { return now }
	e.offer(hookContact, now.Add(quickReplyTTL), "Yes", "No")
	hookAssertTwiML(t, e.postSigned(hookInbound, hookSMSForm(hookSMSSid, "1").Encode()))
	now = now.Add(quickReplyTTL + time.Second)
	hookAssertTwiML(t, e.postSigned(hookInbound, hookSMSForm("SM00000000000000000000000000000002", "1").Encode()))
	_, posted := e.ingest.snapshot()
	if len(posted) != 2 || *posted[0].Events[0].Message.Text != "Yes" || *posted[1].Events[0].Message.Text != "1" {
		t.Fatalf("posted %s", hookJSON(posted))
	}
	if posted[0].Events[0].Timestamp != time.Date(2025, 1, 15, 12, 0, 0, 0, time.UTC).UnixMilli() {
		t.Fatalf("timestamp %d", posted[0].Events[0].Timestamp)
	}
}

func TestInbound_OptOutKeywords(t *testing.T) {
	cases := []struct {
		name       string
		body       string
		optOutType string
		before     bool
		after      bool
	}{
		{"STOP", "STOP", "", false, true},
		{"stop in lower case", "stop", "", false, true},
		{"keyword with spaces", "  Unsubscribe ", "", false, true},
		{"STOPALL", "STOPALL", "", false, true},
		{"CANCEL", "cancel", "", false, true},
		{"END", "End", "", false, true},
		{"QUIT", "QUIT", "", false, true},
		{"REVOKE", "revoke", "", false, true},
		{"OPTOUT", "OptOut", "", false, true},
		{"not the whole message", "stop please", "", false, false},
		{"START clears", "START", "", true, false},
		{"UNSTOP clears", "unstop", "", true, false},
		{"YES clears an opt-out", "yes", "", true, false},
		{"YES from a contact who never opted out changes nothing", "YES", "", false, false},
		{"HELP changes nothing", "HELP", "", true, true},
		{"OptOutType STOP with a custom keyword", "ARRET", "STOP", false, true},
		{"OptOutType START with a custom keyword", "REPRENDRE", "START", true, false},
		{"OptOutType HELP is no opt-out even if the body says STOP", "STOP", "HELP", false, false},
		{"an ordinary message", "Thanks!", "", true, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newHookEnv(t)
			if tc.before {
				e.setOptedOut(hookContact)
			}
			puts := len(e.records.Puts())
			form := hookSMSForm(hookStopSid, tc.body)
			if tc.optOutType != "" {
				form.Set("OptOutType", tc.optOutType)
			}
			hookAssertTwiML(t, e.postSigned(hookInbound, form.Encode()))
			if got := e.optedOut(hookContact); got != tc.after {
				t.Fatalf("opted out = %v, want %v", got, tc.after)
			}
			if tc.before == tc.after && tc.body == "YES" && len(e.records.Puts()) != puts {
				t.Fatalf("YES from a contact who is not opted out wrote %v", e.records.Puts()[puts:])
			}
			// The keyword itself still reaches BonyChat.
			want := []schema.Event{hookEvent(hookStopSid, hookText(tc.body))}
			if got := hookStrip(t, e.onlyInbound().Events); !reflect.DeepEqual(got, want) {
				t.Fatalf("events:\n%s", hookJSON(got))
			}
		})
	}
}

// On WhatsApp Twilio applies no keywords of its own: a plain "Cancel" or
// "STOP" reaches the agent as text and opts nobody out (Twilio would not
// confirm it to the contact either); Advanced Opt-Out's OptOutType does.
func TestInbound_WhatsAppOptsOutOnlyByOptOutType(t *testing.T) {
	cases := []struct {
		body, optOutType string
		want             bool
	}{
		{"Cancel", "", false},
		{"STOP", "", false},
		{"STOP", "STOP", true},
	}
	for _, tc := range cases {
		t.Run(tc.body+"/"+tc.optOutType, func(t *testing.T) {
			e := newHookEnv(t, func(c *Config, _ *providers.Deps) { c.WhatsApp = true })
			form := hookSMSForm(hookSMSSid, tc.body)
			form.Set("From", "whatsapp:"+hookWAUser)
			form.Set("To", "whatsapp:"+hookFrom)
			if tc.optOutType != "" {
				form.Set("OptOutType", tc.optOutType)
			}
			hookAssertTwiML(t, e.postSigned(hookInbound, form.Encode()))
			if got := e.optedOut(hookWAUser); got != tc.want {
				t.Fatalf("opted out = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestInbound_OptOutIsPerSender(t *testing.T) {
	e := newHookEnv(t)
	hookAssertTwiML(t, e.postSigned(hookInbound, e.testdata("stop.form")))
	other := newHookEnv(t, func(c *Config, d *providers.Deps) { c.From = "+15550002222"; d.Records = e.records })
	if !e.optedOut(hookContact) || other.optedOut(hookContact) {
		t.Fatal("an opt-out must hold for the sender it was sent to only")
	}
}

func TestInbound_EmptyMessageIsAcknowledgedWithoutPosting(t *testing.T) {
	e := newHookEnv(t)
	form := hookSMSForm(hookSMSSid, "")
	form.Set("MessageType", "unsupported")
	hookAssertTwiML(t, e.postSigned(hookInbound, form.Encode()))
	if calls, _ := e.ingest.snapshot(); len(calls) != 0 {
		t.Fatalf("ingested %s", hookJSON(calls))
	}
}

func TestInbound_SignatureCoversEveryPostedFieldIncludingUnknownOnes(t *testing.T) {
	// Twilio adds parameters without notice: all of them are signed.
	e := newHookEnv(t)
	form := hookSMSForm(hookSMSSid, "hi")
	form.Set("SomeNewTwilioField", "v")
	form.Add("Repeated", "b")
	form.Add("Repeated", "a")
	hookAssertTwiML(t, e.postSigned(hookInbound, form.Encode()))
	signedWithout := url.Values{}
	maps.Copy(signedWithout, form)
	signedWithout.Del("SomeNewTwilioField")
	hookAssertError(t, e.post(hookInbound, form.Encode(), hookSign(hookToken, hookPublic+hookInbound, signedWithout)), http.StatusForbidden)
}
