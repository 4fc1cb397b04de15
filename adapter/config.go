package adapter

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/bonychat/bonychat-adapter/providers"
	"github.com/bonychat/bonychat-adapter/providers/mailgun"
	"github.com/bonychat/bonychat-adapter/providers/twilio"
	"github.com/bonychat/bonychat-adapter/schema"
	"github.com/bonychat/bonychat-adapter/store"
)

// Config is the whole YAML configuration. Its shape is part of the contract.
type Config struct {
	Listen    string          `yaml:"listen"`
	PublicURL string          `yaml:"public_url"`
	BasePath  string          `yaml:"base_path"`
	Log       LogConfig       `yaml:"log"`
	HTTP      HTTPConfig      `yaml:"http"`
	Platform  PlatformConfig  `yaml:"platform"`
	Store     string          `yaml:"store"`
	Outbound  OutboundConfig  `yaml:"outbound"`
	Inbound   InboundConfig   `yaml:"inbound"`
	Media     MediaConfig     `yaml:"media"`
	Demo      DemoConfig      `yaml:"demo"`
	Channels  []ChannelConfig `yaml:"channels"`
}

// LogConfig selects the log level and format.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug | info | warn | error
	Format string `yaml:"format"` // json | text
}

// HTTPConfig bounds the HTTP server.
type HTTPConfig struct {
	MaxBodyBytes      int64         `yaml:"max_body_bytes"`
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	ReadTimeout       time.Duration `yaml:"read_timeout"`
	WriteTimeout      time.Duration `yaml:"write_timeout"`
	IdleTimeout       time.Duration `yaml:"idle_timeout"`
	ShutdownTimeout   time.Duration `yaml:"shutdown_timeout"`
}

// PlatformConfig is how the server reaches BonyChat's webhook.
type PlatformConfig struct {
	WebhookURL string        `yaml:"webhook_url"`
	Timeout    time.Duration `yaml:"timeout"`    // per attempt
	Retries    int           `yaml:"retries"`    // quick in-request retries of one post, before the durable retry
	RateLimit  float64       `yaml:"rate_limit"` // requests per second per channel
	RetryMin   time.Duration `yaml:"retry_min"`  // first durable backoff
	RetryMax   time.Duration `yaml:"retry_max"`  // longest backoff; also caps Retry-After
	MaxAge     time.Duration `yaml:"max_age"`    // then the job is dead
}

// OutboundConfig drives delivery of BonyChat's messages to providers.
type OutboundConfig struct {
	Wait        time.Duration `yaml:"wait"`         // how long /message waits for the first attempt
	MaxAge      time.Duration `yaml:"max_age"`      // then the message is reported failed
	RetryMin    time.Duration `yaml:"retry_min"`    // first backoff
	RetryMax    time.Duration `yaml:"retry_max"`    // longest backoff; also caps Retry-After
	Workers     int           `yaml:"workers"`      // contacts served at once
	SendTimeout time.Duration `yaml:"send_timeout"` // one provider attempt
}

// InboundConfig is how provider webhooks are taken in.
type InboundConfig struct {
	DedupeWindow time.Duration `yaml:"dedupe_window"` // a provider message ID is remembered this long
}

// MediaConfig is the media store served at /media.
type MediaConfig struct {
	Dir                  string        `yaml:"dir"`
	Retention            time.Duration `yaml:"retention"`
	MaxBytes             int64         `yaml:"max_bytes"`
	AllowPrivateNetworks bool          `yaml:"allow_private_networks"`
}

// DemoConfig turns on the demo helpers; all off by default.
type DemoConfig struct {
	// Platform serves a BonyChat stand-in at /_demo/platform that logs and
	// keeps what it receives.
	Platform bool `yaml:"platform"`
}

// ChannelConfig is one BonyChat Custom Channel.
type ChannelConfig struct {
	ID            string `yaml:"id"`
	Token         Secret `yaml:"token"`
	PreviousToken Secret `yaml:"previous_token"`
	// PreviousTokenUntil ends the rotation: previous_token is refused from
	// then on. Empty: accepted until it is removed.
	PreviousTokenUntil providers.Until `yaml:"previous_token_until"`
	IDType             schema.IDType   `yaml:"id_type"`
	WebhookURL         string          `yaml:"webhook_url"`
	Provider           string          `yaml:"provider"`
	// Twilio is the provider section of a twilio channel.
	Twilio *twilio.Config `yaml:"twilio"`
	// Mailgun is the provider section of a mailgun channel.
	Mailgun *mailgun.Config `yaml:"mailgun"`
}

// secrets lists every secret of the configuration, for log redaction.
func (c *Config) secrets() []string {
	var out []string
	for _, ch := range c.Channels {
		out = append(out, ch.Token.Reveal(), ch.PreviousToken.Reveal())
		if ch.Twilio != nil {
			out = append(out, ch.Twilio.Secrets()...)
		}
		if ch.Mailgun != nil {
			out = append(out, ch.Mailgun.Secrets()...)
		}
	}
	return out
}

// Webhook returns the channel's webhook URL: its own, else the platform's.
func (c ChannelConfig) Webhook(p PlatformConfig) string {
	if c.WebhookURL != "" {
		return c.WebhookURL
	}
	return p.WebhookURL
}

// Secret is a configuration value that must never be printed or logged
// (see providers.Secret).
type Secret = providers.Secret

// Providers this build knows.
var knownProviders = []string{"console", "twilio", "mailgun"}

// Defaults are applied before the file, so the file overrides them.
func defaultConfig() Config {
	return Config{
		Listen:    "127.0.0.1:8080",
		PublicURL: "http://127.0.0.1:8080",
		Log:       LogConfig{Level: "info", Format: "json"},
		HTTP: HTTPConfig{MaxBodyBytes: 1 << 20, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second,
			WriteTimeout: 60 * time.Second, IdleTimeout: 120 * time.Second, ShutdownTimeout: 15 * time.Second},
		Platform: PlatformConfig{Timeout: 10 * time.Second, Retries: 2, RateLimit: 20, RetryMin: time.Second,
			RetryMax: 5 * time.Minute, MaxAge: 72 * time.Hour},
		Store: "sqlite:data/adapter.db",
		Outbound: OutboundConfig{Wait: 5 * time.Second, MaxAge: 24 * time.Hour, RetryMin: time.Second,
			RetryMax: 5 * time.Minute, Workers: 32, SendTimeout: 60 * time.Second},
		Inbound: InboundConfig{DedupeWindow: 7 * 24 * time.Hour},
		Media:   MediaConfig{Dir: "data/media", Retention: 90 * 24 * time.Hour, MaxBytes: 20 << 20},
	}
}

// LoadConfig reads, expands and validates a configuration file. Every
// problem found is listed in the error, one per line, with its key path.
func LoadConfig(path string) (*Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return ParseConfig(raw, os.LookupEnv)
}

// LoadStoreDSN reads only the store setting of a configuration file (the
// default when it is left out), for the jobs commands: they need the store,
// not every channel's secrets in the operator's environment.
func LoadStoreDSN(path string) (string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read config: %w", err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(raw, &root); err != nil {
		return "", &ConfigError{Problems: yamlProblems(err)}
	}
	dsn := defaultConfig().Store
	if len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return dsn, nil
	}
	top := root.Content[0].Content
	for i := 0; i+1 < len(top); i += 2 {
		if top[i].Value != "store" {
			continue
		}
		var problems []string
		expandNode(top[i+1], "store", os.LookupEnv, &problems)
		if len(problems) > 0 {
			return "", &ConfigError{Problems: problems}
		}
		if top[i+1].Kind != yaml.ScalarNode || top[i+1].Tag == "!!null" || top[i+1].Value == "" {
			return dsn, nil
		}
		return top[i+1].Value, nil
	}
	return dsn, nil
}

// ConfigError lists every problem of a configuration.
type ConfigError struct{ Problems []string }

func (e *ConfigError) Error() string {
	return "invalid configuration:\n  " + strings.Join(e.Problems, "\n  ")
}

// ParseConfig parses YAML, expanding ${VAR} from lookup in every value.
func ParseConfig(raw []byte, lookup func(string) (string, bool)) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(raw, &root); err != nil {
		return nil, &ConfigError{Problems: yamlProblems(err)}
	}
	var problems []string
	expandNode(&root, "", lookup, &problems)
	cfg := defaultConfig()
	var shape shapeChecker
	if len(root.Content) > 0 {
		shape.check(root.Content[0], reflect.TypeOf(cfg), "")
		problems = append(problems, shape.problems...)
		if err := root.Decode(&cfg); err != nil && len(shape.bad) == 0 {
			problems = append(problems, yamlProblems(err)...)
		}
	}
	problems = append(problems, notUnder(cfg.validate(), shape.bad)...)
	if len(problems) > 0 {
		return nil, &ConfigError{Problems: problems}
	}
	return &cfg, nil
}

// yamlProblems lists what the parser or decoder found (for the decoder:
// what the shape check did not), without the values it quotes: a value in
// the wrong place, or a token that YAML reads as an alias because it
// starts with "*", may be a secret.
func yamlProblems(err error) []string {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		if strings.HasPrefix(msg, "unknown anchor") {
			return []string{`yaml: a value that starts with "*" is read as an alias to an anchor that does not exist; put the value in quotes`}
		}
		return []string{"yaml: " + quotedValue.ReplaceAllString(msg, "a value")}
	}
	out := make([]string, len(te.Errors))
	for i, e := range te.Errors {
		out[i] = "yaml: " + quotedValue.ReplaceAllString(e, "a value")
	}
	return out
}

// quotedValue matches what yaml.v3 quotes from the document: a value in
// backticks, or a name (an anchor, a tag: no spaces) in single quotes. A
// single quoted character is the syntax the parser expected (':', '-')
// and stays, as do two of them ("expected ',' or ']'").
var quotedValue = regexp.MustCompile("`[^`]*`|'[^'\\s]{2,}'")

// envRef matches "$$", a ${...} reference, and a "${" that never closes:
// any that is not ${NAME} is a problem (envName), never literal text, or a
// ${TOKEN:-fallback} or ${sms-token} would become the secret itself.
var envRef = regexp.MustCompile(`\$\$|\$\{[^}]*\}|\$\{`)

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// expandNode replaces ${VAR} in scalar values (not keys, not comments); "$$"
// is a literal "$". An unset variable is a problem, never an empty string.
func expandNode(n *yaml.Node, path string, lookup func(string) (string, bool), problems *[]string) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			expandNode(c, path, lookup, problems)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			expandNode(n.Content[i+1], joinKey(path, n.Content[i].Value), lookup, problems)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			expandNode(c, fmt.Sprintf("%s[%d]", path, i), lookup, problems)
		}
	case yaml.ScalarNode:
		expanded := envRef.ReplaceAllStringFunc(n.Value, func(ref string) string {
			if ref == "$$" {
				return "$"
			}
			name := strings.TrimSuffix(ref[2:], "}")
			if !strings.HasSuffix(ref, "}") || !envName.MatchString(name) {
				// The reference is not echoed: it may hold a fallback secret.
				*problems = append(*problems, fmt.Sprintf("%s: a ${...} reference must be ${NAME} (letters, digits, _); "+
					"write $$ for a literal $", path))
				return ""
			}
			v, ok := lookup(name)
			if !ok {
				*problems = append(*problems, fmt.Sprintf("%s: environment variable %s is not set", path, name))
			}
			return v
		})
		if expanded != n.Value && n.Style == 0 {
			n.Tag = "" // an unquoted value is typed by what it expands to: ${PORT} may be a number
		}
		n.Value = expanded
	}
}

func joinKey(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// maxOutboundWorkers bounds outbound.workers far above any provider's
// concurrency limit, and within the int32 the busy count is kept in.
const maxOutboundWorkers = 10000

func (c *Config) validate() []string {
	var p problemList
	p.check(c.Listen != "", "listen", "required")
	p.check(c.Listen == "" || validListen(c.Listen), "listen", "must be host:port, e.g. 127.0.0.1:8080")
	// Every URL handed out (media links, Twilio's callbacks) starts with it.
	p.check(validPublicURL(c.PublicURL), "public_url", "must be an absolute http(s) URL without query or fragment")
	p.check(c.BasePath == "" || basePathPattern.MatchString(c.BasePath),
		"base_path", `must be empty or "/"-separated segments of letters, digits and . _ ~ - (e.g. /bonychat)`)
	p.check(slices.Contains([]string{"debug", "info", "warn", "error"}, c.Log.Level), "log.level", "must be one of debug, info, warn, error")
	p.check(slices.Contains([]string{"json", "text"}, c.Log.Format), "log.format", "must be json or text")
	p.check(c.HTTP.MaxBodyBytes > 0, "http.max_body_bytes", "must be greater than 0")
	for key, d := range map[string]time.Duration{"read_header_timeout": c.HTTP.ReadHeaderTimeout, "read_timeout": c.HTTP.ReadTimeout,
		"write_timeout": c.HTTP.WriteTimeout, "idle_timeout": c.HTTP.IdleTimeout} {
		p.check(d >= 0, "http."+key, "must not be negative") // 0: no limit
	}
	// 0 is no time at all, not "no limit": every stop would cut the
	// requests in flight, and a /message stored but unanswered comes again.
	p.check(c.HTTP.ShutdownTimeout > 0, "http.shutdown_timeout", "must be greater than 0")
	p.check(c.Platform.WebhookURL == "" || schema.IsHTTPURL(c.Platform.WebhookURL), "platform.webhook_url", "must be an absolute http(s) URL")
	p.check(c.Platform.Retries >= 0, "platform.retries", "must be 0 or more")
	p.backoff("platform", c.Platform.RetryMin, c.Platform.RetryMax)
	p.check(c.Platform.RateLimit > 0, "platform.rate_limit", "must be greater than 0")
	p.check(c.Platform.MaxAge > 0, "platform.max_age", "must be greater than 0")
	p.check(c.Platform.Timeout > 0, "platform.timeout", "must be greater than 0")
	p.check(store.CheckDSN(c.Store) == nil, "store", `must be "sqlite:PATH" (a file path) or "memory:"`)
	p.backoff("outbound", c.Outbound.RetryMin, c.Outbound.RetryMax)
	p.check(c.Outbound.Wait > 0, "outbound.wait", "must be greater than 0")
	p.check(c.HTTP.WriteTimeout == 0 || c.Outbound.Wait+5*time.Second <= c.HTTP.WriteTimeout, "outbound.wait",
		"must be at least 5s below http.write_timeout, or the answer cannot be written")
	p.check(c.Outbound.MaxAge > 0, "outbound.max_age", "must be greater than 0")
	p.check(c.Outbound.Workers > 0 && c.Outbound.Workers <= maxOutboundWorkers, "outbound.workers",
		fmt.Sprintf("must be between 1 and %d", maxOutboundWorkers))
	p.check(c.Outbound.SendTimeout > 0, "outbound.send_timeout", "must be greater than 0")
	p.check(c.Inbound.DedupeWindow > 0, "inbound.dedupe_window", "must be greater than 0")
	p.check(c.Media.Dir != "", "media.dir", "required")
	p.check(c.Media.Retention > 0, "media.retention", "must be greater than 0")
	p.check(c.Media.MaxBytes > 0, "media.max_bytes", "must be greater than 0")
	p.check(len(c.Channels) > 0, "channels", "at least one channel is required")
	seen := map[string]bool{}
	for i, ch := range c.Channels {
		p.channel(fmt.Sprintf("channels[%d]", i), ch, c.Platform, seen)
		// A mail's dedupe key must outlive the signatures that can bring
		// it again (the default age too, when the key is left out).
		p.check(ch.Mailgun == nil || ch.Mailgun.EffectiveSignatureMaxAge() <= c.Inbound.DedupeWindow,
			fmt.Sprintf("channels[%d].mailgun.signature_max_age", i),
			fmt.Sprintf("must not exceed inbound.dedupe_window (%.0fh when not set)", mailgun.DefaultSignatureMaxAge.Hours()))
	}
	return p.list
}

type problemList struct{ list []string }

func (p *problemList) backoff(section string, lo, hi time.Duration) {
	p.check(lo > 0, section+".retry_min", "must be greater than 0")
	p.check(hi >= lo, section+".retry_max", "must not be below "+section+".retry_min")
}

func (p *problemList) check(ok bool, key, msg string) {
	if !ok {
		p.list = append(p.list, key+": "+msg)
	}
}

func (p *problemList) channel(key string, ch ChannelConfig, platform PlatformConfig, seen map[string]bool) {
	p.check(ch.ID != "", key+".id", "required")
	p.check(ch.ID == "" || validChannelID(ch.ID), key+".id", "must be 1 to 100 characters of A-Z a-z 0-9 _ -")
	p.check(ch.ID == "" || !seen[ch.ID], key+".id", fmt.Sprintf("duplicate channel id %q", ch.ID))
	seen[ch.ID] = true
	p.check(ch.Token != "", key+".token", "required")
	p.check(ch.Token == "" || len(ch.Token) >= 16, key+".token", "must be at least 16 characters")
	p.check(ch.PreviousToken == "" || len(ch.PreviousToken) >= 16, key+".previous_token", "must be at least 16 characters")
	p.check(ch.PreviousTokenUntil.Problem() == "", key+".previous_token_until", ch.PreviousTokenUntil.Problem())
	p.check(ch.IDType == schema.IDTypePhone || ch.IDType == schema.IDTypeCustom, key+".id_type", "must be phone or custom")
	p.check(ch.WebhookURL == "" || schema.IsHTTPURL(ch.WebhookURL), key+".webhook_url", "must be an absolute http(s) URL")
	p.check(ch.Webhook(platform) != "", key+".webhook_url", "required when platform.webhook_url is empty")
	p.check(slices.Contains(knownProviders, ch.Provider), key+".provider", "must be one of "+strings.Join(knownProviders, ", "))
	p.providerSection(key, ch)
}

// providerSection checks the channel's provider sections: present and
// valid for its provider, absent for the others. (A method value of a nil
// section is fine: it is only called when the section is present.)
func (p *problemList) providerSection(key string, ch ChannelConfig) {
	p.section(key, ch, "twilio", ch.Twilio != nil, ch.Twilio.Problems, schema.IDTypePhone, "")
	p.section(key, ch, "mailgun", ch.Mailgun != nil, ch.Mailgun.Problems, schema.IDTypeCustom,
		" (e-mail addresses are not phone numbers)")
}

// section checks one provider's section: required (and valid, with the ID
// type the provider needs) on its channels, refused on the others.
func (p *problemList) section(key string, ch ChannelConfig, provider string, present bool, problems func() []string,
	idType schema.IDType, why string) {
	switch {
	case ch.Provider == provider && !present:
		p.check(false, key+"."+provider, "required for provider "+provider)
	case ch.Provider == provider:
		for _, problem := range problems() {
			p.list = append(p.list, key+"."+provider+"."+problem)
		}
		p.check(ch.IDType == idType, key+".id_type", "must be "+string(idType)+" for provider "+provider+why)
	case present:
		p.check(false, key+"."+provider, "only for provider "+provider)
	}
}

func validListen(addr string) bool {
	_, port, err := net.SplitHostPort(addr)
	n, perr := strconv.Atoi(port)
	return err == nil && perr == nil && n >= 0 && n <= 65535
}

// basePathPattern: segments a router takes literally (no ":" or "*"),
// none of them only dots ("/.." would be cleaned away by clients).
var basePathPattern = regexp.MustCompile(`^(/[A-Za-z0-9._~-]*[A-Za-z0-9_~-][A-Za-z0-9._~-]*)+$`)

func validPublicURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && schema.IsHTTPURL(s) && u.RawQuery == "" && u.Fragment == "" && !u.ForceQuery
}

var channelIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,100}$`)

// validChannelID keeps channel IDs safe to use as a path segment.
func validChannelID(id string) bool { return channelIDPattern.MatchString(id) }
