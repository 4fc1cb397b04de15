package providers

import (
	"errors"
	"testing"
)

// Only a refusal for good of a message no part of which went out puts
// back the options offered before: a retryable or ambiguous failure may
// still reach the contact, and a part that went out may carry the
// question.
func TestRefusedUnsentOnlyForARefusalBeforeAnyPartWentOut(t *testing.T) {
	refused := &SendError{Kind: Permanent, Reason: "not a mobile number"}
	for _, tc := range []struct {
		name string
		sent Sent
		err  error
		want bool
	}{
		{"sent", Sent{ProviderIDs: []string{"SM1"}}, nil, false},
		{"refused", Sent{}, refused, true},
		{"the channel's settings refused", Sent{}, &SendError{Kind: Config, Reason: "bad from"}, true},
		{"refused after a part went out", Sent{ProviderIDs: []string{"SM1"}}, refused, false},
		{"retryable", Sent{}, &SendError{Kind: Throttled}, false},
		{"ambiguous", Sent{}, &SendError{Kind: Ambiguous}, false},
		{"not a SendError (ambiguous)", Sent{}, errors.New("boom"), false},
	} {
		if got := RefusedUnsent(tc.sent, tc.err); got != tc.want {
			t.Errorf("%s: RefusedUnsent = %v, want %v", tc.name, got, tc.want)
		}
	}
}
