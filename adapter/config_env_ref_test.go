package adapter

import (
	"strings"
	"testing"
)

// A "${" that does not form a valid ${NAME} reference (shell defaults such
// as ${VAR:-x}, a lower-case or dashed name) must not be taken literally:
// the operator meant a variable, and the literal text (which sits in the
// file) silently becomes the channel's secret token.
func TestAMalformedEnvReferenceIsAProblemNotTheSecret(t *testing.T) {
	env := cfgEnv(map[string]string{"SMS_TOKEN": "real-token-from-env-0123456789"})
	for _, value := range []string{
		"${SMS_TOKEN:-fallback-token-0123456789}",
		"${sms-token-from-the-environment}",
		"${SMS_TOKEN }-padding-0123456789",
	} {
		t.Run(value, func(t *testing.T) {
			cfg, err := ParseConfig([]byte(cfgChannel("", value)), env)
			if err == nil {
				t.Fatalf("token %q accepted as the literal token %q; want a problem naming channels[0].token",
					value, cfg.Channels[0].Token.Reveal())
			}
			if !strings.Contains(err.Error(), "channels[0].token") {
				t.Errorf("the problem does not name channels[0].token:\n%v", err)
			}
		})
	}
}
