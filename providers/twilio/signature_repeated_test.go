package twilio

import (
	"net/url"
	"testing"
)

// Twilio's own validators (twilio-python: `for value in sorted(set(values))`,
// twilio-node: `Array.from(new Set(paramValue)).sort()`) sign a name posted
// more than once with each *distinct* value once, sorted; so must we, or a
// request Twilio signed with a repeated identical value would be
// refused with 403.
func TestSignatureSignsARepeatedValueOnceAsTwilioDoes(t *testing.T) {
	const token = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
	form := url.Values{"MessageSid": {"SM3e5a7c9f1b3d5f7a9c1e3b5d7f9a1c3e"}, "b": {"2", "1", "2"}}
	// As twilio-python / twilio-node compute it: names sorted, distinct values sorted.
	want := signature(token, "https://adapter.example.com/x"+"MessageSidSM3e5a7c9f1b3d5f7a9c1e3b5d7f9a1c3e"+"b1"+"b2")
	p := hookSigningProvider("https://adapter.example.com", token, "")
	if !p.validSignature(hookSignedRequest("/x", form, want), form) {
		t.Fatalf("a request signed as Twilio's validators sign it (repeated value once) is refused; signed params %q",
			signedParams(form))
	}
}
