package mailgun

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bonychat/bonychat-adapter/internal/fakemailgun"
	"github.com/bonychat/bonychat-adapter/providers"
)

// thrJob sends like the job pipeline does: again while the error is
// retryable, never after an ambiguous one.
func thrJob(t *testing.T, e *sendEnv, mID string, maxTries int) (providers.Sent, error, int) {
	t.Helper()
	var (
		sent providers.Sent
		err  error
	)
	for try := 1; try <= maxTries; try++ {
		sent, err = e.send(t, context.Background(), sendContact, text("hello"), mID)
		if err == nil || !providers.AsSendError(err).Kind.Retryable() {
			return sent, err, try
		}
	}
	return sent, err, maxTries
}

// Mailgun took the e-mail and the answer was lost: the events API shows it
// accepted, so the send succeeds and is not repeated.
func TestReconcileRecordThenDropIsOneEmail(t *testing.T) {
	e := sendNew(t, nil)
	e.fake.Script(fakemailgun.RecordThenDrop())
	sent, err, tries := thrJob(t, e, "m20", 3)
	if err != nil {
		t.Fatal(err)
	}
	if tries != 1 || len(sent.ProviderIDs) != 1 || sent.ProviderIDs[0] != "m20@"+sendDomain {
		t.Fatalf("tries = %d, sent = %+v", tries, sent)
	}
	if got := sendOnly(t, e.fake); got.ID != "<m20@"+sendDomain+">" {
		t.Fatalf("sent %q", got.ID)
	}
	if n := len(e.fake.Attempts()); n != 1 {
		t.Fatalf("fake saw %d sends, want 1", n)
	}
	// The reconciled e-mail is part of the thread: a reply to it chains.
	thrSend(t, e, sendContact, "m21")
	if got := thrLast(t, e.fake).Get("h:References"); got != "<m20@"+sendDomain+">" {
		t.Fatalf("References = %q", got)
	}
}

// The connection dropped before Mailgun took anything: no accepted event,
// so the send is retryable, and the retry sends exactly one e-mail.
func TestReconcileDropWithoutRecordRetriesOnce(t *testing.T) {
	e := sendNew(t, nil)
	e.fake.Script(fakemailgun.Drop())
	_, err := e.send(t, context.Background(), sendContact, text("hello"), "m22")
	se := sendKind(t, err)
	if se.Kind != providers.Unreachable || !se.Kind.Retryable() || !strings.Contains(err.Error(), "does not show the e-mail yet") {
		t.Fatalf("got %v %q, want retryable unreachable", se.Kind, se.Reason)
	}
	if se.RetryAfter < DefaultReconcileWait {
		t.Errorf("RetryAfter %v: an e-mail taken may show in the events late; want at least %v", se.RetryAfter, DefaultReconcileWait)
	}
	if n := e.fake.EventQueries(); n != e.p.reconcileTries {
		t.Errorf("events API asked %d times, want %d", n, e.p.reconcileTries)
	}
	if n := len(e.fake.Sent()); n != 0 {
		t.Fatalf("fake took %d e-mails before the retry", n)
	}
	settled(t, e, "m22")
	if _, err := e.send(t, context.Background(), sendContact, text("hello"), "m22"); err != nil {
		t.Fatal(err)
	}
	if got := sendOnly(t, e.fake); got.ID != "<m22@"+sendDomain+">" {
		t.Fatalf("sent %q", got.ID)
	}
	if n := len(e.fake.Attempts()); n != 2 {
		t.Fatalf("fake saw %d sends, want 2", n)
	}
}

// Only our own Message-Id counts: another e-mail's accepted event does not
// make a lost send a success.
func TestReconcileLooksForOurMessageID(t *testing.T) {
	e := sendNew(t, nil)
	thrSend(t, e, sendContact, "m23")
	e.fake.Script(fakemailgun.Drop())
	_, err := e.send(t, context.Background(), sendContact, text("hello"), "m24")
	if se := sendKind(t, err); se.Kind != providers.Unreachable {
		t.Fatalf("got %v %q, want unreachable", se.Kind, se.Reason)
	}
	// An mId that is not a plain atom is looked up by its encoded id.
	e.fake.Script(fakemailgun.RecordThenDrop())
	sent, err := e.send(t, context.Background(), sendContact, text("hello"), "m 25/ü")
	if err != nil {
		t.Fatal(err)
	}
	if want := messageID("m 25/ü", sendDomain); sent.ProviderIDs[0] != want {
		t.Fatalf("id = %q, want %q", sent.ProviderIDs[0], want)
	}
	if n := len(e.fake.Sent()); n != 2 {
		t.Fatalf("fake took %d e-mails, want 2", n)
	}
}

// An events API that cannot answer: the e-mail is not sent again now,
// whether or not Mailgun took it; the retry waits and looks first.
func TestReconcileEventsDownLooksAgainLater(t *testing.T) {
	for _, c := range []struct {
		name  string
		b     fakemailgun.Behaviour
		taken int
	}{
		{"record then drop", fakemailgun.RecordThenDrop(), 1},
		{"503", fakemailgun.Error(503, "Service Unavailable"), 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := sendNew(t, nil)
			e.fake.SetEventsDown(500)
			e.fake.Script(c.b)
			_, err := e.send(t, context.Background(), sendContact, text("hello"), "m26")
			se := sendKind(t, err)
			if se.Kind != providers.Unreachable || se.RetryAfter < DefaultReconcileWait || !strings.Contains(err.Error(), "events cannot be read") {
				t.Fatalf("got %v %q RetryAfter %v, want a retry after %v that looks first", se.Kind, se.Reason, se.RetryAfter, DefaultReconcileWait)
			}
			// The retry, events still down: nothing sent.
			settled(t, e, "m26")
			_, err = e.send(t, context.Background(), sendContact, text("hello"), "m26")
			if se := sendKind(t, err); se.Kind != providers.Unreachable || len(e.fake.Attempts()) != 1 || len(e.fake.Sent()) != c.taken {
				t.Fatalf("retry: %v, attempts = %d, taken = %d", se.Kind, len(e.fake.Attempts()), len(e.fake.Sent()))
			}
			if strings.Contains(err.Error(), sendKey) {
				t.Fatal("the API key is in the error")
			}
		})
	}
}

// settled makes the unconfirmed mark of mID DefaultReconcileWait old, as it is when
// the queue's retry comes after the wait.
func settled(t *testing.T, e *sendEnv, mID string) {
	t.Helper()
	old := strconv.FormatInt(time.Now().Add(-DefaultReconcileWait-time.Second).UnixMilli(), 10)
	if err := e.records.PutUntil(context.Background(), nsUnconfirmed, mID, []byte(old), time.Time{}); err != nil {
		t.Fatal(err)
	}
}

// A retry before DefaultReconcileWait has passed since the mark (outbound.retry_max
// cut its wait) takes no answer from the events: it comes back later.
func TestRetryBeforeTheSettleTimeLooksAgainLater(t *testing.T) {
	e := sendNew(t, nil)
	e.fake.Script(fakemailgun.Drop())
	if _, err := e.send(t, context.Background(), sendContact, text("hello"), "m40"); err == nil {
		t.Fatal("the dropped send was to fail")
	}
	_, err := e.send(t, context.Background(), sendContact, text("hello"), "m40")
	if se := sendKind(t, err); se.Kind != providers.Unreachable || se.RetryAfter <= 0 || se.RetryAfter >= DefaultReconcileWait ||
		!strings.Contains(se.Error(), "too soon") {
		t.Fatalf("got %v %q RetryAfter %v: want a retry for the rest of the wait", se.Kind, se.Reason, se.RetryAfter)
	}
	if n := len(e.fake.Attempts()); n != 1 {
		t.Fatalf("fake saw %d sends: sent again before the wait was over", n)
	}
}

func TestReconcileWithoutTimeIsAmbiguous(t *testing.T) {
	e := sendNew(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	se, err := e.p.reconcile(ctx, "m27@"+sendDomain, &providers.SendError{Kind: providers.Ambiguous, Reason: "no answer"})
	if se != "" || err == nil || err.Kind != providers.Ambiguous {
		t.Fatalf("got %q, %v", se, err)
	}
}

// A retry after an unconfirmed attempt looks the Message-Id up again
// before sending: an e-mail Mailgun took late is not sent twice.
func TestRetryAfterUnconfirmedAttemptChecksBeforeSending(t *testing.T) {
	e := sendNew(t, nil)
	if _, err := e.send(t, context.Background(), sendContact, text("hello"), "m30"); err != nil {
		t.Fatal(err)
	}
	// As if that attempt had looked unconfirmed (the events API was late).
	if err := e.records.Put(context.Background(), nsUnconfirmed, "m30", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.send(t, context.Background(), sendContact, text("hello"), "m30"); err != nil {
		t.Fatal(err)
	}
	if n := len(e.fake.Attempts()); n != 1 {
		t.Fatalf("the retry must find the e-mail and not send it again: %d sends", n)
	}
}

// resumeNow resumes mID as the pipeline does after a crash.
func resumeNow(t *testing.T, e *sendEnv, mID string) (providers.Sent, error) {
	t.Helper()
	return e.p.Resume(context.Background(), providers.Recipient{ChannelID: "mail01", ContactID: sendContact}, text("hello"), mID,
		time.Now().Add(-time.Minute))
}

// The process died after Mailgun took the e-mail: Resume finds it in the
// events and sends nothing.
func TestResumeFindsTheEmailMailgunTook(t *testing.T) {
	e := sendNew(t, nil)
	if _, err := e.send(t, context.Background(), sendContact, text("hello"), "m30"); err != nil {
		t.Fatal(err)
	}
	sent, err := resumeNow(t, e, "m30")
	if err != nil {
		t.Fatalf("Resume: %v", err)
	}
	if len(sent.ProviderIDs) != 1 || sent.ProviderIDs[0] != "m30@"+sendDomain {
		t.Fatalf("sent = %+v", sent)
	}
	if n := len(e.fake.Attempts()); n != 1 {
		t.Fatalf("fake saw %d sends, want 1: the e-mail went twice", n)
	}
}

// The process died before Mailgun took anything: Resume sends nothing yet
// (an e-mail cut off by the crash may still show up in the events); the
// retry after DefaultReconcileWait looks once more, then sends it once.
func TestResumeSendsWhatMailgunNeverTookOnlyAfterLookingAgain(t *testing.T) {
	e := sendNew(t, nil)
	_, err := resumeNow(t, e, "m31")
	if se := sendKind(t, err); se.Kind != providers.Unreachable || se.RetryAfter < DefaultReconcileWait {
		t.Fatalf("got %v, RetryAfter %v: want a retry after at least %v", se.Kind, se.RetryAfter, DefaultReconcileWait)
	}
	if n := len(e.fake.Attempts()); n != 0 {
		t.Fatalf("fake saw %d sends at once, want none", n)
	}
	settled(t, e, "m31")
	if _, err := e.send(t, context.Background(), sendContact, text("hello"), "m31"); err != nil {
		t.Fatal(err)
	}
	if got := sendOnly(t, e.fake); got.ID != "<m31@"+sendDomain+">" {
		t.Fatalf("sent %q", got.ID)
	}
	if n := e.fake.EventQueries(); n != e.p.reconcileTries+1 {
		t.Errorf("events API asked %d times, want %d (Resume's looks, then the retry's own)", n, e.p.reconcileTries+1)
	}
}

// The events API is down: whether the e-mail went cannot be told, so it is
// not sent now; the retry (after DefaultReconcileWait) looks again before sending.
func TestResumeWithTheEventsAPIDownLooksAgainLater(t *testing.T) {
	e := sendNew(t, nil)
	e.fake.SetEventsDown(503)
	_, err := resumeNow(t, e, "m32")
	if se := sendKind(t, err); se.Kind != providers.Unreachable || se.RetryAfter < DefaultReconcileWait ||
		!strings.Contains(err.Error(), "events cannot be read") {
		t.Fatalf("got %v %q RetryAfter %v, want a retry after %v that looks first", se.Kind, se.Reason, se.RetryAfter, DefaultReconcileWait)
	}
	if n := len(e.fake.Attempts()); n != 0 {
		t.Fatalf("fake saw %d sends, want none", n)
	}
	settled(t, e, "m32")
	_, err = e.send(t, context.Background(), sendContact, text("hello"), "m32") // the events still down
	if se := sendKind(t, err); se.Kind != providers.Unreachable || len(e.fake.Attempts()) != 0 {
		t.Fatalf("retry with the events down: %v, %d sends; want nothing sent", se.Kind, len(e.fake.Attempts()))
	}
}

// A second attempt whose answer is lost too gets a wait of its own: the
// mark goes before the e-mail is sent again and comes back with the new
// attempt's time, so an early retry does not send a third one.
func TestSecondLostAnswerWaitsAgain(t *testing.T) {
	e := sendNew(t, nil)
	e.fake.Script(fakemailgun.Drop(), fakemailgun.Drop())
	if _, err := e.send(t, context.Background(), sendContact, text("hello"), "m41"); err == nil {
		t.Fatal("the first send was to be dropped")
	}
	settled(t, e, "m41")
	if _, err := e.send(t, context.Background(), sendContact, text("hello"), "m41"); err == nil {
		t.Fatal("the second send was to be dropped")
	}
	_, err := e.send(t, context.Background(), sendContact, text("hello"), "m41") // early: retry_max cut the wait
	if se := sendKind(t, err); se.Kind != providers.Unreachable || !strings.Contains(se.Error(), "too soon") {
		t.Fatalf("got %v %q, want a retry that waits", se.Kind, se.Reason)
	}
	if n := len(e.fake.Attempts()); n != 2 {
		t.Fatalf("fake saw %d sends, want 2", n)
	}
}

// Resume starts the wait when it runs, whenever the job became due.
func TestResumeSettlesFromTheResume(t *testing.T) {
	e := sendNew(t, nil)
	to := providers.Recipient{ChannelID: "mail01", ContactID: sendContact}
	if _, err := e.p.Resume(context.Background(), to, text("hello"), "m42", time.Now().Add(-3*time.Hour)); err == nil {
		t.Fatal("Resume sent at once")
	}
	_, err := e.send(t, context.Background(), sendContact, text("hello"), "m42")
	if se := sendKind(t, err); se.Kind != providers.Unreachable || !strings.Contains(se.Error(), "too soon") || len(e.fake.Attempts()) != 0 {
		t.Fatalf("got %v %q, %d sends: sent before the wait was over", se.Kind, se.Reason, len(e.fake.Attempts()))
	}
}

// A retry that comes before reconcile_wait has passed still looks: an
// e-mail Mailgun took (its events were late at the first look) is taken
// as sent at once, not after the wait, and never sent again.
func TestRetryBeforeTheSettleTimeTakesAnEmailTheEventsNowShow(t *testing.T) {
	e := sendNew(t, nil)
	if _, err := e.send(t, context.Background(), sendContact, text("hello"), "m41"); err != nil {
		t.Fatal(err)
	}
	// As if that attempt had just looked unconfirmed (the events were late).
	now := strconv.FormatInt(time.Now().UnixMilli(), 10)
	if err := e.records.Put(context.Background(), nsUnconfirmed, "m41", []byte(now)); err != nil {
		t.Fatal(err)
	}
	sent, err := e.send(t, context.Background(), sendContact, text("hello"), "m41")
	if err != nil {
		t.Fatalf("early retry: %v; want the e-mail the events show taken as sent", err)
	}
	if n := len(e.fake.Attempts()); n != 1 || len(sent.ProviderIDs) != 1 || sent.ProviderIDs[0] != "m41@"+sendDomain {
		t.Fatalf("%d sends, returned %+v: want the one taken, not sent again", n, sent)
	}
}

// reconcile_wait sets how long an e-mail in doubt is given to show in
// Mailgun's events: the retry comes after it, and once it has passed an
// e-mail still missing is sent (here after 5 s instead of the default 5 min).
func TestReconcileWaitSetsWhenAMissingEmailIsSentAgain(t *testing.T) {
	const wait = 5 * time.Second
	e := sendNew(t, nil, func(c *Config) { c.ReconcileWait = wait })
	e.fake.Script(fakemailgun.Drop())
	_, err := e.send(t, context.Background(), sendContact, text("hello"), "m42")
	if se := sendKind(t, err); se.Kind != providers.Unreachable || se.RetryAfter != wait {
		t.Fatalf("got %v RetryAfter %v: want a retry after reconcile_wait (%v)", se.Kind, se.RetryAfter, wait)
	}
	e.p.now = func() time.Time { return time.Now().Add(wait - time.Second) }
	if _, err := e.send(t, context.Background(), sendContact, text("hello"), "m42"); err == nil || !strings.Contains(err.Error(), "too soon") {
		t.Fatalf("retry before reconcile_wait: %v; want it too soon", err)
	}
	e.p.now = func() time.Time { return time.Now().Add(wait + time.Second) }
	if _, err := e.send(t, context.Background(), sendContact, text("hello"), "m42"); err != nil {
		t.Fatalf("retry after reconcile_wait: %v; want it sent", err)
	}
	if got := sendOnly(t, e.fake); got.ID != "<m42@"+sendDomain+">" {
		t.Fatalf("sent %q", got.ID)
	}
}

// reconcile_wait is at least 1 s (a typo such as 1ms would send twice) and
// at most 24 h (well within the 30 days its mark lives).
func TestReconcileWaitOutsideItsBoundsIsAConfigError(t *testing.T) {
	for wait, want := range map[time.Duration]string{
		100 * time.Millisecond: "reconcile_wait: must be at least 1s",
		25 * time.Hour:         "reconcile_wait: must be at most 24h",
	} {
		c := Config{Domain: sendDomain, APIKey: sendKey, WebhookSigningKey: sendSignKey, From: sendFrom, Subject: sendSubject,
			ReconcileWait: wait}
		if probs := c.Problems(); !slices.Contains(probs, want) {
			t.Errorf("reconcile_wait %v: problems %q, want %q", wait, probs, want)
		}
	}
	ok := Config{Domain: sendDomain, APIKey: sendKey, WebhookSigningKey: sendSignKey, From: sendFrom, Subject: sendSubject,
		ReconcileWait: 24 * time.Hour}
	if probs := ok.Problems(); len(probs) != 0 {
		t.Errorf("reconcile_wait 24h: problems %q, want none", probs)
	}
}

// The wait runs from when the doubt arose, not from the send's start:
// Mailgun may have taken an e-mail at any moment of a send that stalled
// longer than reconcile_wait, so a retry that comes at once (retry_max cut
// its wait) is still too soon and sends nothing.
func TestRetryAfterAStalledSendWaitsFromTheDoubtNotTheSendStart(t *testing.T) {
	const wait = 2 * time.Second
	e := sendNew(t, nil, func(c *Config) { c.ReconcileWait = wait })
	e.fake.Script(fakemailgun.Stall(time.Minute))
	ctx, cancel := context.WithTimeout(context.Background(), wait+time.Second) // the stall outlasts the wait
	_, err := e.send(t, ctx, sendContact, text("hello"), "m43")
	cancel()
	if se := sendKind(t, err); !se.Kind.Retryable() {
		t.Fatalf("stalled send: %v, want a retryable look-again", err)
	}
	_, err = e.send(t, context.Background(), sendContact, text("hello"), "m43")
	if n := len(e.fake.Attempts()); n != 1 || err == nil || !strings.Contains(err.Error(), "too soon") {
		t.Fatalf("retry at once after the doubt: %d sends, err %v; want it too soon, nothing sent again", n, err)
	}
}
