package twilio

// Tests of what controls a send besides its content: Twilio's Retry-After
// and the caller's context.

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bonychat/bonychat-adapter/internal/faketwilio"
	"github.com/bonychat/bonychat-adapter/providers"
)

func TestSendCarriesTwiliosRetryAfterToTheQueue(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		script   []faketwilio.Behaviour
		kind     providers.ErrorKind
		min, max time.Duration // the RetryAfter wanted
		creates  int
		lists    int
	}{
		// Longer than the HTTP layer sleeps: not retried in the call, the
		// queue waits it.
		{name: "a 429 asking for 30 seconds", script: []faketwilio.Behaviour{faketwilio.Throttled().WithRetryAfter("30")},
			kind: providers.Throttled, min: 30 * time.Second, max: 30 * time.Second, creates: 1},
		{name: "a 429 with another code", script: []faketwilio.Behaviour{faketwilio.Error(14107, 429, "Rate").WithRetryAfter("60")},
			kind: providers.Throttled, min: time.Minute, max: time.Minute, creates: 1},
		{name: "a proxy's 429 page (no Twilio body)",
			script: []faketwilio.Behaviour{faketwilio.Raw(429, "text/html", "<html>slow down</html>").WithRetryAfter("30")},
			kind:   providers.Throttled, min: 30 * time.Second, max: 30 * time.Second, creates: 1},
		// Short enough to wait in the call: retried, the last answer's wait kept.
		{name: "429s asking for a second", script: []faketwilio.Behaviour{faketwilio.Throttled(), faketwilio.Throttled(), faketwilio.Throttled()},
			kind: providers.Throttled, min: time.Second, max: time.Second, creates: 3},
		// Garbage is ignored: retried on the HTTP layer's own backoff, no wait carried.
		{name: "429s with a garbled Retry-After", script: []faketwilio.Behaviour{
			faketwilio.Throttled().WithRetryAfter("soon"), faketwilio.Throttled().WithRetryAfter("-3"), faketwilio.Throttled().WithRetryAfter("1.5")},
			kind: providers.Throttled, creates: 3},
		// A 503 may have been processed: looked up, and when Twilio has no
		// such message, retried no sooner than Twilio asked, nor than
		// DefaultReconcileWait (the retry looks again first).
		{name: "a Twilio 503", script: []faketwilio.Behaviour{faketwilio.Code(20503).WithRetryAfter("90")},
			kind: providers.Unreachable, min: 90 * time.Second, max: 90 * time.Second, creates: 1, lists: 1},
		{name: "a proxy's 503 page", script: []faketwilio.Behaviour{faketwilio.ServiceUnavailableHTML().WithRetryAfter("15")},
			kind: providers.Unreachable, min: DefaultReconcileWait, max: DefaultReconcileWait, creates: 1, lists: 1},
		// Only 429 and 503 ask a client to wait.
		{name: "a 400 with a Retry-After", script: []faketwilio.Behaviour{faketwilio.Code(21211).WithRetryAfter("30")},
			kind: providers.Permanent, creates: 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := outNew(t)
			e.fake.Script(faketwilio.Create, c.script...)
			_, err := e.send(t, outText("hello"), "ra-1")
			se := outSendError(t, err)
			if se.Kind != c.kind || se.RetryAfter < c.min || se.RetryAfter > c.max {
				t.Fatalf("kind %v RetryAfter %v; want %v with RetryAfter in [%v, %v]: %v", se.Kind, se.RetryAfter, c.kind, c.min, c.max, err)
			}
			if e.fake.Count(faketwilio.Create) != c.creates || e.fake.Count(faketwilio.List) != c.lists || len(e.fake.Messages()) != 0 {
				t.Fatalf("%d creates, %d lists, %d messages; want %d, %d, 0", e.fake.Count(faketwilio.Create),
					e.fake.Count(faketwilio.List), len(e.fake.Messages()), c.creates, c.lists)
			}
		})
	}
}

func TestSendCarriesARetryAfterGivenAsAnHTTPDate(t *testing.T) {
	t.Parallel()
	e := outNew(t)
	in45s := time.Now().Add(45 * time.Second).UTC().Format(http.TimeFormat) // whole seconds: 44-45 s from now
	e.fake.Script(faketwilio.Create, faketwilio.Throttled().WithRetryAfter(in45s))
	_, err := e.send(t, outText("hello"), "ra-2")
	if se := outSendError(t, err); se.Kind != providers.Throttled || se.RetryAfter < 40*time.Second || se.RetryAfter > 45*time.Second {
		t.Fatalf("kind %v RetryAfter %v; want throttled for about 45 s: %v", se.Kind, se.RetryAfter, err)
	}
	if n := e.fake.Count(faketwilio.Create); n != 1 {
		t.Fatalf("%d creates: a wait that long is not taken inside the call", n)
	}
}

func TestSendUnderAContextAlreadyOverNeverReachesTwilio(t *testing.T) {
	t.Parallel()
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel2()
	for name, ctx := range map[string]context.Context{"cancelled": cancelled, "deadline passed": expired} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := outNew(t)
			// The whole send stops at its first record read (retryable)...
			_, err := e.p.Send(ctx, providers.Recipient{ChannelID: outChannel, ContactID: outContact}, outText("hello"), "ctx-1")
			if se := outSendError(t, err); se.Kind != providers.Unreachable {
				t.Fatalf("Send: kind %v reason %q: %v", se.Kind, se.Reason, err)
			}
			// ...and the create itself never leaves either.
			_, err = e.p.sendPart(ctx, outContact, "ctx-1", 0, 1, part{Body: "hello"}, partsMemo{})
			se := outSendError(t, err)
			if se.Kind != providers.Unreachable || !strings.Contains(se.Reason, "stopped before it reached Twilio") {
				t.Fatalf("sendPart: kind %v reason %q: %v", se.Kind, se.Reason, err)
			}
			if n := e.trips.n.Load(); n != 0 || e.fake.Requests() != 0 {
				t.Fatalf("%d round trips, %d requests at Twilio; want none", n, e.fake.Requests())
			}
		})
	}
}

// outCancelAfterFirstAnswer cancels a context shortly after the first
// answer passes, while the HTTP layer sleeps before its retry.
type outCancelAfterFirstAnswer struct {
	next   http.RoundTripper
	cancel context.CancelFunc
	once   sync.Once
}

func (c *outCancelAfterFirstAnswer) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.next.RoundTrip(r)
	c.once.Do(func() { time.AfterFunc(50*time.Millisecond, c.cancel) })
	return resp, err
}

func TestSendCancelledWhileWaitingToRetryStopsThere(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e := outNew(t)
	e.trips.next = &outCancelAfterFirstAnswer{next: e.trips.next, cancel: cancel}
	// A 429 asking for 2 s is waited in the call; the next attempt would succeed.
	e.fake.Script(faketwilio.Create, faketwilio.Throttled().WithRetryAfter("2"))
	_, err := e.p.Send(ctx, providers.Recipient{ChannelID: outChannel, ContactID: outContact}, outText("hello"), "ctx-2")
	se := outSendError(t, err)
	if se.Kind != providers.Throttled || se.RetryAfter != 2*time.Second {
		t.Fatalf("kind %v RetryAfter %v: %v", se.Kind, se.RetryAfter, err)
	}
	if e.fake.Count(faketwilio.Create) != 1 || len(e.fake.Messages()) != 0 || e.fake.Count(faketwilio.List) != 0 {
		t.Fatalf("%d creates, %d messages, %d lists: the retry went out after the caller left",
			e.fake.Count(faketwilio.Create), len(e.fake.Messages()), e.fake.Count(faketwilio.List))
	}
}

func TestSendCutOffByItsContextAfterTheRequestLeftIsReconciled(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		create   faketwilio.Behaviour
		wantErr  bool
		messages int
	}{
		{"created before the cut: found, not resent", faketwilio.RecordThenStall(time.Minute), false, 1},
		{"not created: retryable", faketwilio.Stall(time.Minute), true, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := outNew(t)
			e.fake.Script(faketwilio.Create, c.create)
			// The caller leaves once Twilio has the request (whatever the
			// machine's speed): cancel when the fake has counted it.
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go func() {
				for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
					// Stall counts the create; RecordThenStall has recorded it too.
					if e.fake.Count(faketwilio.Create) > 0 && len(e.fake.Messages()) == c.messages {
						break
					}
				}
				cancel()
			}()
			started := time.Now()
			sent, err := e.p.Send(ctx, providers.Recipient{ChannelID: outChannel, ContactID: outContact}, outText("hello"), "ctx-3")
			// Bounded by the context, not by the 15 s attempt timeout.
			if took := time.Since(started); took > 12*time.Second {
				t.Fatalf("Send took %v after its context ended", took)
			}
			if c.wantErr {
				if se := outSendError(t, err); se.Kind != providers.Unreachable || !strings.Contains(se.Error(), "does not show the message yet") {
					t.Fatalf("kind %v reason %q: %v", se.Kind, se.Reason, err)
				}
			} else if err != nil || len(sent.ProviderIDs) != 1 {
				t.Fatalf("%v %v", sent, err)
			}
			if e.fake.Count(faketwilio.Create) != 1 || e.fake.Count(faketwilio.List) != 1 || len(e.fake.Messages()) != c.messages {
				t.Fatalf("%d creates, %d lists, %d messages", e.fake.Count(faketwilio.Create),
					e.fake.Count(faketwilio.List), len(e.fake.Messages()))
			}
		})
	}
}
