package faketwilio

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	twiliogo "github.com/twilio/twilio-go"
	"github.com/twilio/twilio-go/client"
	api "github.com/twilio/twilio-go/rest/api/v2010"

	"github.com/bonychat/bonychat-adapter/internal/testkit"
)

const (
	testAccount = "AC0123456789abcdef0123456789abcdef"
	testToken   = "authtoken0123456789abcdef01234567"
)

var sidPattern = regexp.MustCompile(`^(SM|MM)[0-9a-f]{32}$`)

// rewrite sends twilio-go's requests (hard-coded to api.twilio.com) to the fake.
type rewrite struct {
	target *url.URL
	next   http.RoundTripper
}

func (t rewrite) RoundTrip(r *http.Request) (*http.Response, error) {
	r2 := r.Clone(r.Context())
	r2.URL.Scheme, r2.URL.Host, r2.Host = t.target.Scheme, t.target.Host, t.target.Host
	return t.next.RoundTrip(r2)
}

func twilioAPI(t *testing.T, s *Server, token string) *api.ApiService {
	t.Helper()
	u, err := url.Parse(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	c := &client.Client{
		Credentials: client.NewCredentials(s.AccountSID, token),
		HTTPClient:  &http.Client{Timeout: 5 * time.Second, Transport: rewrite{u, testkit.NewLocalOnlyTransport()}},
	}
	c.SetAccountSid(s.AccountSID)
	return twiliogo.NewRestClientWithParams(twiliogo.ClientParams{Client: c}).Api
}

func localClient() *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: testkit.NewLocalOnlyTransport()}
}

func postForm(t *testing.T, s *Server, user, pass string, form url.Values) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.URL+"/2010-04-01/Accounts/"+s.AccountSID+"/Messages.json",
		strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(user, pass)
	resp, err := localClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

func TestCreateAnswersLikeTwilioAndRecords(t *testing.T) {
	s := New(t, testAccount, testToken)
	fixed := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	s.SetNow(func() time.Time { return fixed })

	p := (&api.CreateMessageParams{}).SetTo("+15551230000").SetFrom("+15550001111").SetBody("hi there").
		SetMediaUrl([]string{"https://example.com/a.png", "https://example.com/b.png"}).
		SetPersistentAction([]string{"geo:1,2|x"}).
		SetStatusCallback("https://adapter.example.com/twilio/sms01/status?mid=m1")
	m, err := twilioAPI(t, s, testToken).CreateMessage(p)
	if err != nil {
		t.Fatal(err)
	}
	if m.Sid == nil || !sidPattern.MatchString(*m.Sid) || !strings.HasPrefix(*m.Sid, "MM") {
		t.Fatalf("sid = %v", m.Sid)
	}
	if *m.Status != "queued" || *m.To != "+15551230000" || *m.From != "+15550001111" || *m.Body != "hi there" ||
		*m.NumMedia != "2" || m.ErrorCode != nil || *m.DateCreated != "Sun, 22 Nov 2026 03:00:00 +0000" {
		t.Fatalf("answer = %+v", m)
	}
	if _, err := time.Parse(time.RFC1123Z, *m.DateCreated); err != nil {
		t.Fatal(err)
	}
	got := s.Messages()
	if len(got) != 1 {
		t.Fatalf("messages = %d", len(got))
	}
	g := got[0]
	if g.SID != *m.Sid || g.Body != "hi there" || len(g.MediaURLs) != 2 || g.PersistentActions[0] != "geo:1,2|x" ||
		g.StatusCallback != "https://adapter.example.com/twilio/sms01/status?mid=m1" || !g.DateCreated.Equal(fixed) {
		t.Fatalf("recorded = %+v", g)
	}
	// Messages returns copies.
	got[0].MediaURLs[0] = "changed"
	if s.Messages()[0].MediaURLs[0] == "changed" {
		t.Fatal("Messages shares its slices")
	}
	if s.Requests() != 1 || s.Count(Create) != 1 || !s.RequestLog()[0].Authorized {
		t.Fatalf("requests = %+v", s.RequestLog())
	}
}

func TestCreateRawWireFormat(t *testing.T) {
	s := New(t, testAccount, testToken)
	resp, body := postForm(t, s, testAccount, testToken, url.Values{
		"To": {"+15551230000"}, "MessagingServiceSid": {"MG0123456789abcdef0123456789abcdef"}, "Body": {"x"}})
	if resp.StatusCode != http.StatusCreated || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	var raw map[string]any
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"sid", "status", "to", "from", "body", "num_media", "num_segments", "date_created",
		"date_sent", "error_code", "error_message", "messaging_service_sid", "account_sid", "uri", "subresource_uris"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("answer lacks %q: %s", k, body)
		}
	}
	if raw["status"] != "accepted" || raw["from"] != nil || raw["error_code"] != nil || raw["num_segments"] != "0" {
		t.Errorf("messaging service answer: %s", body)
	}
}

func TestCreateRefusals(t *testing.T) {
	s := New(t, testAccount, testToken)
	s.OptOut("+15550000010", true)
	ok := url.Values{"To": {"+15551230000"}, "From": {"+15550001111"}, "Body": {"x"}}
	with := func(k, v string) url.Values {
		f := url.Values{}
		for kk, vv := range ok {
			f[kk] = vv
		}
		if v == "" {
			delete(f, k)
		} else {
			f.Set(k, v)
		}
		return f
	}
	tooMany := with("Body", "")
	for range 11 {
		tooMany.Add("MediaUrl", "https://example.com/a.png")
	}
	cases := []struct {
		name       string
		user, pass string
		form       url.Values
		status     int
		code       int
	}{
		{"wrong token", testAccount, "wrongtoken", ok, 401, 20003},
		{"wrong account", "AC00000000000000000000000000000000", testToken, ok, 401, 20003},
		{"no To", testAccount, testToken, with("To", ""), 400, 21604},
		{"no From", testAccount, testToken, with("From", ""), 400, 21603},
		{"bad To", testAccount, testToken, with("To", "12345"), 400, 21211},
		{"no body", testAccount, testToken, with("Body", ""), 400, 21602},
		{"body too long", testAccount, testToken, with("Body", strings.Repeat("é", 1601)), 400, 21617},
		{"too many media", testAccount, testToken, tooMany, 400, 21623},
		{"bad media", testAccount, testToken, with("MediaUrl", "ftp://x/y"), 400, 21620},
		{"bad callback", testAccount, testToken, with("StatusCallback", "/relative"), 400, 21609},
		{"channel mismatch", testAccount, testToken, with("To", "whatsapp:+15551230000"), 400, 21910},
		{"opted out", testAccount, testToken, with("To", "+15550000010"), 400, 21610},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := postForm(t, s, c.user, c.pass, c.form)
			var e ErrorBody
			if err := json.Unmarshal(body, &e); err != nil {
				t.Fatalf("%s: %v", body, err)
			}
			if resp.StatusCode != c.status || e.Status != c.status || e.Code != c.code || e.Message == "" ||
				e.MoreInfo != MoreInfo(c.code) {
				t.Fatalf("%d %s", resp.StatusCode, body)
			}
		})
	}
	if n := len(s.Messages()); n != 0 {
		t.Fatalf("refused creates recorded %d messages", n)
	}
}

func TestAuthErrorBodyIsTwilios(t *testing.T) {
	s := New(t, testAccount, testToken)
	_, body := postForm(t, s, testAccount, "nope", url.Values{"To": {"+15551230000"}})
	want := `{"code":20003,"message":"Authenticate","more_info":"https://www.twilio.com/docs/errors/20003","status":401}`
	if strings.TrimSpace(string(body)) != want {
		t.Fatalf("body = %s", body)
	}
}

func TestScriptedBehaviours(t *testing.T) {
	params := func() *api.CreateMessageParams {
		return (&api.CreateMessageParams{}).SetTo("+15551230000").SetFrom("+15550001111").SetBody("hello")
	}
	cases := []struct {
		name     string
		b        Behaviour
		recorded int
		check    func(t *testing.T, err error)
	}{
		{"twilio error", Code(21211), 0, func(t *testing.T, err error) {
			var te *client.TwilioRestError
			if !errors.As(err, &te) || te.Code != 21211 || te.Status != 400 {
				t.Fatalf("err = %v", err)
			}
		}},
		{"custom error", Error(21612, 0, "custom words"), 0, func(t *testing.T, err error) {
			var te *client.TwilioRestError
			if !errors.As(err, &te) || te.Code != 21612 || te.Message != "custom words" {
				t.Fatalf("err = %v", err)
			}
		}},
		{"throttled", Throttled(), 0, func(t *testing.T, err error) {
			var te *client.TwilioRestError
			if !errors.As(err, &te) || te.Code != 20429 || te.Status != 429 {
				t.Fatalf("err = %v", err)
			}
		}},
		{"html 503", ServiceUnavailableHTML(), 0, func(t *testing.T, err error) {
			var te *client.TwilioRestError
			if err == nil || errors.As(err, &te) || !strings.Contains(err.Error(), "503") {
				t.Fatalf("err = %v", err)
			}
		}},
		{"record then drop", RecordThenDrop(), 1, func(t *testing.T, err error) {
			if err == nil {
				t.Fatal("no error")
			}
		}},
		{"drop", Drop(), 0, func(t *testing.T, err error) {
			if err == nil {
				t.Fatal("no error")
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := New(t, testAccount, testToken)
			s.Script(Create, c.b)
			_, err := twilioAPI(t, s, testToken).CreateMessage(params())
			c.check(t, err)
			if n := len(s.Messages()); n != c.recorded {
				t.Fatalf("recorded %d, want %d", n, c.recorded)
			}
			// The queue is consumed: the next request is normal.
			if _, err := twilioAPI(t, s, testToken).CreateMessage(params()); err != nil {
				t.Fatal(err)
			}
			if s.Pending(Create) != 0 || s.Count(Create) != 2 {
				t.Fatalf("pending %d, count %d", s.Pending(Create), s.Count(Create))
			}
		})
	}
}

func TestScriptedRetryAfter(t *testing.T) {
	date := "Sat, 14 Mar 2026 15:10:26 GMT"
	cases := []struct {
		name   string
		b      Behaviour
		status int
		want   []string // the Retry-After values received
	}{
		{"a 429 says 1 second by default", Throttled(), 429, []string{"1"}},
		{"a 429 in seconds", Throttled().WithRetryAfter("30"), 429, []string{"30"}},
		{"a 429 with an HTTP-date", Throttled().WithRetryAfter(date), 429, []string{date}},
		{"a 429 with garbage", Throttled().WithRetryAfter("soon"), 429, []string{"soon"}},
		{"a 429 without one", Throttled().WithRetryAfter(""), 429, nil},
		{"a Twilio 503", Code(20503).WithRetryAfter("20"), 503, []string{"20"}},
		{"a proxy's 503 page", ServiceUnavailableHTML().WithRetryAfter("15"), 503, []string{"15"}},
		{"other errors carry none", Code(21211), 400, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := New(t, testAccount, testToken)
			s.Script(Create, c.b)
			resp, _ := postForm(t, s, testAccount, testToken,
				url.Values{"To": {"+15551230000"}, "From": {"+15550001111"}, "Body": {"hi"}})
			if resp.StatusCode != c.status || !slices.Equal(resp.Header.Values("Retry-After"), c.want) {
				t.Fatalf("status %d, Retry-After %q; want %d, %q", resp.StatusCode, resp.Header.Values("Retry-After"), c.status, c.want)
			}
			if log := s.RequestLog(); len(log) != 1 || log[0].Behaviour != c.b.Name() {
				t.Fatalf("request log %+v", log)
			}
		})
	}
}

func TestRecordThenStallTimesOutAfterRecording(t *testing.T) {
	s := New(t, testAccount, testToken)
	s.Script(Create, RecordThenStall(5*time.Second))
	svc := twilioAPI(t, s, testToken)
	hc := &http.Client{Timeout: 200 * time.Millisecond, Transport: rewrite{mustURL(t, s.URL), testkit.NewLocalOnlyTransport()}}
	c := &client.Client{Credentials: client.NewCredentials(testAccount, testToken), HTTPClient: hc}
	c.SetAccountSid(testAccount)
	svc = twiliogo.NewRestClientWithParams(twiliogo.ClientParams{Client: c}).Api
	start := time.Now()
	_, err := svc.CreateMessage((&api.CreateMessageParams{}).SetTo("+15551230000").SetFrom("+15550001111").SetBody("x"))
	if err == nil || time.Since(start) > 3*time.Second {
		t.Fatalf("err = %v after %v", err, time.Since(start))
	}
	if len(s.Messages()) != 1 {
		t.Fatal("not recorded")
	}
}

func mustURL(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestListFiltersNewestFirstAndPages(t *testing.T) {
	s := New(t, testAccount, testToken)
	svc := twilioAPI(t, s, testToken)
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i, to := range []string{"+15551230000", "+15559990000", "+15551230000", "+15551230000", "+15551230000"} {
		s.SetNow(func() time.Time { return base.Add(time.Duration(i) * time.Second) })
		if _, err := svc.CreateMessage((&api.CreateMessageParams{}).SetTo(to).SetFrom("+15550001111").
			SetBody("m" + string(rune('0'+i)))); err != nil {
			t.Fatal(err)
		}
	}
	// PageSize 2 makes twilio-go follow next_page_uri twice.
	list, err := svc.ListMessage((&api.ListMessageParams{}).SetTo("+15551230000").SetFrom("+15550001111").SetPageSize(2))
	if err != nil {
		t.Fatal(err)
	}
	var bodies []string
	for _, m := range list {
		bodies = append(bodies, *m.Body)
	}
	if strings.Join(bodies, ",") != "m4,m3,m2,m0" {
		t.Fatalf("bodies = %v", bodies)
	}
	if s.Count(List) != 2 {
		t.Fatalf("list requests = %d", s.Count(List))
	}
	// Raw page shape.
	req, _ := http.NewRequest(http.MethodGet, s.URL+"/2010-04-01/Accounts/"+testAccount+"/Messages.json?To=%2B15559990000", nil)
	req.SetBasicAuth(testAccount, testToken)
	resp, err := localClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var raw map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil {
		t.Fatal(err)
	}
	if raw["next_page_uri"] != nil || raw["page"].(float64) != 0 || raw["page_size"].(float64) != 50 ||
		len(raw["messages"].([]any)) != 1 {
		t.Fatalf("page = %v", raw)
	}
	// Unsent messages have no date_sent, so a DateSent filter skips them.
	list, err = svc.ListMessage((&api.ListMessageParams{}).SetTo("+15551230000").SetDateSentAfter(base.Add(-time.Hour)))
	if err != nil || len(list) != 0 {
		t.Fatalf("DateSent> on queued messages: %d %v", len(list), err)
	}
	sid := s.Messages()[0].SID
	if !s.SetStatus(sid, "delivered", 0) {
		t.Fatal("SetStatus")
	}
	list, err = svc.ListMessage((&api.ListMessageParams{}).SetTo("+15551230000").SetDateSentAfter(base.Add(-time.Hour)))
	if err != nil || len(list) != 1 || *list[0].Sid != sid || list[0].DateSent == nil {
		t.Fatalf("DateSent> after delivery: %v %v", list, err)
	}
	// Listing also fails by script, and authenticates.
	s.Script(List, ServiceUnavailableHTML())
	if _, err := svc.ListMessage(&api.ListMessageParams{}); err == nil {
		t.Fatal("scripted list failure ignored")
	}
	if _, err := twilioAPI(t, s, "wrongtoken").ListMessage(&api.ListMessageParams{}); err == nil {
		t.Fatal("wrong token listed")
	}
	f, err := svc.FetchMessage(sid, nil)
	if err != nil || *f.Status != "delivered" {
		t.Fatalf("fetch: %v %v", f, err)
	}
}

func TestMediaRedirectsToCDNWithoutCredentials(t *testing.T) {
	s := New(t, testAccount, testToken)
	mediaURL := s.AddMedia("ME0001", "image/jpeg", []byte("jpegbytes"))
	if !strings.HasPrefix(s.CDNURL, "http://localhost:") || !strings.HasPrefix(s.URL, "http://127.0.0.1:") {
		t.Fatalf("hosts: %s %s", s.URL, s.CDNURL)
	}

	// Without credentials: Twilio's 401.
	resp, err := localClient().Get(mediaURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous media: %d", resp.StatusCode)
	}

	// Not following: a 302 to the other host.
	noFollow := localClient()
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	req, _ := http.NewRequest(http.MethodGet, mediaURL, nil)
	req.SetBasicAuth(testAccount, testToken)
	resp, err = noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), s.CDNURL+"/cdn/ME0001?") {
		t.Fatalf("redirect: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}

	// Following: Go drops Authorization on the other host; bytes and type arrive.
	req, _ = http.NewRequest(http.MethodGet, mediaURL, nil)
	req.SetBasicAuth(testAccount, testToken)
	resp, err = localClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "jpegbytes" || resp.Header.Get("Content-Type") != "image/jpeg" {
		t.Fatalf("cdn: %d %q %s", resp.StatusCode, body, resp.Header.Get("Content-Type"))
	}
	if s.CDNSawAuthorization() || len(s.CDNRequests()) != 1 {
		t.Fatalf("cdn requests: %+v", s.CDNRequests())
	}

	// A leaky client (credentials sent to the CDN too) is detected.
	req, _ = http.NewRequest(http.MethodGet, resp.Request.URL.String(), nil)
	req.SetBasicAuth(testAccount, testToken)
	resp, err = localClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if !s.CDNSawAuthorization() {
		t.Fatal("CDN did not notice the Authorization header")
	}

	// Unknown media: 404 with Twilio's error.
	req, _ = http.NewRequest(http.MethodGet, s.URL+"/media/nope", nil)
	req.SetBasicAuth(testAccount, testToken)
	resp, err = localClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown media: %d", resp.StatusCode)
	}
}

func TestSignatureMatchesTwiliosDocumentedVector(t *testing.T) {
	params := url.Values{
		"CallSid": {"CA1234567890ABCDE"}, "Caller": {"+12349013030"}, "Digits": {"1234"},
		"From": {"+12349013030"}, "To": {"+18005551212"},
	}
	got := Signature("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", params)
	if got != "0/KCTR6DLpKmkAf8muzZqo1nDgQ=" {
		t.Fatalf("signature = %s", got)
	}
}

func TestSignedWebhooksValidateWithTwilioGo(t *testing.T) {
	s := New(t, testAccount, testToken)
	v := client.NewRequestValidator(testToken)
	lat := Inbound{From: "+15551230000", To: "+15550001111", WhatsApp: true, ProfileName: "Jane",
		Latitude: "3.139", Longitude: "101.6869", Address: "KL", Label: "Office"}
	mms := Inbound{From: "+15551230000", To: "+15550001111", Body: "look", Media: []InboundMedia{
		{URL: s.AddMedia("ME1", "image/jpeg", []byte("a")), ContentType: "image/jpeg"},
		{URL: s.AddMedia("ME2", "video/mp4", []byte("b")), ContentType: "video/mp4"},
	}}
	m := Message{SID: NewSID("SM"), To: "+15551230000", From: "+15550001111",
		StatusCallback: "https://adapter.example.com/twilio/sms01/status?mid=abc&part=1&parts=2"}
	cases := []struct {
		name string
		req  *http.Request
		url  string
	}{
		{"inbound mms", s.SignedRequest("https://adapter.example.com/twilio/sms01/inbound", s.InboundForm(mms)),
			"https://adapter.example.com/twilio/sms01/inbound"},
		{"inbound whatsapp location", s.SignedRequest("https://adapter.example.com/twilio/sms01/inbound", s.InboundForm(lat)),
			"https://adapter.example.com/twilio/sms01/inbound"},
		{"status with query", s.StatusCallbackRequest(m, "undelivered", "30003"), m.StatusCallback},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := c.req.ParseForm(); err != nil {
				t.Fatal(err)
			}
			flat := map[string]string{}
			for k := range c.req.PostForm {
				flat[k] = c.req.PostForm.Get(k)
			}
			sig := c.req.Header.Get("X-Twilio-Signature")
			if !v.Validate(c.url, flat, sig) {
				t.Fatalf("twilio-go rejects the signature for %s", c.url)
			}
			if v.Validate(c.url+"x", flat, sig) {
				t.Fatal("signature ignores the URL")
			}
			if c.req.URL.String() != c.url || c.req.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
				t.Fatalf("request %s %v", c.req.URL, c.req.Header)
			}
		})
	}

	f := s.InboundForm(mms)
	if f.Get("NumMedia") != "2" || f.Get("MediaUrl1") == "" || f.Get("MediaContentType1") != "video/mp4" ||
		!strings.HasPrefix(f.Get("MessageSid"), "MM") || f.Get("SmsSid") != f.Get("MessageSid") || f.Get("AccountSid") != testAccount {
		t.Fatalf("mms form: %v", f)
	}
	f = s.InboundForm(lat)
	if f.Get("From") != "whatsapp:+15551230000" || f.Get("ProfileName") != "Jane" || f.Get("MessageType") != "location" ||
		f.Get("WaId") != "15551230000" || f.Get("Label") != "Office" {
		t.Fatalf("whatsapp form: %v", f)
	}
	st := s.StatusFor(m, "undelivered", "30003")
	if st.Get("MessageStatus") != "undelivered" || st.Get("SmsStatus") != "undelivered" || st.Get("ErrorCode") != "30003" ||
		st.Get("RawDlrDoneDate") == "" {
		t.Fatalf("status form: %v", st)
	}
	cr, err := NewSignedClientRequest(testToken, "https://adapter.example.com/x", "http://127.0.0.1:1/x", url.Values{"A": {"1"}})
	if err != nil || cr.Header.Get("X-Twilio-Signature") != Signature(testToken, "https://adapter.example.com/x", url.Values{"A": {"1"}}) {
		t.Fatalf("client request: %v", err)
	}
}

func TestConcurrentUse(t *testing.T) {
	s := New(t, testAccount, testToken)
	svc := twilioAPI(t, s, testToken)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%5 == 0 {
				s.Script(Create, OK())
			}
			_, err := svc.CreateMessage((&api.CreateMessageParams{}).SetTo("+15551230000").SetFrom("+15550001111").SetBody("x"))
			if err != nil {
				t.Error(err)
			}
			_ = s.Messages()
			_ = s.RequestLog()
		}()
	}
	wg.Wait()
	if len(s.Messages()) != 20 || s.Requests() != 20 {
		t.Fatalf("messages %d requests %d", len(s.Messages()), s.Requests())
	}
	s.Reset()
	if len(s.Messages()) != 0 || s.Requests() != 0 {
		t.Fatal("Reset")
	}
}
