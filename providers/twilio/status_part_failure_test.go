package twilio

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/bonychat/bonychat-adapter/providers"
)

// A part's failure whose report could not be stored (503) stays in the
// part record. Twilio does not retry a status callback by default (the
// StatusCallback URL carries no connection override), so a later callback
// of any part reports the failure the record keeps: else the message would
// stay "sent" for good although one part failed. It also checks the
// reason names the part that failed.
func TestAPartFailureRefusedOnceIsReportedByALaterCallback(t *testing.T) {
	e := newHookEnv(t)
	const parts = 2
	// Part 1 fails while the status store is unavailable: 503, nothing posted.
	e.statuses.Fail(errors.New("store unavailable"))
	hookAssertError(t, e.postSigned(e.statusTarget(hookMID, 1, parts), hookStatusForm("undelivered", "30003").Encode()),
		http.StatusServiceUnavailable)
	e.statuses.Fail(nil)
	// Twilio does not call again for part 1. Part 0's receipt arrives.
	hookAssertStatusOK(t, e.postSigned(e.statusTarget(hookMID, 0, parts), hookStatusForm("delivered", "").Encode()))
	var failed bool
	for _, c := range e.statuses.Calls() {
		failed = failed || c.Value == "failed"
	}
	if !failed {
		t.Fatalf("posted %+v: the failure of part 2 was never reported", e.statuses.Calls())
	}
	if calls := e.statuses.Calls(); !strings.HasPrefix(calls[len(calls)-1].Reason, "part 2 of 2: ") {
		t.Fatalf("reason %q: want the failed part's own", calls[len(calls)-1].Reason)
	}
}

// A message's part record belongs to its channel: a callback that another
// channel takes for the same mId (validly signed with that channel's own
// token) never marks a part of this channel's message, so it cannot make
// it fail or hold its delivered back.
func TestAnotherChannelsCallbackNeverTouchesThePartRecord(t *testing.T) {
	e := newHookEnv(t)
	other := newHookEnv(t, func(_ *Config, d *providers.Deps) { d.ChannelID, d.Records = "sms-other", e.records })
	hookAssertStatusOK(t, other.postSigned(other.statusTarget(hookMID, 1, 2), hookStatusForm("undelivered", "30003").Encode()))
	for part := range 2 {
		hookAssertStatusOK(t, e.postSigned(e.statusTarget(hookMID, part, 2), hookStatusForm("delivered", "").Encode()))
	}
	calls := e.statuses.Calls()
	if len(calls) != 1 || calls[0].Value != "delivered" {
		t.Fatalf("posted %+v: want the message delivered, untouched by the other channel's callback", calls)
	}
}
