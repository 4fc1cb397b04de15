package twilio

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/bonychat/bonychat-adapter/internal/testkit"
	"github.com/bonychat/bonychat-adapter/providers"
)

const hookMID = "01JH3K9V2Q8W5X7Y4Z6A1B3C5D"

// statusTarget is the callback path and query Send gives Twilio (its own
// statusCallback, without the public URL).
func (e *hookEnv) statusTarget(mid string, part, parts int) string {
	e.t.Helper()
	full := e.p.statusCallback(mid, part, parts)
	target, ok := strings.CutPrefix(full, hookPublic)
	if !ok {
		e.t.Fatalf("status callback %q is not under the public URL", full)
	}
	return target
}

// hookStatusForm is a real-shaped status callback for the test contact.
func hookStatusForm(status, errorCode string) url.Values {
	const sid = "SM3e5a7c9f1b3d5f7a9c1e3b5d7f9a1c3e"
	f := url.Values{"SmsSid": {sid}, "SmsStatus": {status}, "MessageStatus": {status}, "To": {hookContact},
		"MessageSid": {sid}, "AccountSid": {hookAccount}, "From": {hookFrom}, "ApiVersion": {"2010-04-01"}}
	if errorCode != "" {
		f.Set("ErrorCode", errorCode)
	}
	return f
}

func hookAssertStatusOK(t *testing.T, r hookResponse) {
	t.Helper()
	if r.Status != http.StatusOK || r.Body != "" {
		t.Fatalf("status %d body %q, want 200 with an empty body", r.Status, r.Body)
	}
}

func TestStatus_TestdataCallbacksBecomeReceipts(t *testing.T) {
	cases := []struct {
		file   string
		want   testkit.StatusCall
		reason string // a word the reason must carry
		optOut bool
	}{
		{file: "status-sent.form", want: testkit.StatusCall{Contact: hookContact, MID: hookMID, Value: "sent"}},
		{file: "status-delivered.form", want: testkit.StatusCall{Contact: hookContact, MID: hookMID, Value: "delivered"}},
		{file: "status-read.form", want: testkit.StatusCall{Contact: hookWAUser, MID: hookMID, Value: "read"}},
		{file: "status-undelivered-30003.form", want: testkit.StatusCall{Contact: hookContact, MID: hookMID, Value: "failed", Reason: callbackReason("30003", hookContact)},
			reason: "unreachable"},
		{file: "status-failed-30007.form", want: testkit.StatusCall{Contact: hookContact, MID: hookMID, Value: "failed", Reason: callbackReason("30007", hookContact)},
			reason: "spam"},
		{file: "status-failed-21610.form", want: testkit.StatusCall{Contact: hookContact, MID: hookMID, Value: "failed", Reason: callbackReason("21610", hookContact)},
			reason: "opted out", optOut: true},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			e := newHookEnv(t)
			hookAssertStatusOK(t, e.postSigned(e.statusTarget(hookMID, 0, 1), e.testdata(tc.file)))
			got := e.statuses.Calls()
			if len(got) != 1 || got[0] != tc.want {
				t.Fatalf("PostStatus calls %+v, want %+v", got, tc.want)
			}
			if !strings.Contains(got[0].Reason, tc.reason) {
				t.Fatalf("reason %q does not say %q", got[0].Reason, tc.reason)
			}
			if e.optedOut(tc.want.Contact) != tc.optOut {
				t.Fatalf("opted out = %v, want %v", !tc.optOut, tc.optOut)
			}
		})
	}
}

func TestStatus_OtherStatesAreAcknowledgedAndIgnored(t *testing.T) {
	for _, st := range []string{"queued", "sending", "accepted", "scheduled", "canceled", "receiving", "received",
		"partially_delivered", "", "something_new"} {
		t.Run(hookName(st), func(t *testing.T) {
			e := newHookEnv(t)
			hookAssertStatusOK(t, e.postSigned(e.statusTarget(hookMID, 0, 1), hookStatusForm(st, "").Encode()))
			if got := e.statuses.Calls(); len(got) != 0 {
				t.Fatalf("posted %+v", got)
			}
		})
	}
}

func hookName(s string) string {
	if s == "" {
		return "empty"
	}
	return s
}

func TestStatus_BadRequests(t *testing.T) {
	cases := []struct {
		name   string
		target string
		form   url.Values
	}{
		{"no mid", hookStatus, hookStatusForm("delivered", "")},
		{"empty mid", hookStatus + "?mid=", hookStatusForm("delivered", "")},
		{"mid over 50 characters", hookStatus + "?mid=" + strings.Repeat("A", 51), hookStatusForm("delivered", "")},
		{"part without parts", hookStatus + "?mid=" + hookMID + "&part=0", hookStatusForm("delivered", "")},
		{"part beyond parts", hookStatus + "?mid=" + hookMID + "&part=2&parts=2", hookStatusForm("delivered", "")},
		{"negative part", hookStatus + "?mid=" + hookMID + "&part=-1&parts=2", hookStatusForm("delivered", "")},
		{"parts not a number", hookStatus + "?mid=" + hookMID + "&part=0&parts=two", hookStatusForm("delivered", "")},
		{"absurd parts", hookStatus + "?mid=" + hookMID + "&part=0&parts=100000", hookStatusForm("delivered", "")},
		{"To not a phone number", hookStatus + "?mid=" + hookMID, func() url.Values {
			f := hookStatusForm("delivered", "")
			f.Set("To", "messenger:123")
			return f
		}()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newHookEnv(t)
			hookAssertError(t, e.postSigned(tc.target, tc.form.Encode()), http.StatusBadRequest)
			if got := e.statuses.Calls(); len(got) != 0 {
				t.Fatalf("posted %+v", got)
			}
		})
	}
}

func TestStatus_RefusesBadSignaturesAndTakesNothing(t *testing.T) {
	body := hookStatusForm("failed", "21610").Encode()
	cases := []struct {
		name string
		sig  func(e *hookEnv, target string) string
	}{
		{"no signature", func(*hookEnv, string) string { return "" }},
		{"another token", func(e *hookEnv, target string) string {
			return e.sign("ffffffffffffffffffffffffffffffff", hookPublic+target, body)
		}},
		{"signed without the query", func(e *hookEnv, _ string) string {
			return e.sign(hookToken, hookPublic+hookStatus, body)
		}},
		{"signature of another message's callback", func(e *hookEnv, _ string) string {
			return e.sign(hookToken, hookPublic+e.statusTarget("01JH3K9V2Q8W5X7Y4Z6A1B3C5E", 0, 1), body)
		}},
		{"signed over the requested loopback URL", func(e *hookEnv, target string) string {
			return e.sign(hookToken, e.adapter.URL+target, body)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newHookEnv(t)
			target := e.statusTarget(hookMID, 0, 1)
			hookAssertError(t, e.post(target, body, tc.sig(e, target)), http.StatusForbidden)
			if len(e.statuses.Calls()) != 0 || len(e.records.Puts()) != 0 {
				t.Fatalf("a refused callback posted %+v and wrote %v", e.statuses.Calls(), e.records.Puts())
			}
		})
	}
}

func TestStatus_AcceptsThePreviousToken(t *testing.T) {
	e := newHookEnv(t)
	target := e.statusTarget(hookMID, 0, 1)
	body := e.testdata("status-delivered.form")
	hookAssertStatusOK(t, e.post(target, body, e.sign(hookOldToken, hookPublic+target, body)))
	if got := e.statuses.Calls(); len(got) != 1 || got[0].Value != "delivered" {
		t.Fatalf("posted %+v", got)
	}
}

func TestStatus_MultiPartMessagesReportTheWhole(t *testing.T) {
	type step struct {
		part   int
		status string // Twilio's MessageStatus
		code   string
		want   string // value posted for this callback, "" for none
	}
	cases := []struct {
		name  string
		parts int
		steps []step
	}{
		{"delivered only when every part is", 3, []step{
			{0, "sent", "", ""},
			{1, "sent", "", ""},
			{2, "sent", "", "sent"},
			{0, "delivered", "", "sent"},
			{2, "delivered", "", "sent"},
			{1, "delivered", "", "delivered"},
		}},
		{"out of order: delivered before sent", 2, []step{
			{1, "delivered", "", ""},
			{0, "delivered", "", "delivered"},
			{0, "sent", "", "delivered"}, // late: the part stays delivered
		}},
		{"read when every part is read", 2, []step{
			{0, "read", "", ""},
			{1, "delivered", "", "delivered"},
			{1, "read", "", "read"},
		}},
		// Once a part failed, every later callback reports failed again,
		// with that part's reason: its own report may have been refused,
		// and the status sink takes it once.
		{"failed as soon as one part fails", 3, []step{
			{0, "delivered", "", ""},
			{1, "undelivered", "30003", "failed"},
			{2, "delivered", "", "failed"},
			{1, "delivered", "", "failed"}, // failed is final for the part
		}},
		{"failed before the others are heard of", 2, []step{
			{1, "failed", "30007", "failed"},
			{0, "sent", "", "failed"},
		}},
		{"a delivered part does not fail any more", 2, []step{
			{0, "delivered", "", ""},
			{0, "failed", "30008", ""},
			{1, "delivered", "", "delivered"},
		}},
		{"ignored states leave no mark", 2, []step{
			{0, "queued", "", ""},
			{1, "sending", "", ""},
			{0, "sent", "", ""},
			{1, "sent", "", "sent"},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newHookEnv(t)
			var failure *step // the first part to fail: every failed report names it
			for i, s := range tc.steps {
				if s.want == "failed" && failure == nil {
					failure = &tc.steps[i]
				}
				before := len(e.statuses.Calls())
				target := e.statusTarget(hookMID, s.part, tc.parts)
				hookAssertStatusOK(t, e.postSigned(target, hookStatusForm(s.status, s.code).Encode()))
				calls := e.statuses.Calls()[before:]
				switch {
				case s.want == "" && len(calls) != 0:
					t.Fatalf("step %d (part %d %s): posted %+v, want nothing", i, s.part, s.status, calls)
				case s.want != "" && (len(calls) != 1 || calls[0].Value != s.want || calls[0].MID != hookMID || calls[0].Contact != hookContact):
					t.Fatalf("step %d (part %d %s): posted %+v, want %s", i, s.part, s.status, calls, s.want)
				case s.want == "failed":
					want := fmt.Sprintf("part %d of %d: %s", failure.part+1, tc.parts, callbackReason(failure.code, hookContact))
					if calls[0].Reason != want {
						t.Fatalf("reason %q, want %q", calls[0].Reason, want)
					}
				case s.want != "" && calls[0].Reason != "":
					t.Fatalf("reason %q on %s", calls[0].Reason, s.want)
				}
			}
		})
	}
}

func TestStatus_ConcurrentPartCallbacksAreAllCounted(t *testing.T) {
	e := newHookEnv(t)
	const parts = 8
	var wg sync.WaitGroup
	for i := range parts {
		wg.Go(func() {
			r := e.postSigned(e.statusTarget(hookMID, i, parts), hookStatusForm("delivered", "").Encode())
			if r.Status != http.StatusOK {
				t.Errorf("part %d: %d %s", i, r.Status, r.Body)
			}
		})
	}
	wg.Wait()
	calls := e.statuses.Calls()
	if len(calls) != 1 || calls[0].Value != "delivered" {
		t.Fatalf("posted %+v, want one delivered for the whole message", calls)
	}
}

func TestStatus_SinkFailureAnswers503AndTheRetryReports(t *testing.T) {
	cases := []struct {
		name  string
		part  int
		parts int
	}{{"single message", 0, 1}, {"last part of two", 1, 2}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newHookEnv(t)
			if tc.parts > 1 {
				hookAssertStatusOK(t, e.postSigned(e.statusTarget(hookMID, 0, tc.parts), hookStatusForm("delivered", "").Encode()))
			}
			target := e.statusTarget(hookMID, tc.part, tc.parts)
			body := hookStatusForm("delivered", "").Encode()
			e.statuses.Fail(errors.New("store unavailable"))
			hookAssertError(t, e.postSigned(target, body), http.StatusServiceUnavailable)
			e.statuses.Fail(nil)
			hookAssertStatusOK(t, e.postSigned(target, body)) // Twilio's retry
			if got := e.statuses.Calls(); len(got) != 1 || got[0].Value != "delivered" {
				t.Fatalf("after the retry: %+v", got)
			}
		})
	}
}

func TestStatus_RecordsFailureAnswers503(t *testing.T) {
	cases := []struct {
		name   string
		target func(e *hookEnv) string
		form   url.Values
	}{
		{"part status cannot be kept", func(e *hookEnv) string { return e.statusTarget(hookMID, 0, 2) }, hookStatusForm("delivered", "")},
		{"21610 opt-out cannot be kept", func(e *hookEnv) string { return e.statusTarget(hookMID, 0, 1) }, hookStatusForm("failed", "21610")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newHookEnv(t)
			e.records.FailPuts("", errors.New("disk I/O error"))
			hookAssertError(t, e.postSigned(tc.target(e), tc.form.Encode()), http.StatusServiceUnavailable)
			if got := e.statuses.Calls(); len(got) != 0 {
				t.Fatalf("posted %+v", got)
			}
		})
	}
}

// A failed status whose ErrorCode is a fault of the channel's settings
// reads as the /message answer for that code does: naming the channel.
func TestStatus_ASettingsCodeNamesTheChannel(t *testing.T) {
	e := newHookEnv(t)
	hookAssertStatusOK(t, e.postSigned(e.statusTarget(hookMID, 0, 1), hookStatusForm("failed", "63007").Encode()))
	got := e.statuses.Calls()
	want := providers.SettingsRefusal(e.p.deps.ChannelID, callbackReason("63007", hookContact))
	if len(got) != 1 || got[0].Reason != want || !strings.HasPrefix(want, "channel "+e.p.deps.ChannelID+": ") {
		t.Fatalf("posted %+v, want the reason %q", got, want)
	}
}

func TestStatus_21610OptsOutOnlyThatContactForThisSender(t *testing.T) {
	e := newHookEnv(t)
	form := hookStatusForm("failed", "21610")
	hookAssertStatusOK(t, e.postSigned(e.statusTarget(hookMID, 1, 3), form.Encode()))
	if !e.optedOut(hookContact) || e.optedOut(hookWAUser) {
		t.Fatal("21610 must opt out exactly the callback's recipient")
	}
	got := e.statuses.Calls()
	want := []testkit.StatusCall{{Contact: hookContact, MID: hookMID, Value: "failed", Reason: "part 2 of 3: " + callbackReason("21610", hookContact)}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("posted %+v, want %+v", got, want)
	}
	// Other failures do not opt anyone out.
	e2 := newHookEnv(t)
	hookAssertStatusOK(t, e2.postSigned(e2.statusTarget(hookMID, 0, 1), hookStatusForm("undelivered", "30005").Encode()))
	if e2.optedOut(hookContact) {
		t.Fatal("30005 opted the contact out")
	}
}

func TestStatus_CallbackURLFromSendIsSignedAsIs(t *testing.T) {
	// The mId may hold characters the query escapes; the URL Twilio signs
	// is the one Send wrote, and the handler reads the mId back intact.
	e := newHookEnv(t)
	const mid = "ab+c/d=e f"
	hookAssertStatusOK(t, e.postSigned(e.statusTarget(mid, 0, 1), hookStatusForm("sent", "").Encode()))
	if got := e.statuses.Calls(); len(got) != 1 || got[0].MID != mid {
		t.Fatalf("posted %+v", got)
	}
}
