package mailgun

import (
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func validConfig() Config {
	return Config{Domain: "mg.example.com", APIKey: "key-1", WebhookSigningKey: "sign-1",
		From: "Acme Support <support@mg.example.com>", Subject: "Your conversation with Acme"}
}

func TestConfigYAMLKeys(t *testing.T) {
	src := `
domain: "mg.example.com"
api_key: "key-abc"
webhook_signing_key: "sign-def"
api_url: "https://api.eu.mailgun.net"
from: "Acme Support <support@mg.example.com>"
subject: "Your conversation with Acme"
signature_max_age: 8h
`
	var c Config
	if err := yaml.Unmarshal([]byte(src), &c); err != nil {
		t.Fatal(err)
	}
	if c.Domain != "mg.example.com" || c.APIKey.Reveal() != "key-abc" || c.WebhookSigningKey.Reveal() != "sign-def" ||
		c.APIURL != "https://api.eu.mailgun.net" || c.From != "Acme Support <support@mg.example.com>" ||
		c.Subject != "Your conversation with Acme" || c.SignatureMaxAge != 8*time.Hour {
		t.Fatalf("decoded %+v", c)
	}
	if p := c.Problems(); len(p) != 0 {
		t.Fatalf("problems: %v", p)
	}
	if got := c.apiBase(); got != "https://api.eu.mailgun.net/v3" {
		t.Fatalf("apiBase = %q", got)
	}
	if !slices.Equal(c.Secrets(), []string{"key-abc", "sign-def"}) {
		t.Fatalf("Secrets = %v", c.Secrets())
	}
}

func TestConfigDefaults(t *testing.T) {
	c := validConfig()
	if p := c.Problems(); len(p) != 0 {
		t.Fatalf("problems: %v", p)
	}
	if c.apiBase() != "https://api.mailgun.net/v3" || c.EffectiveSignatureMaxAge() != 24*time.Hour {
		t.Fatalf("defaults: %q %v", c.apiBase(), c.EffectiveSignatureMaxAge())
	}
	c.APIURL = "http://127.0.0.1:8080/"
	if c.apiBase() != "http://127.0.0.1:8080/v3" {
		t.Fatalf("apiBase = %q", c.apiBase())
	}
}

func TestConfigProblems(t *testing.T) {
	cases := []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"no domain", func(c *Config) { c.Domain = "" }, "domain: required"},
		{"bad domain", func(c *Config) { c.Domain = "mg.example.com/x" }, "domain: must be a domain name"},
		{"no api key", func(c *Config) { c.APIKey = "" }, "api_key: required"},
		{"no signing key", func(c *Config) { c.WebhookSigningKey = "" }, "webhook_signing_key: required"},
		{"signing key is the api key", func(c *Config) { c.WebhookSigningKey = c.APIKey }, "webhook_signing_key: must be the HTTP webhook signing key"},
		{"api_url not http", func(c *Config) { c.APIURL = "ftp://api.mailgun.net" }, "api_url:"},
		{"api_url with version", func(c *Config) { c.APIURL = "https://api.mailgun.net/v3" }, "api_url:"},
		{"no from", func(c *Config) { c.From = "" }, "from: required"},
		{"bad from", func(c *Config) { c.From = "Acme Support" }, "from: must be an e-mail address"},
		{"no subject", func(c *Config) { c.Subject = " " }, "subject: required"},
		{"multi-line subject", func(c *Config) { c.Subject = "a\r\nBcc: x@y.z" }, "subject: must be one line"},
		{"negative max age", func(c *Config) { c.SignatureMaxAge = -time.Hour }, "signature_max_age:"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := validConfig()
			c.edit(&cfg)
			probs := cfg.Problems()
			if len(probs) != 1 || !strings.HasPrefix(probs[0], c.want) {
				t.Fatalf("problems = %q, want one starting %q", probs, c.want)
			}
			for _, p := range probs {
				if strings.Contains(p, "key-1") || strings.Contains(p, "sign-1") {
					t.Fatalf("a secret is in a problem: %q", p)
				}
			}
		})
	}
}
