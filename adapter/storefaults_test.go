package adapter

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bonychat/bonychat-adapter/providers"
	"github.com/bonychat/bonychat-adapter/schema"
	"github.com/bonychat/bonychat-adapter/store"
)

// Tests of what happens when the store is slow or refuses the write that
// records an attempt or a post.

// retryRefused fails the first `fails` Retry writes (a locked or full store).
type retryRefused struct {
	store.Store
	fails   int32
	refused atomic.Int32
}

func (s *retryRefused) Retry(ctx context.Context, token string, next time.Time, lastError string) error {
	if s.refused.Add(1) <= s.fails {
		return errors.New("database is locked")
	}
	return s.Store.Retry(ctx, token, next, lastError)
}

// firstAttemptUnreachable fails the first attempt with a retryable error.
func firstAttemptUnreachable() *fakeProvider {
	return &fakeProvider{script: func(n int, _ providers.Recipient, _ schema.Message) error {
		if n == 0 {
			return &providers.SendError{Kind: providers.Unreachable, Reason: "connection refused"}
		}
		return nil
	}}
}

func quickRetries(c *Config) {
	c.Outbound.Wait = 100 * time.Millisecond
	c.Outbound.RetryMin, c.Outbound.RetryMax = 10*time.Millisecond, 50*time.Millisecond
}

// A retry that cannot be recorded, even after the write is tried again for
// a while, does not strand the contact: the job keeps its lease and the
// worker attempts it again itself; the message and the one queued behind
// it are both sent, in order, and both end done in the store.
func TestARetryThatCannotBeRecordedIsAttemptedAgainInProcess(t *testing.T) {
	for _, fails := range []int32{1, 1000} { // a passing refusal, and one that lasts
		fake := firstAttemptUnreachable()
		st := &retryRefused{Store: store.NewMemory(), fails: fails}
		h := newHarnessOn(t, st, quickRetries, fake)
		for _, text := range []string{"first", "second"} {
			if rec := h.postJSON("/message", demoToken, textRequest("demo", phoneContact, text)); rec.Code != http.StatusOK {
				t.Fatalf("%s: %d %s", text, rec.Code, rec.Body)
			}
		}
		// The write is tried again for up to ~3 s first.
		for deadline := time.Now().Add(15 * time.Second); len(fake.sentTexts(phoneContact)) < 2 || h.jobCount(store.Done) < 2; {
			if time.Now().After(deadline) {
				t.Fatalf("Retry refused %d times: the lane is stuck: sent %q", fails, fake.sentTexts(phoneContact))
			}
			time.Sleep(10 * time.Millisecond)
		}
		if got := fake.sentTexts(phoneContact); got[0] != "first" || got[1] != "second" {
			t.Fatalf("Retry refused %d times: sent %q, want first then second", fails, got)
		}
	}
}

// slowComplete delays every Complete (a busy disk).
type slowComplete struct {
	store.Store
	delay time.Duration
}

func (s *slowComplete) Complete(ctx context.Context, token, lastError string) error {
	time.Sleep(s.delay)
	return s.Store.Complete(ctx, token, lastError)
}

// When /message's wait runs out while the attempt's end is being recorded,
// the request still answers that end (sent, or the refusal): it is on its
// way, and a job completed without its status event while the request
// answered "pending" would leave BonyChat with no news of the message.
func TestAnEndBeingRecordedIsAnsweredByTheRequest(t *testing.T) {
	refusal := &providers.SendError{Kind: providers.Permanent, Reason: "not a valid phone number"}
	for _, tc := range []struct {
		name   string
		err    error
		status int
	}{{"sent", nil, http.StatusOK}, {"refused", refusal, http.StatusBadRequest}} {
		t.Run(tc.name, func(t *testing.T) {
			st := &slowComplete{Store: store.NewMemory(), delay: 300 * time.Millisecond}
			h := newHarnessOn(t, st, func(c *Config) { c.Outbound.Wait = 50 * time.Millisecond }, &fakeProvider{sendErr: tc.err})
			rec := h.postJSON("/message", demoToken, textRequest("demo", phoneContact, "hi"))
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
			if n := h.jobCount(store.Done); n != 1 {
				t.Fatalf("%d done jobs, want the message's", n)
			}
			time.Sleep(100 * time.Millisecond) // a status event would be stored by now
			events, err := h.st.Jobs(t.Context(), store.JobFilter{Queue: store.Platform})
			if err != nil || len(events) != 0 {
				t.Fatalf("status events %+v (%v) stored for an outcome the request answered", events, err)
			}
		})
	}
}

// A recording slower than claimedGrace: the request answers "pending"
// within its wait plus the grace, and the outcome reaches BonyChat as a
// status event, once.
func TestAVerySlowRecordingEndsAsAStatus(t *testing.T) {
	st := &slowComplete{Store: store.NewMemory(), delay: claimedGrace + 500*time.Millisecond}
	h := newHarnessOn(t, st, func(c *Config) { c.Outbound.Wait = 50 * time.Millisecond }, &fakeProvider{})
	start := time.Now()
	rec := h.postJSON("/message", demoToken, textRequest("demo", phoneContact, "hi"))
	mID := mIDOf(t, rec.Body.Bytes())
	if took := time.Since(start); took > 50*time.Millisecond+claimedGrace+400*time.Millisecond {
		t.Fatalf("answered after %v; want within the wait plus %v", took, claimedGrace)
	}
	waitFor(t, func() bool { return len(h.statusesFor(mID)) == 1 })
	if got := h.statusesFor(mID)[0]; got.Value != schema.StatusSent {
		t.Fatalf("status %+v, want sent", got)
	}
}

// slowCompleteThenRefused is slowComplete whose store also refuses the
// first `fails` platform Enqueue writes (the status event's).
type slowCompleteThenRefused struct {
	slowComplete
	fails   int32
	refused atomic.Int32
}

func (s *slowCompleteThenRefused) Enqueue(ctx context.Context, jobs []store.NewJob, keys []store.Key) ([]int64, error) {
	if len(jobs) > 0 && jobs[0].Queue == store.Platform && s.refused.Add(1) <= s.fails {
		return nil, errors.New("database is locked")
	}
	return s.slowComplete.Enqueue(ctx, jobs, keys)
}

// The status event of a message answered "pending" after a very slow
// recording is BonyChat's only news of it: a store that refuses it for a
// while gets it again until it takes it.
func TestAVerySlowRecordingsStatusIsStoredEvenIfRefusedAtFirst(t *testing.T) {
	st := &slowCompleteThenRefused{slowComplete: slowComplete{Store: store.NewMemory(), delay: claimedGrace + 300*time.Millisecond},
		fails: 3}
	h := buildHarness(t, st, func(c *Config) { c.Outbound.Wait = 50 * time.Millisecond }, &fakeProvider{})
	h.srv.pipe.recordAgainAfter = 10 * time.Millisecond
	stop, err := h.srv.StartWorkers()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	rec := h.postJSON("/message", demoToken, textRequest("demo", phoneContact, "hi"))
	mID := mIDOf(t, rec.Body.Bytes())
	waitFor(t, func() bool { return len(h.statusesFor(mID)) == 1 })
	if got := h.statusesFor(mID)[0]; got.Value != schema.StatusSent || st.refused.Load() <= st.fails {
		t.Fatalf("status %+v after %d refusals; want sent, stored after the %d refusals", got, st.refused.Load(), st.fails)
	}
}

// completeRefused fails the first `fails` Complete and CompleteWith writes.
type completeRefused struct {
	store.Store
	fails   int32
	refused atomic.Int32
}

func (s *completeRefused) Complete(ctx context.Context, token, lastError string) error {
	if s.refused.Add(1) <= s.fails {
		return errors.New("database is locked")
	}
	return s.Store.Complete(ctx, token, lastError)
}

func (s *completeRefused) CompleteWith(ctx context.Context, token, lastError string, follow []store.NewJob) error {
	if s.refused.Add(1) <= s.fails {
		return errors.New("database is locked")
	}
	return s.Store.CompleteWith(ctx, token, lastError, follow)
}

// An attempt whose end cannot be recorded for a while (longer than the
// few seconds the write is retried at once) is answered "pending", and its
// end is recorded in the background, with its status event, once the store
// takes it: the contact's later messages are not held behind it until a
// restart.
func TestAnEndThatCannotBeRecordedForAWhileIsRecordedLater(t *testing.T) {
	fake := &fakeProvider{}
	st := &completeRefused{Store: store.NewMemory(), fails: 12} // the request's 5 tries, the first background 5, 2 more
	h := buildHarness(t, st, func(c *Config) { c.Outbound.Wait = 100 * time.Millisecond }, fake)
	h.srv.pipe.recordAgainAfter = 10 * time.Millisecond
	stop, err := h.srv.StartWorkers()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	rec := h.postJSON("/message", demoToken, textRequest("demo", phoneContact, "first"))
	mID := mIDOf(t, rec.Body.Bytes())
	if rec.Code != http.StatusOK {
		t.Fatalf("first: %d %s", rec.Code, rec.Body)
	}
	if rec := h.postJSON("/message", demoToken, textRequest("demo", phoneContact, "second")); rec.Code != http.StatusOK {
		t.Fatalf("second: %d %s", rec.Code, rec.Body)
	}
	for deadline := time.Now().Add(15 * time.Second); h.jobCount(store.Done) < 2; {
		if time.Now().After(deadline) {
			t.Fatalf("not recorded: %d done, sent %q", h.jobCount(store.Done), fake.sentTexts(phoneContact))
		}
		time.Sleep(10 * time.Millisecond)
	}
	waitFor(t, func() bool { return len(h.statusesFor(mID)) == 1 })
	if got := h.statusesFor(mID)[0]; got.Value != schema.StatusSent {
		t.Fatalf("status %+v, want sent", got)
	}
	if got := fake.sentTexts(phoneContact); len(got) != 2 || got[0] != "first" || got[1] != "second" {
		t.Fatalf("sent %q, want first then second, once each", got)
	}
}

// Events BonyChat took whose completion is refused for a moment are
// recorded by trying the write again, not left leased to be posted a
// second time when the lease runs out.
func TestAPostWhoseCompletionIsRefusedForAMomentIsRecorded(t *testing.T) {
	st := &completeRefused{Store: store.NewMemory(), fails: 2}
	h := newHarnessOn(t, st, nil, &fakeProvider{})
	if err := h.srv.pipe.postStatus(t.Context(), "demo", phoneContact, "m-refused", schema.StatusSent, ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return h.jobCount(store.Done) == 1 })
	if n := len(h.statusesFor("m-refused")); n != 1 {
		t.Fatalf("%d posts of the status, want 1", n)
	}
}

// A platform lease outlasts the wait for the channel's rate limit (every
// lane of the channel ahead) plus the post with its quick retries, however
// low the limit: one that ran out while waiting would let another worker
// post the same events.
func TestAPlatformLeaseOutlastsTheRateLimitWait(t *testing.T) {
	for _, perSecond := range []float64{20, 1, 0.05, 1e-12} {
		h := newHarnessWith(t, func(c *Config) { c.Platform.RateLimit = perSecond }, &fakeProvider{})
		c := h.cfg.Platform
		wait := time.Duration(min(float64(platformLanes)/perSecond, c.MaxAge.Seconds()) * float64(time.Second))
		post := time.Duration(c.Retries+1) * (c.Timeout + 2*time.Second)
		if got := h.srv.pipe.platformLease(); got <= wait+post {
			t.Errorf("rate %v/s: lease %v, but the rate-limit wait alone can be %v and the post %v", perSecond, got, wait, post)
		}
	}
}

// statusUnreadable fails StatusOf while failing > 0 (a locked store).
type statusUnreadable struct {
	store.Store
	failing atomic.Int32
}

func (s *statusUnreadable) StatusOf(ctx context.Context, mID string) (store.Status, error) {
	if s.failing.Add(-1) >= 0 {
		return store.Status{}, errors.New("database is locked")
	}
	return s.Store.StatusOf(ctx, mID)
}

// A background send whose message a receipt already reported delivered
// posts no "sent" after it, even when the status cannot be read at first:
// the end waits until it can be, rather than guessing and moving the
// status backwards.
func TestABackgroundEndDoesNotGuessAnUnreadableStatus(t *testing.T) {
	st := &statusUnreadable{Store: store.NewMemory()}
	h := newHarnessOn(t, st, func(c *Config) {
		c.Outbound.Wait = 50 * time.Millisecond
		c.Outbound.RetryMin, c.Outbound.RetryMax = 400*time.Millisecond, 400*time.Millisecond
	}, firstAttemptUnreachable())
	h.srv.pipe.recordAgainAfter = 10 * time.Millisecond
	rec := h.postJSON("/message", demoToken, textRequest("demo", phoneContact, "hi"))
	mID := mIDOf(t, rec.Body.Bytes())
	if err := h.srv.pipe.postStatus(t.Context(), "demo", phoneContact, mID, schema.StatusDelivered, ""); err != nil {
		t.Fatal(err)
	}
	st.failing.Store(12) // more than one round of tries
	// Done: the message, and the post of its receipt.
	waitFor(t, func() bool { return h.jobCount(store.Done) == 2 })
	time.Sleep(100 * time.Millisecond)
	var got []string
	for _, s := range h.statusesFor(mID) {
		got = append(got, s.Value)
	}
	if len(got) != 1 || got[0] != schema.StatusDelivered {
		t.Fatalf("statuses posted %q, want only delivered", got)
	}
	if st.failing.Load() >= 0 {
		t.Fatalf("the status was read %d times fewer than the test needs", st.failing.Load()+1)
	}
}

// enqueueRefused fails the first `fails` Enqueue writes.
type enqueueRefused struct {
	store.Store
	fails   int32
	refused atomic.Int32
}

func (s *enqueueRefused) Enqueue(ctx context.Context, jobs []store.NewJob, keys []store.Key) ([]int64, error) {
	if s.refused.Add(1) <= s.fails {
		return nil, errors.New("database is locked")
	}
	return s.Store.Enqueue(ctx, jobs, keys)
}

// A receipt's event and the record of its status are one write: refused,
// the receipt stores neither and is refused (the provider retries it);
// the retry stores both, and BonyChat gets the event once; a third copy
// is a duplicate and posts nothing.
func TestAReceiptIsStoredWithItsStatusRecordOrNotAtAll(t *testing.T) {
	st := &enqueueRefused{Store: store.NewMemory(), fails: 1}
	h := newHarnessOn(t, st, nil, &fakeProvider{})
	p := h.srv.pipe
	if err := p.postStatus(t.Context(), "demo", phoneContact, "m-receipt", schema.StatusDelivered, ""); err == nil {
		t.Fatal("a receipt that was not stored was acknowledged")
	}
	if _, err := st.StatusOf(t.Context(), "m-receipt"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a status was recorded for a receipt not stored: %v", err)
	}
	for range 2 { // the provider's retry, then a duplicate
		if err := p.postStatus(t.Context(), "demo", phoneContact, "m-receipt", schema.StatusDelivered, ""); err != nil {
			t.Fatalf("the provider's retry: %v", err)
		}
	}
	if got, err := st.StatusOf(t.Context(), "m-receipt"); err != nil || got.Value != schema.StatusDelivered {
		t.Fatalf("recorded status %+v (%v), want delivered", got, err)
	}
	waitFor(t, func() bool { return len(h.statusesFor("m-receipt")) >= 1 })
	time.Sleep(100 * time.Millisecond)
	if n := len(h.statusesFor("m-receipt")); n != 1 {
		t.Fatalf("delivered posted %d times, want once", n)
	}
}

// A server whose Handler serves without StartWorkers (an embedder's) still
// dispatches a request's own send; if the store then never takes its end,
// Close ends the tries rather than leave a goroutine retrying for good.
func TestCloseEndsTheTriesOfASendDispatchedWithoutWorkers(t *testing.T) {
	st := &completeRefused{Store: store.NewMemory(), fails: 1 << 30}
	h := buildHarness(t, st, func(c *Config) { c.Outbound.Wait = 100 * time.Millisecond }, &fakeProvider{})
	h.srv.pipe.recordAgainAfter = 10 * time.Millisecond
	if rec := h.postJSON("/message", demoToken, textRequest("demo", phoneContact, "hi")); rec.Code != http.StatusOK {
		t.Fatalf("/message: %d %s", rec.Code, rec.Body)
	}
	waitFor(t, func() bool { return st.refused.Load() > 8 }) // the background tries have begun
	h.srv.Close()
	ended := make(chan struct{})
	go func() { h.srv.pipe.wg.Wait(); close(ended) }()
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatalf("the send's goroutine still retries %d writes after Close", st.refused.Load())
	}
}
