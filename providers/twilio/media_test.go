package twilio

import (
	"bytes"
	"strings"
	"testing"

	"github.com/bonychat/bonychat-adapter/internal/faketwilio"
	"github.com/bonychat/bonychat-adapter/internal/testkit"
	"github.com/bonychat/bonychat-adapter/providers"
)

func TestInbound_MediaCredentialsReachTwiliosAPIHostOnly(t *testing.T) {
	const name = "ME0123456789abcdef0123456789abcdef"
	cases := []struct {
		name     string
		mediaURL func(f *faketwilio.Server) string
		apiHits  int // media requests to the API host, all with the credentials
	}{
		{"on the API host: the credentials go there, not to the CDN it redirects to",
			func(f *faketwilio.Server) string { return f.URL + "/media/" + name }, 1},
		{"on another host: fetched without them",
			func(f *faketwilio.Server) string { return f.CDNURL + "/cdn/" + name + "?Expires=1&Signature=c2ln" }, 0},
		// Go itself would keep Authorization for the same host name on another port.
		{"on the API host's name but another port: fetched without them",
			func(f *faketwilio.Server) string {
				return strings.Replace(f.CDNURL, "localhost", "127.0.0.1", 1) + "/cdn/" + name + "?Expires=1&Signature=c2ln"
			}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fake := faketwilio.New(t, hookAccount, hookToken)
			fake.AddMedia(name, "image/jpeg", hookJPEG)
			e := newHookEnv(t, func(c *Config, _ *providers.Deps) { c.APIURL = fake.URL })
			form := fake.InboundForm(faketwilio.Inbound{MessageSID: hookMMSSid, From: hookContact, To: hookFrom,
				Body: "the box", Media: []faketwilio.InboundMedia{{URL: tc.mediaURL(fake), ContentType: "image/jpeg"}}})
			hookAssertTwiML(t, e.postSigned(hookInbound, form.Encode()))

			if saved := e.media.Saved(); len(saved) != 1 || !bytes.Equal(saved[0].Body, hookJPEG) {
				t.Fatalf("saved %d media items, want the JPEG", len(saved))
			}
			if cdn := fake.CDNRequests(); len(cdn) != 1 || fake.CDNSawAuthorization() {
				t.Fatalf("CDN requests %+v: want one, without an Authorization header", cdn)
			}
			var hits int
			for _, r := range fake.RequestLog() {
				if r.Endpoint == faketwilio.Media {
					hits++
					if !r.Authorized {
						t.Errorf("a media request to the API host came without the account's credentials")
					}
				}
			}
			if hits != tc.apiHits {
				t.Fatalf("%d media requests to the API host, want %d", hits, tc.apiHits)
			}
		})
	}
}

func TestMediaRequestCarriesCredentialsForTwiliosAPIOriginsOnly(t *testing.T) {
	cases := []struct {
		apiURL   string // the channel's api_url ("" for the default)
		mediaURL string
		creds    bool
	}{
		{"", "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1", true},
		{"", "https://API.Twilio.com:443/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1", true},
		{"", "http://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1", false},
		{"", "https://api.twilio.com:8443/media/ME1", false},
		{"", "https://api.twilio.com.attacker.example/media/ME1", false},
		{"", "https://attacker.example/media?u=https://api.twilio.com/", false},
		{"", "https://s3-external-1.amazonaws.com/media.twiliocdn.com/AC1/ME1", false},
		{"", "https://user@api.twilio.com/media/ME1", true}, // the fetcher refuses userinfo before any request
		{"", "::not a url", false},
		{"https://twilio-proxy.internal.example:8443", "https://twilio-proxy.internal.example:8443/media/ME1", true},
		{"https://twilio-proxy.internal.example:8443", "https://api.twilio.com/media/ME1", true},
		{"https://twilio-proxy.internal.example:8443", "https://twilio-proxy.internal.example/media/ME1", false},
	}
	log, _ := testkit.NewLogger()
	for _, c := range cases {
		p := &Provider{cfg: Config{AccountSID: hookAccount, AuthToken: hookToken, APIURL: c.apiURL},
			deps: providers.Deps{ChannelID: hookChannel, Log: log}}
		req := p.mediaRequest(hookMMSSid, c.mediaURL)
		if got := req.Username == hookAccount && req.Password == hookToken; got != c.creds || req.URL != c.mediaURL {
			t.Errorf("api_url %q, media %q: credentials %v, want %v", c.apiURL, c.mediaURL, got, c.creds)
		}
		if !c.creds && (req.Username != "" || req.Password != "") {
			t.Errorf("media %q: partial credentials", c.mediaURL)
		}
	}
}
