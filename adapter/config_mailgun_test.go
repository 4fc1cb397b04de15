package adapter

import (
	"strings"
	"testing"
)

const mailgunChannelYAML = `
platform:
  webhook_url: "https://app.bony.chat/custom/channel/webhook/"
channels:
  - id: mail01
    token: "mail-channel-token-0001"
    id_type: custom
    provider: mailgun
    mailgun:
      domain: "mg.example.com"
      api_key: "${MAILGUN_API_KEY}"
      webhook_signing_key: "${MAILGUN_SIGNING_KEY}"
      api_url: ""
      from: "Acme Support <support@mg.example.com>"
      subject: "Your conversation with Acme"
      signature_max_age: 24h
`

func mailgunEnv(k string) (string, bool) {
	switch k {
	case "MAILGUN_API_KEY":
		return "key-api-0000000000000001", true
	case "MAILGUN_SIGNING_KEY":
		return "key-sign-000000000000001", true
	}
	return "", false
}

func TestConfigMailgunChannelParses(t *testing.T) {
	cfg, err := ParseConfig([]byte(mailgunChannelYAML), mailgunEnv)
	if err != nil {
		t.Fatal(err)
	}
	mg := cfg.Channels[0].Mailgun
	if mg == nil || mg.Domain != "mg.example.com" || mg.WebhookSigningKey.Reveal() != "key-sign-000000000000001" {
		t.Fatalf("mailgun section not parsed: %+v", mg)
	}
	secrets := strings.Join(cfg.secrets(), " ")
	if !strings.Contains(secrets, "key-api-0000000000000001") || !strings.Contains(secrets, "key-sign-000000000000001") {
		t.Error("the Mailgun API and signing keys must be redacted from logs")
	}
}

func TestConfigMailgunProblemsHaveKeyPaths(t *testing.T) {
	cases := []struct{ name, replace, with, want string }{
		{"no signing key", `webhook_signing_key: "${MAILGUN_SIGNING_KEY}"`, `webhook_signing_key: ""`, "channels[0].mailgun.webhook_signing_key: required"},
		{"signing key is the api key", `webhook_signing_key: "${MAILGUN_SIGNING_KEY}"`, `webhook_signing_key: "${MAILGUN_API_KEY}"`, "channels[0].mailgun.webhook_signing_key: must be the HTTP webhook signing key"},
		{"bad domain", `domain: "mg.example.com"`, `domain: "mg"`, "channels[0].mailgun.domain: must be a domain name"},
		{"reconcile_wait too short to be safe", "      signature_max_age: 24h\n", "      signature_max_age: 24h\n      reconcile_wait: 10ms\n",
			"channels[0].mailgun.reconcile_wait: must be at least 1s"},
		{"phone id type", "id_type: custom", "id_type: phone", "channels[0].id_type: must be custom for provider mailgun"},
		{"section on a console channel", "provider: mailgun", "provider: console", "channels[0].mailgun: only for provider mailgun"},
		{"section missing", "    mailgun:\n", "    mailgun_off:\n", "channels[0].mailgun: required for provider mailgun"},
		{"signatures outlive the dedupe window", "channels:", "inbound:\n  dedupe_window: 1h\nchannels:",
			"channels[0].mailgun.signature_max_age: must not exceed inbound.dedupe_window"},
		// Left out, signature_max_age is 24h: the check holds for the default too.
		{"the default outlives the dedupe window", "      signature_max_age: 24h\n", "inbound:\n  dedupe_window: 1h\n",
			"channels[0].mailgun.signature_max_age: must not exceed inbound.dedupe_window (24h when not set)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(strings.Replace(mailgunChannelYAML, tc.replace, tc.with, 1)), mailgunEnv)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want a problem containing %q, got %v", tc.want, err)
			}
		})
	}
}
