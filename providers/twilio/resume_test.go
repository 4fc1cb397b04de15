package twilio

// Tests of Resume: a send a crash cut off is looked up at Twilio before
// anything is sent again.

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bonychat/bonychat-adapter/internal/faketwilio"
	"github.com/bonychat/bonychat-adapter/internal/testkit"
	"github.com/bonychat/bonychat-adapter/providers"
	"github.com/bonychat/bonychat-adapter/schema"
)

// resume resumes mID as the pipeline does after a crash.
func (e *outEnv) resume(t *testing.T, m schema.Message, mID string) (providers.Sent, error) {
	t.Helper()
	return e.p.Resume(context.Background(), providers.Recipient{ChannelID: outChannel, ContactID: outContact}, m, mID,
		time.Now().Add(-time.Minute))
}

// forgetLastPart makes the records look as if the process died right after
// Twilio created the last part sent, before the parts memo and the recent
// SIDs noted it.
func (e *outEnv) forgetLastPart(t *testing.T, mID string) {
	t.Helper()
	ctx := context.Background()
	var memo partsMemo
	var recent recentSIDs
	if _, err := e.p.getJSON(ctx, nsParts, mID, &memo); err != nil || len(memo.SIDs) == 0 {
		t.Fatalf("no parts memo for %s: %v", mID, err)
	}
	if _, err := e.p.getJSON(ctx, nsRecentSIDs, outContact, &recent); err != nil {
		t.Fatal(err)
	}
	last := memo.SIDs[len(memo.SIDs)-1]
	memo.SIDs = memo.SIDs[:len(memo.SIDs)-1]
	recent.SIDs = slices.DeleteFunc(recent.SIDs, func(s string) bool { return s == last })
	if e.p.putJSON(ctx, nsParts, mID, memo, time.Time{}) != nil || e.p.putJSON(ctx, nsRecentSIDs, outContact, recent, time.Time{}) != nil {
		t.Fatal("cannot rewrite the records")
	}
}

func TestResumeFindsTheMessageTwilioCreatedBeforeTheCrash(t *testing.T) {
	t.Parallel()
	e := outNew(t)
	msg := outText("Your order has shipped")
	first, err := e.send(t, msg, "cut-1")
	if err != nil {
		t.Fatal(err)
	}
	e.forgetLastPart(t, "cut-1")
	sent, err := e.resume(t, msg, "cut-1")
	if err != nil {
		t.Fatalf("Resume: %v", err)
	}
	if !slices.Equal(sent.ProviderIDs, first.ProviderIDs) || e.fake.Count(faketwilio.Create) != 1 || len(e.fake.Messages()) != 1 {
		t.Fatalf("Resume returned %v (want %v); %d creates, %d messages: the message was sent twice",
			sent.ProviderIDs, first.ProviderIDs, e.fake.Count(faketwilio.Create), len(e.fake.Messages()))
	}
	if e.fake.Count(faketwilio.List) != 1 {
		t.Fatalf("%d list reads, want 1", e.fake.Count(faketwilio.List))
	}
}

// createAtTwilio makes a message at the fake directly, as a create the
// crash cut off would have, processed late.
func (e *outEnv) createAtTwilio(t *testing.T, body string) {
	t.Helper()
	form := url.Values{"To": {outContact}, "From": {outFrom}, "Body": {body}}
	req, err := http.NewRequest(http.MethodPost, e.fake.URL+"/2010-04-01/Accounts/"+outAccount+"/Messages.json",
		strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(outAccount, outToken)
	resp, err := testkit.NewLocalOnlyTransport().RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("create at the fake: %v %v", resp, err)
	}
	resp.Body.Close()
}

// Not in Twilio's list right after the restart: nothing is sent yet (a
// create cut off by the crash may still be processed); the retry after
// DefaultReconcileWait looks again, then sends.
func TestResumeSendsWhatTwilioNeverGotOnlyAfterLookingAgain(t *testing.T) {
	t.Parallel()
	e := outNew(t)
	msg := outText("Your order has shipped")
	_, err := e.resume(t, msg, "cut-2")
	if se := outSendError(t, err); se.Kind != providers.Unreachable || se.RetryAfter < DefaultReconcileWait {
		t.Fatalf("kind %v RetryAfter %v: want a retry after at least %v: %v", se.Kind, se.RetryAfter, DefaultReconcileWait, err)
	}
	if e.fake.Count(faketwilio.Create) != 0 || e.fake.Count(faketwilio.List) != 1 {
		t.Fatalf("%d creates, %d lists: want one look and nothing sent", e.fake.Count(faketwilio.Create), e.fake.Count(faketwilio.List))
	}
	e.settled(t, "cut-2")
	sent, err := e.send(t, msg, "cut-2") // the retry
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	msgs := e.fake.Messages()
	if len(msgs) != 1 || !slices.Equal(sent.ProviderIDs, []string{msgs[0].SID}) || e.fake.Count(faketwilio.List) != 2 {
		t.Fatalf("want one message sent after a second look: %d messages, %d lists, returned %v",
			len(msgs), e.fake.Count(faketwilio.List), sent.ProviderIDs)
	}
	var mark unconfirmed
	if found, err := e.p.getJSON(context.Background(), nsUnconfirmed, "cut-2", &mark); err != nil || found {
		t.Fatalf("the mark of a part sent stays (%v, %v): every later attempt would look again", found, err)
	}
	if _, err := e.send(t, msg, "cut-3"); err != nil || e.fake.Count(faketwilio.List) != 2 {
		t.Fatalf("another message must not look first: %v, %d lists", err, e.fake.Count(faketwilio.List))
	}
}

// The cut-off create shows up late, between Resume and its retry: the
// retry finds it and sends nothing.
func TestResumeRetryFindsALateCreate(t *testing.T) {
	t.Parallel()
	e := outNew(t)
	msg := outText("Your order has shipped")
	if _, err := e.resume(t, msg, "cut-5"); err == nil {
		t.Fatal("Resume sent at once")
	}
	e.createAtTwilio(t, "Your order has shipped")
	e.settled(t, "cut-5")
	sent, err := e.send(t, msg, "cut-5")
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	msgs := e.fake.Messages()
	if len(msgs) != 1 || !slices.Equal(sent.ProviderIDs, []string{msgs[0].SID}) {
		t.Fatalf("%d messages at Twilio, returned %v: the message was sent twice", len(msgs), sent.ProviderIDs)
	}
}

// Twilio's list cannot be read: nothing is sent, and the retry (after
// DefaultReconcileWait) looks first; a brief outage of the list loses nothing.
func TestResumeWithAnUnreadableMessageListLooksAgainLater(t *testing.T) {
	t.Parallel()
	e := outNew(t)
	e.fake.Always(faketwilio.List, faketwilio.ServiceUnavailableHTML())
	msg := outText("Your order has shipped")
	_, err := e.resume(t, msg, "cut-3")
	if se := outSendError(t, err); se.Kind != providers.Unreachable || se.RetryAfter < DefaultReconcileWait ||
		!strings.Contains(se.Error(), "message list cannot be read") {
		t.Fatalf("kind %v RetryAfter %v reason %q: want a retry that looks first", se.Kind, se.RetryAfter, se.Reason)
	}
	if n := e.fake.Count(faketwilio.Create); n != 0 {
		t.Fatalf("%d creates: a send that may be out was repeated", n)
	}
	_, err = e.send(t, msg, "cut-3") // the list still down: still nothing sent
	if se := outSendError(t, err); se.Kind != providers.Unreachable || e.fake.Count(faketwilio.Create) != 0 {
		t.Fatalf("retry with the list down: kind %v, %d creates", se.Kind, e.fake.Count(faketwilio.Create))
	}
	e.fake.Always(faketwilio.List, faketwilio.OK())
	e.settled(t, "cut-3")
	if _, err := e.send(t, msg, "cut-3"); err != nil || len(e.fake.Messages()) != 1 {
		t.Fatalf("retry with the list back: %v, %d messages; want it sent once", err, len(e.fake.Messages()))
	}
}

// Two crashes before the retry looked: the second Resume keeps the first
// attempt's time, so a create from then, shown late, is still found.
func TestResumeAfterASecondCrashKeepsTheEarliestAttempt(t *testing.T) {
	t.Parallel()
	e := outNew(t)
	msg := outText("Your order has shipped")
	to := providers.Recipient{ChannelID: outChannel, ContactID: outContact}
	early := time.Now().Add(-10 * time.Minute)
	e.fake.SetNow(func() time.Time { return early.Add(time.Second) }) // the cut-off create, made then...
	if _, err := e.p.Resume(context.Background(), to, msg, "cut-6", early); err == nil {
		t.Fatal("Resume sent at once")
	}
	e.createAtTwilio(t, "Your order has shipped") // ...shows up only now
	e.fake.SetNow(time.Now)
	// The second crash came after the first retry was scheduled.
	sent, err := e.p.Resume(context.Background(), to, msg, "cut-6", time.Now().Add(-time.Second))
	if err != nil || len(e.fake.Messages()) != 1 || !slices.Equal(sent.ProviderIDs, []string{e.fake.Messages()[0].SID}) {
		t.Fatalf("second Resume: %v, %d messages, returned %v; want the early create found", err, len(e.fake.Messages()), sent.ProviderIDs)
	}
}

// A long text goes as several messages: the crash cut off the second; the
// first is in the memo, the second is found at Twilio, the third is sent.
func TestResumeGoesOnAfterTheCutOffPart(t *testing.T) {
	t.Parallel()
	e := outNew(t)
	msg := outText(strings.Repeat("Lorem ipsum dolor sit amet. ", 150)) // 4200 characters: 3 parts
	e.fake.Script(faketwilio.Create, faketwilio.OK(), faketwilio.OK(), faketwilio.Code(21611))
	if _, err := e.send(t, msg, "cut-4"); err == nil {
		t.Fatal("the third part was to fail")
	}
	e.forgetLastPart(t, "cut-4") // the crash came right after the second part
	sent, err := e.resume(t, msg, "cut-4")
	if err != nil {
		t.Fatalf("Resume: %v", err)
	}
	msgs := e.fake.Messages()
	if len(msgs) != 3 || len(sent.ProviderIDs) != 3 {
		t.Fatalf("%d messages at Twilio, %d SIDs returned; want each part once", len(msgs), len(sent.ProviderIDs))
	}
	for i, m := range msgs {
		if sent.ProviderIDs[i] != m.SID {
			t.Fatalf("part %d: returned %s, Twilio has %s", i, sent.ProviderIDs[i], m.SID)
		}
	}
}

// A mark left behind for a part the memo already holds (its clearing
// failed) is stale: the next part is sent without a look, never matched
// against an older identical message.
func TestStaleUnconfirmedMarkIsIgnored(t *testing.T) {
	t.Parallel()
	e := outNew(t)
	msg := outText(strings.Repeat("Lorem ipsum dolor sit amet. ", 100)) // 2 parts
	e.fake.Script(faketwilio.Create, faketwilio.OK(), faketwilio.Code(21611))
	if _, err := e.send(t, msg, "stale-1"); err == nil {
		t.Fatal("the second part was to fail")
	}
	stale := unconfirmed{Part: 0, Since: time.Now().Add(-time.Hour).UnixMilli()}
	if err := e.p.putJSON(context.Background(), nsUnconfirmed, "stale-1", stale, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.send(t, msg, "stale-1"); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if n := e.fake.Count(faketwilio.List); n != 0 || len(e.fake.Messages()) != 2 {
		t.Fatalf("%d list reads, %d messages; want no look and each part once", n, len(e.fake.Messages()))
	}
}

// settled makes the unconfirmed mark of mID (if any) DefaultReconcileWait old, as
// it is when the queue's retry comes after the wait.
func (e *outEnv) settled(t *testing.T, mID string) {
	t.Helper()
	var mark unconfirmed
	found, err := e.p.getJSON(context.Background(), nsUnconfirmed, mID, &mark)
	if err != nil {
		t.Fatal(err)
	}
	if !found {
		return
	}
	mark.Since -= (DefaultReconcileWait + time.Second).Milliseconds()
	if mark.At != 0 {
		mark.At -= (DefaultReconcileWait + time.Second).Milliseconds()
	}
	if err := e.p.putJSON(context.Background(), nsUnconfirmed, mID, mark, time.Time{}); err != nil {
		t.Fatal(err)
	}
}

// A retry that comes before DefaultReconcileWait has passed (outbound.retry_max
// cut its wait) takes no answer from the list: it comes back later.
func TestRetryBeforeTheSettleTimeLooksAgainLater(t *testing.T) {
	t.Parallel()
	e := outNew(t)
	e.fake.Script(faketwilio.Create, faketwilio.Drop())
	msg := outText("Your order has shipped")
	if _, err := e.send(t, msg, "soon-1"); err == nil {
		t.Fatal("the dropped create was to fail")
	}
	time.Sleep(20 * time.Millisecond) // some of the wait has passed
	_, err := e.send(t, msg, "soon-1")
	se := outSendError(t, err)
	if se.Kind != providers.Unreachable || se.RetryAfter <= 0 || se.RetryAfter >= DefaultReconcileWait || !strings.Contains(se.Error(), "too soon") {
		t.Fatalf("kind %v RetryAfter %v reason %q: want a retry for the rest of the wait", se.Kind, se.RetryAfter, se.Reason)
	}
	if e.fake.Count(faketwilio.Create) != 1 {
		t.Fatalf("%d creates: sent again before the wait was over", e.fake.Count(faketwilio.Create))
	}
}

// Resume finds the cut-off part, but its memo cannot be written: when it
// was the last part, the message is sent; with parts still to come the
// part is marked with its SID and the attempt ends retryable, and the
// retry sends only the rest (never the found part again).
func TestResumeFoundButUnrecorded(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		text string
		sent bool
	}{
		{"the last part", "Your order has shipped", true},
		{"parts still to come", strings.Repeat("Lorem ipsum dolor sit amet. ", 100), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := outNew(t)
			msg := outText(tc.text)
			e.fake.Script(faketwilio.Create, faketwilio.OK(), faketwilio.Code(21611))
			_, _ = e.send(t, msg, "unrec-1") // the first part goes; a second, if any, is refused
			e.forgetLastPart(t, "unrec-1")
			e.records.FailPuts(nsParts, errors.New("disk full"))
			creates := e.fake.Count(faketwilio.Create)
			_, err := e.resume(t, msg, "unrec-1")
			switch {
			case tc.sent && err != nil:
				t.Fatalf("Resume: %v; want the message sent", err)
			case !tc.sent && outSendError(t, err).Kind != providers.Unreachable:
				t.Fatalf("Resume: %v; want a retry", err)
			}
			if n := e.fake.Count(faketwilio.Create); n != creates {
				t.Fatalf("%d new creates", n-creates)
			}
			if tc.sent {
				return
			}
			e.records.FailPuts(nsParts, nil)
			if _, err := e.send(t, msg, "unrec-1"); err != nil {
				t.Fatalf("retry: %v", err)
			}
			msgs := e.fake.Messages()
			if n := e.fake.Count(faketwilio.Create); n != creates+1 || msgs[len(msgs)-1].Body == msgs[0].Body {
				t.Fatalf("retry made %d creates, the last %q; want one, of the second part", n-creates, msgs[len(msgs)-1].Body)
			}
		})
	}
}

// A crash between noting a part among the recent SIDs and in the parts
// memo: the part is still found for its own message (the recent SIDs carry
// their mId), not sent again.
func TestResumeFindsAPartNotedOnlyAmongTheRecentSIDs(t *testing.T) {
	t.Parallel()
	e := outNew(t)
	msg := outText("Your order has shipped")
	first, err := e.send(t, msg, "half-1")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.p.putJSON(context.Background(), nsParts, "half-1", partsMemo{}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	sent, err := e.resume(t, msg, "half-1")
	if err != nil || !slices.Equal(sent.ProviderIDs, first.ProviderIDs) || e.fake.Count(faketwilio.Create) != 1 {
		t.Fatalf("Resume: %v, returned %v, %d creates; want the part found, not sent again", err, sent.ProviderIDs, e.fake.Count(faketwilio.Create))
	}
}

// With a Messaging Service the list is not filtered by From: a message
// another sender of the account sent with the same body is not ours.
func TestResumeWithAMessagingServiceIgnoresOtherSenders(t *testing.T) {
	t.Parallel()
	e := outNew(t, outWithConfig(func(c *Config) { c.From, c.MessagingServiceSID = "", outService }))
	e.createAtTwilio(t, "Your order has shipped") // from outFrom, no service
	_, err := e.resume(t, outText("Your order has shipped"), "svc-1")
	if se := outSendError(t, err); se.Kind != providers.Unreachable || !strings.Contains(se.Error(), "does not show the message yet") {
		t.Fatalf("kind %v reason %q: another sender's message was taken for ours", se.Kind, se.Reason)
	}
}

// An answer lost and its part not found, but the mark for the later look
// cannot be written: the send must end ambiguous, never be retried blindly.
func TestLostAnswerThatCannotBeMarkedIsNotRetried(t *testing.T) {
	t.Parallel()
	e := outNew(t)
	e.fake.Script(faketwilio.Create, faketwilio.Drop())
	e.records.FailPuts(nsUnconfirmed, errors.New("disk full"))
	_, err := e.send(t, outText("Your order has shipped"), "nomark-1")
	if se := outSendError(t, err); se.Kind != providers.Ambiguous || se.Kind.Retryable() || !strings.Contains(se.Error(), "not sent again") {
		t.Fatalf("kind %v reason %q: want ambiguous, not sent again", se.Kind, se.Reason)
	}
}

// Resume marks the doubt when it arises, not when the job became due: a
// job that waited hours behind a retrying one still gets the full wait.
func TestResumeSettlesFromTheResumeNotFromTheDueTime(t *testing.T) {
	t.Parallel()
	e := outNew(t)
	msg := outText("Your order has shipped")
	to := providers.Recipient{ChannelID: outChannel, ContactID: outContact}
	if _, err := e.p.Resume(context.Background(), to, msg, "due-1", time.Now().Add(-3*time.Hour)); err == nil {
		t.Fatal("Resume sent at once")
	}
	_, err := e.send(t, msg, "due-1") // a retry that retry_max made early
	if se := outSendError(t, err); se.Kind != providers.Unreachable || !strings.Contains(err.Error(), "too soon") || e.fake.Count(faketwilio.Create) != 0 {
		t.Fatalf("kind %v reason %q, %d creates: sent before the wait was over", se.Kind, se.Reason, e.fake.Count(faketwilio.Create))
	}
}

// A message whose parts read alike: the look-up for a later part never
// takes an earlier part of the same message for it.
func TestLookUpNeverTakesAnEarlierPartForALaterOne(t *testing.T) {
	t.Parallel()
	e := outNew(t)
	chunk := strings.Repeat("x", MaxBody-1) + " "
	msg := outText(chunk + chunk) // two identical parts
	e.fake.Script(faketwilio.Create, faketwilio.OK(), faketwilio.Drop())
	if _, err := e.send(t, msg, "alike-1"); err == nil {
		t.Fatal("the second part's create was to be dropped")
	}
	if n := len(e.fake.Messages()); n != 1 {
		t.Fatalf("%d messages at Twilio after the drop, want 1", n)
	}
	e.settled(t, "alike-1")
	sent, err := e.send(t, msg, "alike-1")
	if err != nil || len(e.fake.Messages()) != 2 || len(sent.ProviderIDs) != 2 || sent.ProviderIDs[0] == sent.ProviderIDs[1] {
		t.Fatalf("retry: %v, %d messages, returned %v; want the second part sent once", err, len(e.fake.Messages()), sent.ProviderIDs)
	}
}

// A retry that comes before DefaultReconcileWait has passed still looks: a part
// that Twilio's list did not show at the first look (the list was down, or
// late) but shows now is taken as sent at once, not after the wait, and
// never sent again.
func TestRetryBeforeTheSettleTimeTakesAPartTheListNowShows(t *testing.T) {
	t.Parallel()
	e := outNew(t)
	e.fake.Script(faketwilio.Create, faketwilio.RecordThenDrop())
	e.fake.Always(faketwilio.List, faketwilio.ServiceUnavailableHTML())
	msg := outText("Your order has shipped")
	if _, err := e.send(t, msg, "early-1"); err == nil {
		t.Fatal("the dropped create was to fail")
	}
	e.fake.Always(faketwilio.List, faketwilio.OK())
	sent, err := e.send(t, msg, "early-1") // retry_max made it early
	if err != nil {
		t.Fatalf("early retry: %v; want the part the list shows taken as sent", err)
	}
	msgs := e.fake.Messages()
	if len(msgs) != 1 || e.fake.Count(faketwilio.Create) != 1 || !slices.Equal(sent.ProviderIDs, []string{msgs[0].SID}) {
		t.Fatalf("%d messages, %d creates, returned %v: want the one made, not sent again",
			len(msgs), e.fake.Count(faketwilio.Create), sent.ProviderIDs)
	}
}

// reconcile_wait sets how long a part in doubt is given to show up in
// Twilio's list: the retry comes after it, and once it has passed a part
// still missing is sent again (here after 5 s instead of the default 30).
func TestReconcileWaitSetsWhenAMissingPartIsSentAgain(t *testing.T) {
	t.Parallel()
	const wait = 5 * time.Second
	e := outNew(t, func(c *Config, _ *providers.Deps) { c.ReconcileWait = wait })
	e.fake.Script(faketwilio.Create, faketwilio.Drop())
	msg := outText("Your order has shipped")
	_, err := e.send(t, msg, "wait-1")
	if se := outSendError(t, err); se.Kind != providers.Unreachable || se.RetryAfter != wait {
		t.Fatalf("kind %v RetryAfter %v: want a retry after reconcile_wait (%v)", se.Kind, se.RetryAfter, wait)
	}
	e.p.now = func() time.Time { return time.Now().Add(wait - time.Second) }
	if _, err := e.send(t, msg, "wait-1"); err == nil || !strings.Contains(err.Error(), "too soon") {
		t.Fatalf("retry before reconcile_wait: %v; want it too soon", err)
	}
	e.p.now = func() time.Time { return time.Now().Add(wait + time.Second) }
	if _, err := e.send(t, msg, "wait-1"); err != nil || len(e.fake.Messages()) != 1 {
		t.Fatalf("retry after reconcile_wait: %v, %d messages; want it sent", err, len(e.fake.Messages()))
	}
}
