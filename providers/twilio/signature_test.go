package twilio

import (
	"cmp"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/twilio/twilio-go/client"

	"github.com/bonychat/bonychat-adapter/providers"
)

// Twilio's documented example (webhooks security page), also validated by
// twilio-go's RequestValidator.
const (
	hookVectorToken     = "12345"
	hookVectorURL       = "https://mycompany.com/myapp.php?foo=1&bar=2"
	hookVectorSignature = "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
)

var hookVectorParams = url.Values{
	"CallSid": {"CA1234567890ABCDE"},
	"Caller":  {"+12349013030"},
	"Digits":  {"1234"},
	"From":    {"+12349013030"},
	"To":      {"+18005551212"},
}

// hookSigningProvider is a provider with only what validSignature uses.
func hookSigningProvider(public, token, previous string) *Provider {
	return &Provider{
		cfg:  Config{AuthToken: providers.Secret(token), PreviousAuthToken: providers.Secret(previous)},
		deps: providers.Deps{PublicURL: public},
		now:  func() time.Time { return hookNow },
	}
}

// hookNow is the signature tests' clock.
var hookNow = time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)

// hookSignedRequest is a request as the server sees it: target is the path and
// query Twilio requested (the Host is whatever the proxy passed on).
func hookSignedRequest(target string, form url.Values, signature string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, target, strings.NewReader(form.Encode()))
	r.Host = "10.0.0.7:8080" // behind a proxy: never the public host
	if signature != "" {
		r.Header.Set(SignatureHeader, signature)
	}
	return r
}

func TestSignature_TwilioDocumentedTestVector(t *testing.T) {
	// The test signer agrees with Twilio's example and with twilio-go.
	if got := hookSign(hookVectorToken, hookVectorURL, hookVectorParams); got != hookVectorSignature {
		t.Fatalf("test signer: %s, want %s", got, hookVectorSignature)
	}
	rv := client.NewRequestValidator(hookVectorToken)
	single := map[string]string{}
	for k, v := range hookVectorParams {
		single[k] = v[0]
	}
	if !rv.Validate(hookVectorURL, single, hookVectorSignature) {
		t.Fatal("twilio-go does not validate the documented vector")
	}

	p := hookSigningProvider("https://mycompany.com", hookVectorToken, "")
	if !p.validSignature(hookSignedRequest("/myapp.php?foo=1&bar=2", hookVectorParams, hookVectorSignature), hookVectorParams) {
		t.Fatal("the documented test vector does not validate")
	}
	tampered := url.Values{}
	for k, v := range hookVectorParams {
		tampered[k] = v
	}
	tampered.Set("Digits", "1235")
	if p.validSignature(hookSignedRequest("/myapp.php?foo=1&bar=2", tampered, hookVectorSignature), tampered) {
		t.Fatal("a changed parameter still validates")
	}
	if p.validSignature(hookSignedRequest("/myapp.php?bar=2&foo=1", hookVectorParams, hookVectorSignature), hookVectorParams) {
		t.Fatal("a reordered query still validates: the URL is signed byte for byte")
	}
}

func TestSignature_Cases(t *testing.T) {
	const (
		token    = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
		previous = "0f9e8d7c6b5a49382716a5b4c3d2e1f0"
		public   = "https://adapter.example.com"
		target   = "/twilio/sms01/status?mid=01JH3K9V2Q8W5X7Y4Z6A1B3C5D&part=0&parts=2"
	)
	form := url.Values{"MessageSid": {"SM3e5a7c9f1b3d5f7a9c1e3b5d7f9a1c3e"}, "MessageStatus": {"delivered"}, "To": {"+14155550123"}}
	cases := []struct {
		name      string
		public    string // configured public URL; default public
		noPrev    bool   // no previous_auth_token configured
		prevUntil string // previous_auth_token_until
		target    string // requested path and query; default target
		signature string
		want      bool
	}{
		{name: "auth_token over public URL, path and query", signature: hookSign(token, public+target, form), want: true},
		{name: "previous_auth_token during rotation", signature: hookSign(previous, public+target, form), want: true},
		{name: "previous_auth_token before its until", prevUntil: "2026-12-03",
			signature: hookSign(previous, public+target, form), want: true},
		{name: "previous_auth_token after its until", prevUntil: "2026-12-03T12:00:00Z",
			signature: hookSign(previous, public+target, form), want: false},
		{name: "auth_token after previous_auth_token_until", prevUntil: "2026-12-02",
			signature: hookSign(token, public+target, form), want: true},
		{name: "missing", signature: "", want: false},
		{name: "another token", signature: hookSign("ffffffffffffffffffffffffffffffff", public+target, form), want: false},
		{name: "previous token no longer configured", noPrev: true, signature: hookSign(previous, public+target, form), want: false},
		{name: "empty key never validates", noPrev: true, signature: hookSign("", public+target, form), want: false},
		{name: "signed without the query", signature: hookSign(token, public+"/twilio/sms01/status", form), want: false},
		{name: "query changed after signing", target: "/twilio/sms01/status?mid=01JH3K9V2Q8W5X7Y4Z6A1B3C5E&part=0&parts=2",
			signature: hookSign(token, public+target, form), want: false},
		{name: "signed over the proxy's internal host", signature: hookSign(token, "http://10.0.0.7:8080"+target, form), want: false},
		{name: "http instead of https", signature: hookSign(token, "http://adapter.example.com"+target, form), want: false},
		{name: "another public host", signature: hookSign(token, "https://evil.example"+target, form), want: false},
		{name: "default port added by Twilio", signature: hookSign(token, "https://adapter.example.com:443"+target, form), want: true},
		{name: "default port configured, signed without it", public: "https://adapter.example.com:443",
			signature: hookSign(token, public+target, form), want: true},
		{name: "non-default port is never dropped", public: "https://adapter.example.com:8443",
			signature: hookSign(token, public+target, form), want: false},
		{name: "non-default port signed with it", public: "https://adapter.example.com:8443",
			signature: hookSign(token, "https://adapter.example.com:8443"+target, form), want: true},
		{name: "public URL with a path prefix", public: "https://example.com/bony",
			signature: hookSign(token, "https://example.com/bony"+target, form), want: true},
		{name: "signature with a trailing space", signature: hookSign(token, public+target, form) + " ", want: false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			prev := previous
			if tc.noPrev {
				prev = ""
			}
			p := hookSigningProvider(cmp.Or(tc.public, public), token, prev)
			p.cfg.PreviousAuthTokenUntil = providers.Until(tc.prevUntil)
			r := hookSignedRequest(cmp.Or(tc.target, target), form, tc.signature)
			r.Header.Set("X-Forwarded-Host", "evil.example")
			r.Header.Set("X-Forwarded-Proto", "http")
			if got := p.validSignature(r, form); got != tc.want {
				t.Fatalf("validSignature = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSignature_RepeatedFieldsAreSortedByNameThenValue(t *testing.T) {
	const token = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
	form := url.Values{"b": {"2", "1"}, "a": {"z"}}
	// By hand: URL + "az" + "b1" + "b2".
	want := signature(token, "https://adapter.example.com/x"+"az"+"b1"+"b2")
	p := hookSigningProvider("https://adapter.example.com", token, "")
	if !p.validSignature(hookSignedRequest("/x", form, want), form) {
		t.Fatal("repeated values must be signed sorted by value")
	}
	if got := signedParams(form); got != "azb1b2" {
		t.Fatalf("signedParams = %q", got)
	}
	if form["b"][0] != "2" {
		t.Fatal("signing must not reorder the caller's values")
	}
}

func TestSignature_PublicURLVariants(t *testing.T) {
	cases := []struct {
		public string
		want   []string
	}{
		{"https://adapter.example.com", []string{"https://adapter.example.com", "https://adapter.example.com:443"}},
		{"https://adapter.example.com:443", []string{"https://adapter.example.com:443", "https://adapter.example.com"}},
		{"http://adapter.example.com/bony", []string{"http://adapter.example.com/bony", "http://adapter.example.com:80/bony"}},
		{"https://adapter.example.com:8443/bony", []string{"https://adapter.example.com:8443/bony"}},
		{"https://[2001:db8::1]", []string{"https://[2001:db8::1]", "https://[2001:db8::1]:443"}},
		{"https://[2001:db8::1]:443/p", []string{"https://[2001:db8::1]:443/p", "https://[2001:db8::1]/p"}},
		{"", []string{""}},
	}
	for _, tc := range cases {
		if got := publicURLVariants(tc.public); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("publicURLVariants(%q) = %q, want %q", tc.public, got, tc.want)
		}
	}
}

func TestStartUpWarnsOfARotationsLeftovers(t *testing.T) {
	const passed, alone = "previous_auth_token_until has passed", "previous_auth_token_until is set but previous_auth_token is not"
	cases := []struct {
		until    providers.Until
		previous providers.Secret
		warning  string
	}{
		{"2000-01-01", outToken + "old", passed},
		{"2999-12-31", outToken + "old", ""},
		{"2999-12-31", "", alone},
	}
	for _, tc := range cases {
		e := outNew(t, func(c *Config, _ *providers.Deps) {
			c.PreviousAuthToken, c.PreviousAuthTokenUntil = tc.previous, tc.until
		})
		for _, w := range []string{passed, alone} {
			if got := strings.Contains(e.logs.String(), w); got != (w == tc.warning) {
				t.Errorf("until %s, previous %v: %q logged = %v, want %v", tc.until, tc.previous != "", w, got, !got)
			}
		}
	}
}
