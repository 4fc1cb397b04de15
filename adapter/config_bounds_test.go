package adapter

import (
	"strings"
	"testing"
)

// Values that parse but cannot work are refused with their key path:
//   - http.shutdown_timeout 0 is no time at all (not "no limit", as 0 is for
//     the other timeouts): every stop would cut the requests in flight, and a
//     /message stored but unanswered would come again and be sent twice;
//   - an outbound.workers past the int32 the busy count is kept in wrapped
//     to no free worker: every /message answered 200 and nothing was sent.
func TestValuesThatCannotWorkAreRefused(t *testing.T) {
	for _, tc := range []struct{ extra, want string }{
		{"http:\n  shutdown_timeout: 0s\n", "http.shutdown_timeout: must be greater than 0"},
		{"outbound:\n  workers: 4294967296\n", "outbound.workers: must be between 1 and 10000"},
		{"outbound:\n  workers: 10001\n", "outbound.workers: must be between 1 and 10000"},
	} {
		_, err := ParseConfig([]byte(cfgChannel(tc.extra, cfgToken)), cfgNoEnv)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want a problem containing %q", tc.extra, err, tc.want)
		}
	}
	cfgMustParse(t, cfgChannel("http:\n  shutdown_timeout: 1s\noutbound:\n  workers: 10000\n", cfgToken), cfgNoEnv)
}
