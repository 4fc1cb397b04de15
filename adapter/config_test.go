package adapter

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/bonychat/bonychat-adapter/schema"
)

// cfgEnv is a lookup function over a fixed set of variables.
func cfgEnv(vars map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	}
}

// cfgNoEnv is a lookup function for which no variable is set.
func cfgNoEnv(string) (string, bool) { return "", false }

// cfgChannel is a valid single-channel configuration with extra YAML in
// front; the token is given literally.
func cfgChannel(extra, token string) string {
	return extra + `
platform:
  webhook_url: "http://127.0.0.1:1/webhook"
channels:
  - id: "c1"
    token: "` + token + `"
    id_type: phone
    provider: console
`
}

// cfgMustParse parses raw and fails the test on any problem.
func cfgMustParse(t *testing.T, raw string, lookup func(string) (string, bool)) *Config {
	t.Helper()
	cfg, err := ParseConfig([]byte(raw), lookup)
	if err != nil {
		t.Fatalf("ParseConfig: unexpected error: %v\nconfig:\n%s", err, raw)
	}
	if cfg == nil {
		t.Fatal("ParseConfig returned a nil config and no error")
	}
	return cfg
}

// cfgProblems parses raw, requires a *ConfigError and returns its problems.
func cfgProblems(t *testing.T, raw string, lookup func(string) (string, bool)) []string {
	t.Helper()
	cfg, err := ParseConfig([]byte(raw), lookup)
	return cfgErrorProblems(t, cfg, err)
}

func cfgErrorProblems(t *testing.T, cfg *Config, err error) []string {
	t.Helper()
	if err == nil {
		t.Fatalf("expected a *ConfigError, got a valid config: %+v", cfg)
	}
	if cfg != nil {
		t.Errorf("a config was returned along with the error %v", err)
	}
	var ce *ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("error is %T (%v), want *ConfigError", err, err)
	}
	if len(ce.Problems) == 0 {
		t.Fatalf("*ConfigError with no problems: %v", err)
	}
	return ce.Problems
}

// cfgRequireProblem fails unless problems contains want exactly.
func cfgRequireProblem(t *testing.T, problems []string, want string) {
	t.Helper()
	if !slices.Contains(problems, want) {
		t.Errorf("problem %q not reported; got:\n  %s", want, strings.Join(problems, "\n  "))
	}
}

const cfgToken = "cfg-test-token-0123456789"

func TestConfigFullValidFileSetsEveryKey(t *testing.T) {
	cfg, err := LoadConfig("../testdata/config/full.yaml")
	if err != nil {
		t.Fatalf("LoadConfig: %v", err)
	}
	if len(cfg.Channels) != 2 {
		t.Fatalf("got %d channels, want 2", len(cfg.Channels))
	}
	ch0, ch1 := cfg.Channels[0], cfg.Channels[1]
	tests := []struct {
		key       string
		got, want any
	}{
		{"listen", cfg.Listen, "127.0.0.1:9090"},
		{"public_url", cfg.PublicURL, "https://adapter.example.test"},
		{"base_path", cfg.BasePath, "/bony"},
		{"log.level", cfg.Log.Level, "debug"},
		{"log.format", cfg.Log.Format, "text"},
		{"http.max_body_bytes", cfg.HTTP.MaxBodyBytes, int64(2048)},
		{"http.read_header_timeout", cfg.HTTP.ReadHeaderTimeout, 1 * time.Second},
		{"http.read_timeout", cfg.HTTP.ReadTimeout, 2 * time.Second},
		{"http.write_timeout", cfg.HTTP.WriteTimeout, 13 * time.Second},
		{"http.idle_timeout", cfg.HTTP.IdleTimeout, 4 * time.Second},
		{"http.shutdown_timeout", cfg.HTTP.ShutdownTimeout, 5 * time.Second},
		{"platform.webhook_url", cfg.Platform.WebhookURL, "https://bonychat.example.test/webhook"},
		{"platform.timeout", cfg.Platform.Timeout, 6 * time.Second},
		{"platform.retries", cfg.Platform.Retries, 7},
		{"platform.retry_min", cfg.Platform.RetryMin, 100 * time.Millisecond},
		{"platform.retry_max", cfg.Platform.RetryMax, 8 * time.Second},
		{"platform.rate_limit", cfg.Platform.RateLimit, 9.0},
		{"platform.max_age", cfg.Platform.MaxAge, 10 * time.Hour},
		{"store", cfg.Store, "sqlite:/var/lib/bonychat-adapter/adapter.db"},
		{"outbound.wait", cfg.Outbound.Wait, 2 * time.Second},
		{"outbound.max_age", cfg.Outbound.MaxAge, 11 * time.Hour},
		{"outbound.retry_min", cfg.Outbound.RetryMin, 200 * time.Millisecond},
		{"outbound.retry_max", cfg.Outbound.RetryMax, 12 * time.Second},
		{"outbound.workers", cfg.Outbound.Workers, 13},
		{"outbound.send_timeout", cfg.Outbound.SendTimeout, 14 * time.Second},
		{"inbound.dedupe_window", cfg.Inbound.DedupeWindow, 15 * time.Hour},
		{"media.dir", cfg.Media.Dir, "/var/lib/bonychat-adapter/media"},
		{"media.retention", cfg.Media.Retention, 16 * time.Hour},
		{"media.max_bytes", cfg.Media.MaxBytes, int64(1700)},
		{"media.allow_private_networks", cfg.Media.AllowPrivateNetworks, true},
		{"demo.platform", cfg.Demo.Platform, true},
		{"channels[0].id", ch0.ID, "sms-main"},
		{"channels[0].token", ch0.Token.Reveal(), "fixture-token-main-0001"},
		{"channels[0].previous_token", ch0.PreviousToken.Reveal(), "fixture-token-prev-0001"},
		{"channels[0].id_type", ch0.IDType, schema.IDTypePhone},
		{"channels[0].webhook_url", ch0.WebhookURL, "https://bonychat.example.test/channel-hook"},
		{"channels[0].provider", ch0.Provider, "console"},
		{"channels[0] uses its own webhook", ch0.Webhook(cfg.Platform), "https://bonychat.example.test/channel-hook"},
		{"channels[1].id", ch1.ID, "custom_2"},
		{"channels[1].token", ch1.Token.Reveal(), "fixture-token-custom-0002"},
		{"channels[1].previous_token", ch1.PreviousToken.Reveal(), ""},
		{"channels[1].id_type", ch1.IDType, schema.IDTypeCustom},
		{"channels[1].webhook_url", ch1.WebhookURL, ""},
		{"channels[1] falls back to the platform webhook", ch1.Webhook(cfg.Platform), "https://bonychat.example.test/webhook"},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("%s = %#v, want %#v", tt.key, tt.got, tt.want)
			}
		})
	}
}

func TestConfigDefaultsApplyWhenKeysAreOmitted(t *testing.T) {
	cfg := cfgMustParse(t, cfgChannel("", cfgToken), cfgNoEnv)
	tests := []struct {
		key       string
		got, want any
	}{
		{"listen", cfg.Listen, "127.0.0.1:8080"},
		{"public_url", cfg.PublicURL, "http://127.0.0.1:8080"},
		{"base_path", cfg.BasePath, ""},
		{"log.level", cfg.Log.Level, "info"},
		{"log.format", cfg.Log.Format, "json"},
		{"http.max_body_bytes", cfg.HTTP.MaxBodyBytes, int64(1 << 20)},
		{"http.read_header_timeout", cfg.HTTP.ReadHeaderTimeout, 5 * time.Second},
		{"http.read_timeout", cfg.HTTP.ReadTimeout, 30 * time.Second},
		{"http.write_timeout", cfg.HTTP.WriteTimeout, 60 * time.Second},
		{"http.idle_timeout", cfg.HTTP.IdleTimeout, 120 * time.Second},
		{"http.shutdown_timeout", cfg.HTTP.ShutdownTimeout, 15 * time.Second},
		{"platform.timeout", cfg.Platform.Timeout, 10 * time.Second},
		{"platform.retries", cfg.Platform.Retries, 2},
		{"platform.retry_min", cfg.Platform.RetryMin, time.Second},
		{"platform.retry_max", cfg.Platform.RetryMax, 5 * time.Minute},
		{"platform.rate_limit", cfg.Platform.RateLimit, 20.0},
		{"platform.max_age", cfg.Platform.MaxAge, 72 * time.Hour},
		{"store", cfg.Store, "sqlite:data/adapter.db"},
		{"outbound.wait", cfg.Outbound.Wait, 5 * time.Second},
		{"outbound.max_age", cfg.Outbound.MaxAge, 24 * time.Hour},
		{"outbound.retry_min", cfg.Outbound.RetryMin, time.Second},
		{"outbound.retry_max", cfg.Outbound.RetryMax, 5 * time.Minute},
		{"inbound.dedupe_window", cfg.Inbound.DedupeWindow, 7 * 24 * time.Hour},
		{"media.dir", cfg.Media.Dir, "data/media"},
		{"media.retention", cfg.Media.Retention, 90 * 24 * time.Hour},
		{"media.max_bytes", cfg.Media.MaxBytes, int64(20 << 20)},
		{"demo.platform", cfg.Demo.Platform, false},
		{"channels[0].previous_token", cfg.Channels[0].PreviousToken.Reveal(), ""},
		{"channels[0].webhook_url", cfg.Channels[0].WebhookURL, ""},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("%s = %#v, want the default %#v", tt.key, tt.got, tt.want)
			}
		})
	}
}

func TestConfigPartialSectionKeepsDefaultsOfItsOtherKeys(t *testing.T) {
	cfg := cfgMustParse(t, cfgChannel("http:\n  max_body_bytes: 10\nlog:\n  level: warn\n", cfgToken), cfgNoEnv)
	if cfg.HTTP.MaxBodyBytes != 10 || cfg.Log.Level != "warn" {
		t.Fatalf("set keys not applied: max_body_bytes=%d level=%q", cfg.HTTP.MaxBodyBytes, cfg.Log.Level)
	}
	if cfg.HTTP.ShutdownTimeout != 15*time.Second || cfg.Log.Format != "json" {
		t.Errorf("omitted keys lost their defaults: shutdown_timeout=%v format=%q", cfg.HTTP.ShutdownTimeout, cfg.Log.Format)
	}
}

func TestConfigExpandsEnvironmentVariablesInValues(t *testing.T) {
	env := cfgEnv(map[string]string{
		"X":      "abcdefghijklmnop",
		"HOST":   "adapter.example.test",
		"PORT":   "8443",
		"EMPTY":  "",
		"TRICKY": `x: "y" # {z} [w] ${X}`,
	})
	tests := []struct {
		name  string
		value string // YAML for channels[0].token, public_url or base_path
		field func(*Config) string
		want  string
	}{
		{"whole value", `token: "${X}"`, cfgTokenOf, "abcdefghijklmnop"},
		{"unquoted whole value", `token: ${X}`, cfgTokenOf, "abcdefghijklmnop"},
		{"inside a longer string", `token: "Bearer ${X}"`, cfgTokenOf, "Bearer abcdefghijklmnop"},
		{"several variables in one value", `public_url: "https://${HOST}:${PORT}/x"`, cfgPublicURLOf, "https://adapter.example.test:8443/x"},
		{"$$ is a literal dollar", `token: "pa$$word-0123456789"`, cfgTokenOf, "pa$word-0123456789"},
		{"$${X} is a literal ${X}, not expanded", `token: "literal-$${X}-0123"`, cfgTokenOf, "literal-${X}-0123"},
		{"a lone $ is kept", `token: "cost-$5-0123456789"`, cfgTokenOf, "cost-$5-0123456789"},
		{"a $NAME without braces is kept", `token: "$X-0123456789abcdef"`, cfgTokenOf, "$X-0123456789abcdef"},
		{"a set but empty variable expands to empty", `base_path: "${EMPTY}"`, func(c *Config) string { return c.BasePath }, ""},
		{"an expanded value is not parsed as YAML again", `token: "${TRICKY}"`, cfgTokenOf, `x: "y" # {z} [w] ${X}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := cfgWithLine(tt.value)
			cfg := cfgMustParse(t, raw, env)
			if got := tt.field(cfg); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func cfgTokenOf(c *Config) string     { return c.Channels[0].Token.Reveal() }
func cfgPublicURLOf(c *Config) string { return c.PublicURL }

// cfgWithLine is a valid configuration where line sets either the channel's
// token (when it starts with "token:") or a top-level key.
func cfgWithLine(line string) string {
	top, token := line, `token: "`+cfgToken+`"`
	if strings.HasPrefix(line, "token:") {
		top, token = "", line
	}
	return top + `
platform:
  webhook_url: "http://127.0.0.1:1/webhook"
channels:
  - id: "c1"
    ` + token + `
    id_type: phone
    provider: console
`
}

func TestConfigUnsetVariableIsAnErrorNamingTheKeyPath(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		want string
	}{
		{"channel token", cfgWithLine(`token: "${DEMO_TOKEN}"`),
			"channels[0].token: environment variable DEMO_TOKEN is not set"},
		{"inside a longer string", cfgWithLine(`token: "Bearer ${DEMO_TOKEN}"`),
			"channels[0].token: environment variable DEMO_TOKEN is not set"},
		{"nested key", cfgWithLine("log:\n  level: ${LOG_LEVEL}"),
			"log.level: environment variable LOG_LEVEL is not set"},
		{"top-level key", cfgWithLine(`public_url: "https://${PUBLIC_HOST}/"`),
			"public_url: environment variable PUBLIC_HOST is not set"},
		{"second channel", cfgChannel("", cfgToken) + `  - id: "c2"
    token: "${SECOND_TOKEN}"
    id_type: phone
    provider: console
`, "channels[1].token: environment variable SECOND_TOKEN is not set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			problems := cfgProblems(t, tt.raw, cfgNoEnv)
			cfgRequireProblem(t, problems, tt.want)
		})
	}
}

func TestConfigEveryUnsetVariableIsReported(t *testing.T) {
	raw := cfgWithLine(`token: "${A_TOKEN}-${B_SUFFIX}"`)
	problems := cfgProblems(t, raw, cfgNoEnv)
	for _, want := range []string{
		"channels[0].token: environment variable A_TOKEN is not set",
		"channels[0].token: environment variable B_SUFFIX is not set",
	} {
		cfgRequireProblem(t, problems, want)
	}
}

func TestConfigVariableInACommentIsNotExpanded(t *testing.T) {
	tests := []struct {
		name string
		raw  string
	}{
		{"whole-line comment", "# token: ${NOT_SET_ANYWHERE}\n" + cfgChannel("", cfgToken)},
		{"trailing comment", cfgChannel("log:\n  level: info # or ${NOT_SET_ANYWHERE}\n", cfgToken)},
		{"comment inside a channel", cfgWithLine(`token: "` + cfgToken + `" # ${NOT_SET_ANYWHERE}`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfgMustParse(t, tt.raw, cfgNoEnv)
		})
	}
}

// cfgManyProblems is what testdata/config/many-problems.yaml must produce,
// each problem with its key path.
var cfgManyProblems = []string{
	"listne: unknown key (line 4)",
	`base_path: must be empty or "/"-separated segments of letters, digits and . _ ~ - (e.g. /bonychat)`,
	"log.level: must be one of debug, info, warn, error",
	"channels[0].tokn: unknown key (line 12)",
	"channels[0].id_type: must be phone or custom",
	`channels[1].id: duplicate channel id "dup"`,
	"channels[1].token: required",
	"channels[1].webhook_url: required when platform.webhook_url is empty",
	"channels[1].provider: must be one of ", // the list grows with the providers
	"channels[2].token: must be at least 16 characters",
	"channels[2].webhook_url: must be an absolute http(s) URL",
}

func TestConfigListsEveryProblemAtOnce(t *testing.T) {
	cfg, err := LoadConfig("../testdata/config/many-problems.yaml")
	problems := cfgErrorProblems(t, cfg, err)
	matched := make([]bool, len(problems))
	for _, want := range cfgManyProblems {
		t.Run(want, func(t *testing.T) {
			found := false
			for i, p := range problems {
				if p == want || (strings.HasSuffix(want, " ") && strings.HasPrefix(p, want)) {
					found, matched[i] = true, true
				}
			}
			if !found {
				t.Errorf("problem %q not reported; got:\n  %s", want, strings.Join(problems, "\n  "))
			}
			if !strings.Contains(err.Error(), want) {
				t.Errorf("Error() does not list %q:\n%s", want, err.Error())
			}
		})
	}
	for i, p := range problems {
		if !matched[i] {
			t.Errorf("unexpected problem reported: %q", p)
		}
	}
}

func TestConfigErrorListsOneProblemPerLine(t *testing.T) {
	err := &ConfigError{Problems: []string{"a: one", "b: two"}}
	if got, want := err.Error(), "invalid configuration:\n  a: one\n  b: two"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestConfigBasePathIsLiteralSegments(t *testing.T) {
	const problem = `base_path: must be empty or "/"-separated segments of letters, digits and . _ ~ - (e.g. /bonychat)`
	tests := []struct {
		basePath string
		valid    bool
	}{
		{"", true},
		{"/bony", true},
		{"/bony/chat", true},
		{"bony", false},
		{"/bony/", false},
		{"/", false},
		{"bony/", false},
		{"/*x", false},      // a router wildcard
		{"/:tenant", false}, // a router parameter
		{"/bony//chat", false},
		{"/bony chat", false},
		{"/..", false},
		{"/bony/.", false},
		{"/.well-known", true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.basePath), func(t *testing.T) {
			raw := cfgChannel(fmt.Sprintf("base_path: %q\n", tt.basePath), cfgToken)
			if tt.valid {
				if got := cfgMustParse(t, raw, cfgNoEnv).BasePath; got != tt.basePath {
					t.Errorf("base_path = %q, want %q", got, tt.basePath)
				}
				return
			}
			cfgRequireProblem(t, cfgProblems(t, raw, cfgNoEnv), problem)
		})
	}
}

func TestConfigURLsMustBeAbsoluteHTTP(t *testing.T) {
	tests := []struct {
		name    string
		raw     func(url string) string
		problem string
	}{
		{"public_url", func(u string) string { return cfgChannel("public_url: "+u+"\n", cfgToken) },
			"public_url: must be an absolute http(s) URL without query or fragment"},
		{"platform.webhook_url", func(u string) string {
			return strings.Replace(cfgChannel("", cfgToken), `"http://127.0.0.1:1/webhook"`, u, 1)
		}, "platform.webhook_url: must be an absolute http(s) URL"},
		{"channels[0].webhook_url", func(u string) string {
			return cfgChannel("", cfgToken) + "    webhook_url: " + u + "\n"
		}, "channels[0].webhook_url: must be an absolute http(s) URL"},
	}
	urls := []struct {
		url   string
		valid bool
	}{
		{`"http://127.0.0.1:9/hook"`, true},
		{`"https://bonychat.example.test/hook"`, true},
		{`"ftp://bonychat.example.test/hook"`, false},
		{`"bonychat.example.test/hook"`, false},
		{`"/relative/hook"`, false},
		{`"http://"`, false},
		{`"mailto:ops@example.test"`, false},
	}
	for _, tt := range tests {
		for _, u := range urls {
			t.Run(tt.name+"="+u.url, func(t *testing.T) {
				raw := tt.raw(u.url)
				if u.valid {
					cfgMustParse(t, raw, cfgNoEnv)
					return
				}
				cfgRequireProblem(t, cfgProblems(t, raw, cfgNoEnv), tt.problem)
			})
		}
	}
}

func TestConfigChannelWithoutAnyWebhookURLIsAnError(t *testing.T) {
	raw := `channels:
  - id: "c1"
    token: "` + cfgToken + `"
    id_type: phone
    provider: console
  - id: "c2"
    token: "` + cfgToken + `"
    id_type: phone
    provider: console
    webhook_url: "https://bonychat.example.test/hook"
`
	problems := cfgProblems(t, raw, cfgNoEnv)
	cfgRequireProblem(t, problems, "channels[0].webhook_url: required when platform.webhook_url is empty")
	for _, p := range problems {
		if strings.HasPrefix(p, "channels[1].") {
			t.Errorf("channel with its own webhook_url reported: %q", p)
		}
	}
}

func TestConfigChannelFieldRules(t *testing.T) {
	long := strings.Repeat("a", 101)
	tests := []struct {
		name    string
		channel string // YAML of the one channel, indented under "  - "
		problem string // "" when valid
	}{
		{"token of 16 characters is enough", `{id: c1, token: "0123456789abcdef", id_type: phone, provider: console}`, ""},
		{"token of 15 characters is too short", `{id: c1, token: "0123456789abcde", id_type: phone, provider: console}`,
			"channels[0].token: must be at least 16 characters"},
		{"missing token is required", `{id: c1, id_type: phone, provider: console}`, "channels[0].token: required"},
		{"previous_token of 15 characters is too short",
			`{id: c1, token: "` + cfgToken + `", previous_token: "0123456789abcde", id_type: phone, provider: console}`,
			"channels[0].previous_token: must be at least 16 characters"},
		{"previous_token of 16 characters is accepted",
			`{id: c1, token: "` + cfgToken + `", previous_token: "0123456789abcdef", id_type: phone, provider: console}`, ""},
		{"previous_token_until as an unquoted date is accepted",
			`{id: c1, token: "` + cfgToken + `", previous_token: "0123456789abcdef", previous_token_until: 2026-12-31, id_type: phone, provider: console}`, ""},
		{"previous_token_until as an RFC 3339 time is accepted",
			`{id: c1, token: "` + cfgToken + `", previous_token: "0123456789abcdef", previous_token_until: "2026-12-31T18:00:00+01:00", id_type: phone, provider: console}`, ""},
		{"previous_token_until in words is refused",
			`{id: c1, token: "` + cfgToken + `", previous_token: "0123456789abcdef", previous_token_until: next week, id_type: phone, provider: console}`,
			"channels[0].previous_token_until: must be a date such as 2026-12-31 or a time such as 2026-12-31T18:00:00Z"},
		{"previous_token_until without previous_token is accepted (start-up warns)",
			`{id: c1, token: "` + cfgToken + `", previous_token_until: 2026-12-31, id_type: phone, provider: console}`, ""},
		{"missing id is required", `{token: "` + cfgToken + `", id_type: phone, provider: console}`, "channels[0].id: required"},
		{"id with a space is refused", `{id: "c 1", token: "` + cfgToken + `", id_type: phone, provider: console}`,
			"channels[0].id: must be 1 to 100 characters of A-Z a-z 0-9 _ -"},
		{"id with a slash is refused", `{id: "c/1", token: "` + cfgToken + `", id_type: phone, provider: console}`,
			"channels[0].id: must be 1 to 100 characters of A-Z a-z 0-9 _ -"},
		{"id of 101 characters is refused", `{id: "` + long + `", token: "` + cfgToken + `", id_type: phone, provider: console}`,
			"channels[0].id: must be 1 to 100 characters of A-Z a-z 0-9 _ -"},
		{"id of 100 characters is accepted", `{id: "` + long[:100] + `", token: "` + cfgToken + `", id_type: phone, provider: console}`, ""},
		{"id_type custom is accepted", `{id: c1, token: "` + cfgToken + `", id_type: custom, provider: console}`, ""},
		{"id_type email is refused", `{id: c1, token: "` + cfgToken + `", id_type: email, provider: console}`,
			"channels[0].id_type: must be phone or custom"},
		{"missing id_type is refused", `{id: c1, token: "` + cfgToken + `", provider: console}`,
			"channels[0].id_type: must be phone or custom"},
		{"unknown provider is refused", `{id: c1, token: "` + cfgToken + `", id_type: phone, provider: carrier-pigeon}`,
			"channels[0].provider: must be one of "},
		{"missing provider is refused", `{id: c1, token: "` + cfgToken + `", id_type: phone}`,
			"channels[0].provider: must be one of "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := "platform:\n  webhook_url: \"http://127.0.0.1:1/webhook\"\nchannels:\n  - " + tt.channel + "\n"
			if tt.problem == "" {
				cfgMustParse(t, raw, cfgNoEnv)
				return
			}
			problems := cfgProblems(t, raw, cfgNoEnv)
			if strings.HasSuffix(tt.problem, " ") { // a prefix: the rest lists what is allowed
				if !slices.ContainsFunc(problems, func(p string) bool { return strings.HasPrefix(p, tt.problem) }) {
					t.Errorf("no problem starting with %q; got:\n  %s", tt.problem, strings.Join(problems, "\n  "))
				}
				return
			}
			cfgRequireProblem(t, problems, tt.problem)
		})
	}
}

func TestConfigDuplicateChannelIDsAreReportedOnTheSecond(t *testing.T) {
	raw := cfgChannel("", cfgToken) + `  - id: "c1"
    token: "` + cfgToken + `"
    id_type: custom
    provider: console
`
	problems := cfgProblems(t, raw, cfgNoEnv)
	cfgRequireProblem(t, problems, `channels[1].id: duplicate channel id "c1"`)
	if slices.ContainsFunc(problems, func(p string) bool { return strings.HasPrefix(p, "channels[0].") }) {
		t.Errorf("the first channel with the id was reported too: %q", problems)
	}
}

func TestConfigGlobalSettingRules(t *testing.T) {
	tests := []struct {
		name    string
		extra   string
		problem string // "" when valid
	}{
		{"log.level debug", "log:\n  level: debug\n", ""},
		{"log.level info", "log:\n  level: info\n", ""},
		{"log.level warn", "log:\n  level: warn\n", ""},
		{"log.level error", "log:\n  level: error\n", ""},
		{"log.level verbose is refused", "log:\n  level: verbose\n", "log.level: must be one of debug, info, warn, error"},
		{"log.format text", "log:\n  format: text\n", ""},
		{"log.format xml is refused", "log:\n  format: xml\n", "log.format: must be json or text"},
		{"empty listen is refused", "listen: \"\"\n", "listen: required"},
		{"http.max_body_bytes 0 is refused", "http:\n  max_body_bytes: 0\n", "http.max_body_bytes: must be greater than 0"},
		{"platform.retries 0 is accepted", "platform:\n  retries: 0\n", ""},
		{"platform.retries -1 is refused", "platform:\n  retries: -1\n", "platform.retries: must be 0 or more"},
		{"platform.retry_min above retry_max is refused", "platform:\n  retry_min: 6s\n  retry_max: 5s\n",
			"platform.retry_max: must not be below platform.retry_min"},
		{"platform.retry_min 0 is refused", "platform:\n  retry_min: 0s\n",
			"platform.retry_min: must be greater than 0"},
		{"outbound.retry_max below retry_min is refused", "outbound:\n  retry_min: 2s\n  retry_max: 1s\n",
			"outbound.retry_max: must not be below outbound.retry_min"},
		{"outbound.wait 0 is refused", "outbound:\n  wait: 0s\n", "outbound.wait: must be greater than 0"},
		{"store with an unknown scheme is refused", "store: \"postgres://x\"\n", `store: must be "sqlite:PATH" (a file path) or "memory:"`},
		{"platform.timeout 0 is refused", "platform:\n  timeout: 0s\n", "platform.timeout: must be greater than 0"},
		{"negative http timeout is refused", "http:\n  idle_timeout: -1s\n", "http.idle_timeout: must not be negative"},
		{"listen without a port is refused", "listen: nonsense\n", "listen: must be host:port, e.g. 127.0.0.1:8080"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := cfgChannel(tt.extra, cfgToken)
			if strings.HasPrefix(tt.extra, "platform:") { // merge into the one platform section
				raw = strings.Replace(cfgChannel("", cfgToken), "platform:\n", tt.extra, 1)
			}
			if tt.problem == "" {
				cfgMustParse(t, raw, cfgNoEnv)
				return
			}
			cfgRequireProblem(t, cfgProblems(t, raw, cfgNoEnv), tt.problem)
		})
	}
}

func TestConfigUnknownKeysAreReportedWithTheirPath(t *testing.T) {
	tests := []struct {
		name    string
		raw     string
		problem string
	}{
		{"top level", cfgChannel("listne: \"127.0.0.1:1\"\n", cfgToken), "listne: unknown key (line 1)"},
		{"nested", cfgChannel("log:\n  levle: info\n", cfgToken), "log.levle: unknown key (line 2)"},
		{"in a channel", cfgChannel("", cfgToken) + "    tokn: x\n", "channels[0].tokn: unknown key (line 9)"},
		{"in the second channel", cfgChannel("", cfgToken) + `  - id: "c2"
    token: "` + cfgToken + `"
    id_type: phone
    provider: console
    provder: console
`, "channels[1].provder: unknown key (line 13)"},
		{"a merge key", cfgChannel("log: &l\n  level: info\nhttp:\n  <<: *l\n", cfgToken),
			"http.<<: YAML merge keys (<<) are not supported; write the keys out (line 4)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfgRequireProblem(t, cfgProblems(t, tt.raw, cfgNoEnv), tt.problem)
		})
	}
}

func TestConfigEmptyChannelsListIsAnError(t *testing.T) {
	tests := []struct {
		name string
		raw  string
	}{
		{"empty list", "platform:\n  webhook_url: \"http://127.0.0.1:1/webhook\"\nchannels: []\n"},
		{"key omitted", "platform:\n  webhook_url: \"http://127.0.0.1:1/webhook\"\n"},
		{"key with no value", "platform:\n  webhook_url: \"http://127.0.0.1:1/webhook\"\nchannels:\n"},
		{"empty file", ""},
		{"only a comment", "# nothing here\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfgRequireProblem(t, cfgProblems(t, tt.raw, cfgNoEnv), "channels: at least one channel is required")
		})
	}
}

func TestConfigMalformedYAMLIsAConfigErrorNotAPanic(t *testing.T) {
	tests := []struct {
		name string
		raw  string
	}{
		{"unclosed flow sequence", "channels: [\n"},
		{"unclosed quote", "listen: \"127.0.0.1:8080\n"},
		{"tab indentation", "log:\n\tlevel: info\n"},
		{"bad indentation", "log:\n  level: info\n format: json\n"},
		{"string for an integer", cfgChannel("http: {max_body_bytes: \"lots\"}\n", cfgToken)},
		{"string for a duration", cfgChannel("http:\n  read_timeout: soon\n", cfgToken)},
		{"string for a bool", cfgChannel("demo:\n  platform: maybe\n", cfgToken)},
		{"string for the channel list", "channels: \"c1\"\n"},
		{"list for a section", cfgChannel("log: [info]\n", cfgToken)},
		{"list for the token", "platform:\n  webhook_url: \"http://127.0.0.1:1/w\"\nchannels:\n  - {id: c1, token: [a, b], id_type: phone, provider: console}\n"},
		{"a scalar document", "just a string\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfgProblems(t, tt.raw, cfgNoEnv)
		})
	}
}

// A token written without quotes that starts with "*" is read by YAML as
// an alias: the syntax error says so, never quoting the token, both when
// the server loads the file and when the jobs CLI reads its store setting.
func TestConfigSyntaxErrorDoesNotQuoteAValue(t *testing.T) {
	const secret = "Zs3cretBonyChatTokenValue42"
	raw := strings.Replace(cfgChannel("", cfgToken), `token: "`+cfgToken+`"`, "token: *"+secret, 1)
	problems := cfgProblems(t, raw, cfgNoEnv)
	cfgRequireProblem(t, problems, `yaml: a value that starts with "*" is read as an alias to an anchor that does not exist; put the value in quotes`)
	for _, p := range problems {
		if strings.Contains(p, secret) || strings.HasPrefix(p, "yaml: yaml:") {
			t.Errorf("problem %q quotes the value or repeats its prefix", p)
		}
	}
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte(raw), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadStoreDSN(path)
	if err == nil || strings.Contains(err.Error(), secret) {
		t.Errorf("LoadStoreDSN error = %v; want an error that does not quote the token", err)
	}
	// The syntax the parser expected is quoted too, and stays.
	problems = cfgProblems(t, "channels: [a, b\n", cfgNoEnv)
	if len(problems) != 1 || !strings.Contains(problems[0], "expected ',' or ']'") {
		t.Errorf("problems %q, want the expected syntax named", problems)
	}
}

// A value of the wrong type is reported at its key path and line, in words,
// with nothing else about the same key, and never quoting the value: a
// value in the wrong place may be a secret.
func TestConfigWrongTypeIsReportedWithItsKeyPathAndLine(t *testing.T) {
	const secret = "sk-live-do-not-print"
	tests := []struct {
		name    string
		raw     string
		problem string
	}{
		{"duration", cfgChannel("outbound:\n  wait: "+secret+"\n", cfgToken),
			"outbound.wait: must be a duration such as 30s, 5m or 1h30m (line 2)"},
		{"duration without a unit", cfgChannel("outbound:\n  wait: 5\n", cfgToken),
			"outbound.wait: must be a duration such as 30s, 5m or 1h30m (line 2)"},
		{"whole number", cfgChannel("outbound:\n  workers: "+secret+"\n", cfgToken),
			"outbound.workers: must be a whole number (line 2)"},
		{"fraction for a whole number", cfgChannel("http: {max_body_bytes: 1.5}\n", cfgToken),
			"http.max_body_bytes: must be a whole number (line 1)"},
		{"number", strings.Replace(cfgChannel("", cfgToken), "platform:\n", "platform:\n  rate_limit: "+secret+"\n", 1),
			"platform.rate_limit: must be a number (line 3)"},
		{"bool", cfgChannel("demo:\n  platform: "+secret+"\n", cfgToken),
			"demo.platform: must be true or false (line 2)"},
		{"list for a section", cfgChannel("log: [info]\n", cfgToken),
			"log: must be a mapping of keys to values (line 1)"},
		{"text for the channel list", "channels: \"" + secret + "\"\n",
			"channels: must be a list (line 1)"},
		{"list for the token", "platform:\n  webhook_url: \"http://127.0.0.1:1/w\"\nchannels:\n" +
			"  - {id: c1, token: [" + secret + "], id_type: phone, provider: console}\n",
			"channels[0].token: must be a single value (text or a number) (line 4)"},
		{"text for a provider section", cfgChannel("", cfgToken) + "    twilio: \"" + secret + "\"\n",
			"channels[0].twilio: must be a mapping of keys to values (line 9)"},
		{"a scalar document", secret + "\n",
			"the configuration: must be a mapping of keys to values (line 1)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			problems := cfgProblems(t, tt.raw, cfgNoEnv)
			cfgRequireProblem(t, problems, tt.problem)
			key, _, _ := strings.Cut(tt.problem, ": ")
			for _, p := range problems {
				if strings.Contains(p, secret) {
					t.Errorf("a problem quotes the value: %q", p)
				}
				if p != tt.problem && strings.HasPrefix(p, key+":") {
					t.Errorf("the same key is reported again: %q", p)
				}
			}
		})
	}
}

// A key given twice is reported with both lines, and the rest of the file
// is still checked (before, the decoder stopped and the channel list came
// out empty: "at least one channel is required").
func TestConfigKeyGivenTwiceIsReportedAndTheRestStillChecked(t *testing.T) {
	raw := cfgChannel("log:\n  level: loud\n", cfgToken) + "    provider: twilio\n"
	problems := cfgProblems(t, raw, cfgNoEnv)
	cfgRequireProblem(t, problems, "channels[0].provider: given twice, on lines 10 and 11")
	cfgRequireProblem(t, problems, "log.level: must be one of debug, info, warn, error")
	if slices.Contains(problems, "channels: at least one channel is required") {
		t.Errorf("the channel list was lost: %q", problems)
	}
	if len(problems) != 2 {
		t.Errorf("problems = %q, want exactly the two above", problems)
	}
}

func TestConfigLoadMissingFileIsAnError(t *testing.T) {
	cfg, err := LoadConfig(t.TempDir() + "/does-not-exist.yaml")
	if err == nil || cfg != nil {
		t.Fatalf("LoadConfig of a missing file = %v, %v; want an error", cfg, err)
	}
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("error %v does not wrap os.ErrNotExist", err)
	}
}

func TestConfigLoadExpandsFromTheProcessEnvironment(t *testing.T) {
	t.Setenv("CFG_TEST_TOKEN", cfgToken)
	path := t.TempDir() + "/config.yaml"
	if err := os.WriteFile(path, []byte(cfgWithLine(`token: "${CFG_TEST_TOKEN}"`)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatalf("LoadConfig: %v", err)
	}
	if got := cfg.Channels[0].Token.Reveal(); got != cfgToken {
		t.Errorf("token = %q, want %q", got, cfgToken)
	}
}

func TestSecretIsNeverRendered(t *testing.T) {
	const token, previous = "cfg-secret-current-0123456789", "cfg-secret-previous-987654321"
	ch := ChannelConfig{ID: "c1", Token: Secret(token), PreviousToken: Secret(previous), IDType: schema.IDTypePhone,
		Provider: "console"}
	cfg := Config{Listen: "127.0.0.1:8080", Channels: []ChannelConfig{ch}}
	slogLine := func(h func(w *bytes.Buffer) slog.Handler, v any) string {
		var buf bytes.Buffer
		slog.New(h(&buf)).Info("config loaded", "channel", v)
		return buf.String()
	}
	jsonHandler := func(w *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(w, nil) }
	textHandler := func(w *bytes.Buffer) slog.Handler { return slog.NewTextHandler(w, nil) }
	mustJSON := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("json.Marshal: %v", err)
		}
		return string(b)
	}
	mustYAML := func(v any) string {
		b, err := yaml.Marshal(v)
		if err != nil {
			t.Fatalf("yaml.Marshal: %v", err)
		}
		return string(b)
	}
	tests := []struct {
		name string
		out  string
	}{
		{"fmt.Sprint(Config)", fmt.Sprint(cfg)},
		{"fmt.Sprint(*Config)", fmt.Sprint(&cfg)},
		{"%v Config", fmt.Sprintf("%v", cfg)},
		{"%+v Config", fmt.Sprintf("%+v", cfg)},
		{"%#v Config", fmt.Sprintf("%#v", cfg)},
		{"%+v *Config", fmt.Sprintf("%+v", &cfg)},
		{"fmt.Sprint(ChannelConfig)", fmt.Sprint(ch)},
		{"%v ChannelConfig", fmt.Sprintf("%v", ch)},
		{"%+v ChannelConfig", fmt.Sprintf("%+v", ch)},
		{"%#v ChannelConfig", fmt.Sprintf("%#v", ch)},
		{"%+v []ChannelConfig", fmt.Sprintf("%+v", cfg.Channels)},
		{"%s Secret", fmt.Sprintf("%s", ch.Token)},
		{"%q Secret", fmt.Sprintf("%q", ch.Token)},
		{"%v Secret", fmt.Sprintf("%v", ch.Token)},
		{"%#v Secret", fmt.Sprintf("%#v", ch.Token)},
		{"error wrapping a ChannelConfig", fmt.Errorf("channel %v failed", ch).Error()},
		{"json.Marshal(ChannelConfig)", mustJSON(ch)},
		{"json.Marshal(Config)", mustJSON(cfg)},
		{"yaml.Marshal(ChannelConfig)", mustYAML(ch)},
		{"slog JSON with ChannelConfig attribute", slogLine(jsonHandler, ch)},
		{"slog JSON with *Config attribute", slogLine(jsonHandler, &cfg)},
		{"slog JSON with Secret attribute", slogLine(jsonHandler, ch.Token)},
		{"slog text with ChannelConfig attribute", slogLine(textHandler, ch)},
		{"slog text with Secret attribute", slogLine(textHandler, ch.Token)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, secret := range []string{token, previous} {
				if strings.Contains(tt.out, secret) {
					t.Errorf("output contains the secret %q:\n%s", secret, tt.out)
				}
			}
			if !strings.Contains(tt.out, "[redacted]") {
				t.Errorf("output does not show the secret as [redacted]:\n%s", tt.out)
			}
		})
	}
}

func TestSecretRevealReturnsTheValue(t *testing.T) {
	tests := []struct {
		name  string
		value string
	}{
		{"token", "cfg-secret-current-0123456789"},
		{"empty", ""},
		{"with spaces and symbols", " $ecret {with} \"quotes\" "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Secret(tt.value).Reveal(); got != tt.value {
				t.Errorf("Reveal() = %q, want %q", got, tt.value)
			}
		})
	}
}

func TestSecretParsedTokenIsRedactedButRevealable(t *testing.T) {
	cfg := cfgMustParse(t, cfgWithLine(`token: "${TOK}"`), cfgEnv(map[string]string{"TOK": cfgToken}))
	if got := cfg.Channels[0].Token.Reveal(); got != cfgToken {
		t.Errorf("Reveal() = %q, want %q", got, cfgToken)
	}
	if out := fmt.Sprintf("%+v", cfg); strings.Contains(out, cfgToken) {
		t.Errorf("parsed config prints its token: %s", out)
	}
}

func TestExampleConfigParses(t *testing.T) {
	raw, err := os.ReadFile("../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		lookup  func(string) (string, bool)
		problem string // "" when valid
	}{
		{"with DEMO_TOKEN set", cfgEnv(map[string]string{"DEMO_TOKEN": "bonychat-demo-token"}), ""},
		{"without DEMO_TOKEN", cfgNoEnv, "channels[0].token: environment variable DEMO_TOKEN is not set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.problem != "" {
				cfgRequireProblem(t, cfgProblems(t, string(raw), tt.lookup), tt.problem)
				return
			}
			cfg := cfgMustParse(t, string(raw), tt.lookup)
			if len(cfg.Channels) != 1 {
				t.Fatalf("got %d channels, want 1", len(cfg.Channels))
			}
			ch := cfg.Channels[0]
			if ch.ID != "demo" || ch.Provider != "console" || ch.Token.Reveal() != "bonychat-demo-token" {
				t.Errorf("channel = %+v (token %q), want demo/console with DEMO_TOKEN", ch, ch.Token.Reveal())
			}
			if !cfg.Demo.Platform || cfg.Platform.WebhookURL != "http://127.0.0.1:8080/_demo/platform" {
				t.Errorf("demo platform not configured: demo=%v webhook=%q", cfg.Demo.Platform, cfg.Platform.WebhookURL)
			}
		})
	}
}

func TestExampleConfigLoadsFromTheEnvironment(t *testing.T) {
	tests := []struct {
		name  string
		token string
		set   bool
	}{
		{"DEMO_TOKEN set", "bonychat-demo-token", true},
		{"DEMO_TOKEN unset", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("DEMO_TOKEN", tt.token) // restored after the test
			if !tt.set {
				os.Unsetenv("DEMO_TOKEN")
			}
			cfg, err := LoadConfig("../config.example.yaml")
			if tt.set {
				if err != nil {
					t.Fatalf("LoadConfig: %v", err)
				}
				if got := cfg.Channels[0].Token.Reveal(); got != tt.token {
					t.Errorf("token = %q, want %q", got, tt.token)
				}
				return
			}
			cfgRequireProblem(t, cfgErrorProblems(t, cfg, err), "channels[0].token: environment variable DEMO_TOKEN is not set")
		})
	}
}

// Values the check passes must serve: an empty or query-carrying public_url
// (every URL handed out starts with it), a port out of range, a store path
// SQLite would take as something else are refused by the check, not at
// start-up (or not at all).
func TestConfigRefusesValuesThatCannotServe(t *testing.T) {
	cases := []struct{ line, problem string }{
		{`public_url: ""`, "public_url: must be an absolute http(s) URL without query or fragment"},
		{`public_url: "https://adapter.example.test/?a=1"`, "public_url: must be an absolute http(s) URL without query or fragment"},
		{`public_url: "https://adapter.example.test/#top"`, "public_url: must be an absolute http(s) URL without query or fragment"},
		{`listen: "127.0.0.1:99999"`, "listen: must be host:port, e.g. 127.0.0.1:8080"},
		{`listen: "127.0.0.1:http"`, "listen: must be host:port, e.g. 127.0.0.1:8080"},
		{`store: "sqlite:"`, `store: must be "sqlite:PATH" (a file path) or "memory:"`},
		{`store: "sqlite:file:x.db"`, `store: must be "sqlite:PATH" (a file path) or "memory:"`},
		{`store: "sqlite::memory:"`, `store: must be "sqlite:PATH" (a file path) or "memory:"`},
	}
	for _, tc := range cases {
		t.Run(tc.line, func(t *testing.T) {
			cfgRequireProblem(t, cfgProblems(t, cfgChannel(tc.line+"\n", cfgToken), cfgNoEnv), tc.problem)
		})
	}
}
