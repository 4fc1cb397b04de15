package adapter

import (
	"strings"
	"testing"
)

const twilioChannelYAML = `
platform:
  webhook_url: "https://app.bony.chat/custom/channel/webhook/"
channels:
  - id: sms01
    token: "sms-channel-token-0001"
    id_type: phone
    provider: twilio
    twilio:
      account_sid: "AC0123456789abcdef0123456789abcdef"
      auth_token: "${TWILIO_AUTH_TOKEN}"
      previous_auth_token: ""
      from: "+15550001111"
      messaging_service_sid: ""
      api_url: ""
      mms: true
      whatsapp: false
`

func TestConfigTwilioChannelParses(t *testing.T) {
	cfg, err := ParseConfig([]byte(twilioChannelYAML), func(k string) (string, bool) {
		return "twilioauthtoken0001", k == "TWILIO_AUTH_TOKEN"
	})
	if err != nil {
		t.Fatal(err)
	}
	tw := cfg.Channels[0].Twilio
	if tw == nil || tw.AccountSID != "AC0123456789abcdef0123456789abcdef" || tw.AuthToken.Reveal() != "twilioauthtoken0001" || tw.From != "+15550001111" {
		t.Fatalf("twilio section not parsed: %+v", tw)
	}
	found := false
	for _, s := range cfg.secrets() {
		found = found || s == "twilioauthtoken0001"
	}
	if !found {
		t.Error("the Twilio auth token must be among the secrets redacted from logs")
	}
}

func TestConfigTwilioProblemsHaveKeyPaths(t *testing.T) {
	cases := []struct{ name, replace, with, want string }{
		{"missing section", "    twilio:\n", "    twilio_off:\n", "channels[0].twilio_off: unknown key"},
		{"bad account sid", `account_sid: "AC0123456789abcdef0123456789abcdef"`, `account_sid: "AC12"`, "channels[0].twilio.account_sid: must be AC followed by 32 hex characters"},
		{"token with symbols", `auth_token: "${TWILIO_AUTH_TOKEN}"`, `auth_token: "tok-en"`, "channels[0].twilio.auth_token: must be letters and digits only"},
		{"no sender", `from: "+15550001111"`, `from: ""`, "channels[0].twilio.from: one of from or messaging_service_sid is required"},
		{"from not E.164", `from: "+15550001111"`, `from: "5550001111"`, "channels[0].twilio.from: must be an E.164 number"},
		{"bad service sid", `messaging_service_sid: ""`, `messaging_service_sid: "MG1"`, "channels[0].twilio.messaging_service_sid: must be MG"},
		{"bad api url", `api_url: ""`, `api_url: "ftp://x"`, "channels[0].twilio.api_url: must be an absolute http(s) URL"},
		{"reconcile_wait too short to be safe", `api_url: ""`, "api_url: \"\"\n      reconcile_wait: 100ms",
			"channels[0].twilio.reconcile_wait: must be at least 1s"},
		{"reconcile_wait past its mark's life", `api_url: ""`, "api_url: \"\"\n      reconcile_wait: 25h",
			"channels[0].twilio.reconcile_wait: must be at most 24h"},
		{"previous_auth_token_until not a date", `previous_auth_token: ""`,
			"previous_auth_token: \"oldtoken01\"\n      previous_auth_token_until: soon",
			"channels[0].twilio.previous_auth_token_until: must be a date such as 2026-12-31"},
		{"custom id type", "id_type: phone", "id_type: custom", "channels[0].id_type: must be phone for provider twilio"},
		{"twilio section on a console channel", "provider: twilio", "provider: console", "channels[0].twilio: only for provider twilio"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			raw := strings.Replace(twilioChannelYAML, tc.replace, tc.with, 1)
			_, err := ParseConfig([]byte(raw), func(string) (string, bool) { return "twilioauthtoken0001", true })
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want a problem containing %q, got %v", tc.want, err)
			}
		})
	}
	_, err := ParseConfig([]byte(strings.Replace(twilioChannelYAML, "    twilio:\n", "    twilio_off:\n", 1)), func(string) (string, bool) { return "x", true })
	if err == nil || !strings.Contains(err.Error(), "channels[0].twilio: required for provider twilio") {
		t.Fatalf("a twilio channel without its section must say so: %v", err)
	}
}

func TestConfigOutboundWaitMustFitTheWriteTimeout(t *testing.T) {
	raw := strings.Replace(twilioChannelYAML, "platform:", "http:\n  write_timeout: 6s\noutbound:\n  wait: 5s\nplatform:", 1)
	_, err := ParseConfig([]byte(raw), func(string) (string, bool) { return "twilioauthtoken0001", true })
	if err == nil || !strings.Contains(err.Error(), "outbound.wait: must be at least 5s below http.write_timeout") {
		t.Fatalf("want the wait/write_timeout problem, got %v", err)
	}
}
