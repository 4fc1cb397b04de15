package adapter

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bonychat/bonychat-adapter/internal/fakemailgun"
	"github.com/bonychat/bonychat-adapter/internal/faketwilio"
	"github.com/bonychat/bonychat-adapter/internal/testkit"
	"github.com/bonychat/bonychat-adapter/providers"
	"github.com/bonychat/bonychat-adapter/providers/mailgun"
	"github.com/bonychat/bonychat-adapter/providers/twilio"
	"github.com/bonychat/bonychat-adapter/schema"
	"github.com/bonychat/bonychat-adapter/store"
)

// Distinctive secrets: every one must stay out of logs, answers and the
// jobs' recorded errors (which `jobs list` prints unredacted).
const (
	leakTok       = "leaktokCurrentAAAA1111"
	leakPrevTok   = "leaktokPreviousBBBB2222"
	leakTwToken   = "leaktwilioAuthCCCC3333"
	leakTwPrev    = "leaktwilioPrevDDDD4444"
	leakMgKey     = "leakmailgunKeyEEEE5555"
	leakMgSign    = "leakmailgunSignFFFF6666"
	leakHookPass  = "leakhookPasswordGGGG7777"
	leakPanicTok  = "leakconsoleTokHHHH8888"
	leakMailTok   = "leakmailChannelTokIIII9999"
	leakTwilioSID = "AC0123456789abcdef0123456789abcdef"
)

// panicky is a console-like provider whose webhook route panics quoting the
// channel token (a provider bug that the recovery middleware must contain).
type panicky struct{}

func (panicky) Kind() string { return "console" }
func (panicky) Send(context.Context, providers.Recipient, schema.Message, string) (providers.Sent, error) {
	panic("send exploded, token " + leakPanicTok)
}
func (panicky) Routes() []providers.Route {
	return []providers.Route{{Method: http.MethodPost, Action: "inbound", BearerAuth: true,
		Handler: func(http.ResponseWriter, *http.Request) {
			panic(fmt.Errorf("handler exploded, token %s", leakPanicTok))
		}}}
}

// Every secret the configuration holds (channel tokens current and
// previous, Twilio auth tokens, Mailgun API and signing keys, a password in
// the webhook URL, and their Basic-auth forms) stays out of the logs, the
// HTTP answers and the jobs' recorded errors (which jobs list prints) on
// the paths that fail: refused tokens, providers refusing the credentials,
// panics quoting a token, badly signed webhooks, an unreachable webhook.
func TestNoSecretReachesLogsAnswersOrJobErrors(t *testing.T) {
	mg := fakemailgun.New(t, "mg.example.com", "some-other-key") // refuses our key: 401
	twAPI := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"code":20003,"message":"Authenticate","status":401}`)
	}))
	defer twAPI.Close()
	cfg := defaultConfig()
	cfg.Store = "memory:"
	cfg.Platform.WebhookURL = "http://hookuser:" + leakHookPass + "@127.0.0.1:1/webhook" // nothing listens
	cfg.Platform.RetryMin, cfg.Platform.RetryMax, cfg.Platform.Timeout = 5*time.Millisecond, 10*time.Millisecond, time.Second
	cfg.Outbound.RetryMin, cfg.Outbound.RetryMax = 5*time.Millisecond, 10*time.Millisecond
	cfg.Channels = []ChannelConfig{
		{ID: "con", Token: leakPanicTok, IDType: schema.IDTypePhone, Provider: "console"},
		{ID: "sms", Token: leakTok, PreviousToken: leakPrevTok, IDType: schema.IDTypePhone, Provider: "twilio",
			Twilio: &twilio.Config{AccountSID: leakTwilioSID, AuthToken: leakTwToken, PreviousAuthToken: leakTwPrev,
				From: "+15550001111", APIURL: twAPI.URL}},
		{ID: "mail", Token: leakMailTok, IDType: schema.IDTypeCustom, Provider: "mailgun",
			Mailgun: &mailgun.Config{Domain: "mg.example.com", APIKey: leakMgKey, WebhookSigningKey: leakMgSign, APIURL: mg.URL,
				From: "Acme <support@mg.example.com>", Subject: "Hi"}},
	}
	if p := cfg.validate(); len(p) > 0 {
		t.Fatal(p)
	}
	log, logs := testkit.NewLogger()
	st := store.NewMemory()
	srv, err := New(&cfg, Options{Logger: log, Store: st, Transport: testkit.NewLocalOnlyTransport(),
		NewProvider: func(ch ChannelConfig, d providers.Deps) (providers.Provider, error) {
			if ch.ID == "con" {
				return panicky{}, nil
			}
			return builtinProvider(ch, d)
		}})
	if err != nil {
		t.Fatal(err)
	}
	stop, err := srv.StartWorkers()
	if err != nil {
		t.Fatal(err)
	}
	defer stop()

	var answers bytes.Buffer
	var codes []int
	do := func(method, path, auth, ctype, body string, hdr ...string) {
		req := httptest.NewRequest(method, "http://adapter.test"+path, strings.NewReader(body))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, req)
		fmt.Fprintf(&answers, "%s %s -> %d %v %s\n", method, path, rec.Code, rec.Header(), rec.Body.String())
		codes = append(codes, rec.Code)
	}
	msg := func(ch, contact string) string {
		return `{"channelId":"` + ch + `","contactId":"` + contact + `","message":{"type":"text","text":"hi"}}`
	}
	// Auth failures: wrong channel for a token, previous token, garbage.
	do("POST", "/message", "Bearer "+leakPrevTok, "application/json", msg("mail", "a=b@c=d"))
	do("POST", "/message", "Bearer "+leakTok+"x", "application/json", msg("sms", "+60177872890"))
	do("POST", "/message", "Basic "+base64.StdEncoding.EncodeToString([]byte("u:"+leakTok)), "application/json", "{")
	// Provider refuses the channel's credentials (Twilio 20003, Mailgun 401).
	do("POST", "/message", "Bearer "+leakTok, "application/json", msg("sms", "+60177872890"))
	do("POST", "/message", "Bearer "+leakMailTok, "application/json", msg("mail", "jane=doe@example=org"))
	// Panics: an HTTP route and a send.
	do("POST", "/console/con/inbound", "Bearer "+leakPanicTok, "application/json", `{}`)
	do("POST", "/message", "Bearer "+leakPanicTok, "application/json", msg("con", "+60177872890"))
	// Unsigned / badly signed provider webhooks.
	do("POST", "/twilio/sms/inbound", "", "application/x-www-form-urlencoded", "From=%2B1555&Body=x&MessageSid=SM1",
		"X-Twilio-Signature", "bogus")
	ts := fmt.Sprint(time.Now().Unix())
	do("POST", "/mailgun/mail/inbound", "", "application/x-www-form-urlencoded",
		url.Values{"timestamp": {ts}, "token": {"t"}, "signature": {strings.Repeat("0", 64)}}.Encode())
	do("POST", "/mailgun/mail/events", "", "application/json",
		`{"signature":{"timestamp":"`+ts+`","token":"t","signature":"00"},"event-data":{"event":"delivered"}}`)
	// A validly signed Twilio inbound: its events go to a webhook that
	// refuses connections, with userinfo in its URL.
	form := url.Values{"From": {"+60177872890"}, "To": {"+15550001111"}, "Body": {"hello"}, "MessageSid": {"SM0123456789abcdef0123456789abcdef"}}
	sig := faketwilio.Signature(leakTwToken, strings.TrimSuffix(cfg.PublicURL, "/")+"/twilio/sms/inbound", form)
	do("POST", "/twilio/sms/inbound", "", "application/x-www-form-urlencoded", form.Encode(), "X-Twilio-Signature", sig)

	// Each path ran as meant: 401s, the providers' refusals (502), the
	// panics (500, 502), the bad signatures (403, 406), the signed inbound.
	if want := []int{401, 401, 401, 502, 502, 500, 502, 403, 406, 406, 200}; !slices.Equal(codes, want) {
		t.Fatalf("answers %v, want %v:\n%s", codes, want, answers.String())
	}
	waitFor(t, func() bool { return strings.Contains(logs.String(), "BonyChat webhook post failed") })
	time.Sleep(200 * time.Millisecond)
	jobs, err := st.Jobs(context.Background(), store.JobFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var lastErrors strings.Builder
	for _, j := range jobs {
		lastErrors.WriteString(j.LastError + "\n")
	}
	basic := func(u, p string) string { return base64.StdEncoding.EncodeToString([]byte(u + ":" + p)) }
	secrets := []string{leakTok, leakMailTok, leakPrevTok, leakTwToken, leakTwPrev, leakMgKey, leakMgSign, leakHookPass, leakPanicTok,
		basic(leakTwilioSID, leakTwToken), basic("api", leakMgKey), basic("hookuser", leakHookPass)}
	for name, out := range map[string]string{"logs": logs.String(), "answers": answers.String(), "job errors": lastErrors.String()} {
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("%s contain secret %q:\n%s", name, s, out)
			}
		}
	}
	if !strings.Contains(logs.String(), "[redacted]") {
		t.Errorf("expected the panics to be logged with the token redacted:\n%s", logs.String())
	}
}
