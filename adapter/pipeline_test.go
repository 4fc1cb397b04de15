package adapter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bonychat/bonychat-adapter/internal/faketwilio"
	"github.com/bonychat/bonychat-adapter/providers"
	"github.com/bonychat/bonychat-adapter/schema"
	"github.com/bonychat/bonychat-adapter/store"
)

func mIDOf(t *testing.T, body []byte) string {
	t.Helper()
	var got struct{ MID string }
	if err := json.Unmarshal(body, &got); err != nil || got.MID == "" {
		t.Fatalf("want {\"mId\"}, got %s", body)
	}
	return got.MID
}

// statusesFor collects the message_status events BonyChat received for mID.
func (h *harness) statusesFor(mID string) []schema.Status {
	var out []schema.Status
	for _, p := range h.platform.posts() {
		for _, e := range p.Payload.Events {
			if e.Type == schema.EventMessageStatus && e.MID == mID {
				out = append(out, *e.Status)
			}
		}
	}
	return out
}

func TestMessageIsStoredBeforeItIsAnswered(t *testing.T) {
	h := newHarnessWith(t, nil, &fakeProvider{})
	rec := h.postJSON("/message", demoToken, textRequest("demo", phoneContact, "hi"))
	mID := mIDOf(t, rec.Body.Bytes())
	job, err := h.st.JobByMID(t.Context(), store.Outbound, mID)
	if err != nil || job.State != store.Done || job.ContactID != phoneContact {
		t.Fatalf("the answered message must be a stored, finished job: %+v %v", job, err)
	}
}

func TestMessageThrottledAnswers200ThenSendsAndReportsSent(t *testing.T) {
	fake := &fakeProvider{script: func(n int, _ providers.Recipient, _ schema.Message) error {
		if n == 0 {
			return &providers.SendError{Kind: providers.Throttled, Reason: "429", RetryAfter: 10 * time.Millisecond}
		}
		return nil
	}}
	h := newHarnessWith(t, nil, fake)
	start := time.Now()
	rec := h.postJSON("/message", demoToken, textRequest("demo", phoneContact, "hi"))
	if rec.Code != http.StatusOK {
		t.Fatalf("a pending message answers 200, got %d", rec.Code)
	}
	if time.Since(start) > h.cfg.Outbound.Wait {
		t.Errorf("a retryable first attempt should be answered at once, not after the full wait")
	}
	mID := mIDOf(t, rec.Body.Bytes())
	waitFor(t, func() bool { return len(h.statusesFor(mID)) == 1 })
	if st := h.statusesFor(mID)[0]; st.Value != schema.StatusSent {
		t.Fatalf("want a sent status, got %+v", st)
	}
	if len(fake.sentTexts(phoneContact)) != 1 {
		t.Fatal("want exactly one successful send")
	}
}

func TestMessageFailingInTheBackgroundReportsFailedWithReason(t *testing.T) {
	fake := &fakeProvider{script: func(n int, _ providers.Recipient, _ schema.Message) error {
		if n == 0 {
			return &providers.SendError{Kind: providers.Unreachable, Reason: "connection refused"}
		}
		return &providers.SendError{Kind: providers.Permanent, Reason: "+60177872890 has opted out (replied STOP)"}
	}}
	h := newHarnessWith(t, nil, fake)
	mID := mIDOf(t, h.postJSON("/message", demoToken, textRequest("demo", phoneContact, "hi")).Body.Bytes())
	waitFor(t, func() bool { return len(h.statusesFor(mID)) == 1 })
	st := h.statusesFor(mID)[0]
	if st.Value != schema.StatusFailed || !strings.Contains(st.Message, "opted out") {
		t.Fatalf("want failed with the reason, got %+v", st)
	}
}

func TestMessageAmbiguousIsNeverResent(t *testing.T) {
	fake := &fakeProvider{sendErr: &providers.SendError{Kind: providers.Ambiguous, Reason: "timeout after the request was written"}}
	h := newHarnessWith(t, nil, fake)
	rec := h.postJSON("/message", demoToken, textRequest("demo", phoneContact, "hi"))
	if rec.Code != http.StatusBadGateway || !strings.Contains(rec.Body.String(), "may have been sent") {
		t.Fatalf("want 502 saying the message may have been sent, got %d %s", rec.Code, rec.Body)
	}
	time.Sleep(100 * time.Millisecond)
	fake.mu.Lock()
	defer fake.mu.Unlock()
	if fake.attempts != 1 {
		t.Fatalf("an ambiguous send must not be retried: %d attempts", fake.attempts)
	}
}

func TestMessagePastMaxAgeIsReportedFailed(t *testing.T) {
	fake := &fakeProvider{sendErr: &providers.SendError{Kind: providers.Unreachable, Reason: "provider down"}}
	h := newHarnessWith(t, func(c *Config) { c.Outbound.MaxAge = 150 * time.Millisecond }, fake)
	mID := mIDOf(t, h.postJSON("/message", demoToken, textRequest("demo", phoneContact, "hi")).Body.Bytes())
	waitFor(t, func() bool { return len(h.statusesFor(mID)) == 1 })
	st := h.statusesFor(mID)[0]
	if st.Value != schema.StatusFailed || st.Message != "gave up after 150ms: provider down" {
		t.Fatalf("want failed naming the age and the last error, got %+v", st)
	}
}

func TestMessageQueuedBehindAnEarlierOneIsAnsweredAndSentInOrder(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	fake := &fakeProvider{script: func(n int, _ providers.Recipient, _ schema.Message) error {
		if n == 0 { // the first message hangs at the provider
			close(started)
			<-release
		}
		return nil
	}}
	h := newHarnessWith(t, func(c *Config) { c.Outbound.Wait = 200 * time.Millisecond }, fake)
	first := make(chan int, 1)
	go func() { first <- h.postJSON("/message", demoToken, textRequest("demo", phoneContact, "first")).Code }()
	<-started
	rec := h.postJSON("/message", demoToken, textRequest("demo", phoneContact, "second"))
	if rec.Code != http.StatusOK {
		t.Fatalf("a message queued behind another answers 200 after the wait, got %d", rec.Code)
	}
	close(release)
	if code := <-first; code != http.StatusOK {
		t.Fatalf("first: %d", code)
	}
	waitFor(t, func() bool { return len(fake.sentTexts(phoneContact)) == 2 })
	if got := fake.sentTexts(phoneContact); !slices.Equal(got, []string{"first", "second"}) {
		t.Fatalf("order per contact lost: %v", got)
	}
}

// TestProviderOutage: the provider answers 429, then fails before the
// request is sent (503-before-send: unreachable), for a while. Every
// /message is answered within outbound.wait + 1s, and once the provider
// recovers every message is sent exactly once, in order per contact.
func TestProviderOutage(t *testing.T) {
	var mu sync.Mutex
	down := true
	fake := &fakeProvider{}
	fake.script = func(n int, _ providers.Recipient, _ schema.Message) error {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case !down:
			return nil
		case n%2 == 0:
			return &providers.SendError{Kind: providers.Throttled, Reason: "429 Too Many Requests", RetryAfter: 20 * time.Millisecond}
		default:
			return &providers.SendError{Kind: providers.Unreachable, Reason: "503 before send: connection refused"}
		}
	}
	h := newHarnessWith(t, func(c *Config) { c.Outbound.Wait = 500 * time.Millisecond }, fake)
	contacts := []string{"+60100000001", "+60100000002", "+60100000003", "+60100000004"}
	const perContact = 8
	var wg sync.WaitGroup
	var slow []string
	var slowMu sync.Mutex
	for _, c := range contacts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perContact {
				start := time.Now()
				rec := h.postJSON("/message", demoToken, textRequest("demo", c, fmt.Sprintf("%s #%d", c, i)))
				if rec.Code != http.StatusOK || time.Since(start) > h.cfg.Outbound.Wait+time.Second {
					slowMu.Lock()
					slow = append(slow, fmt.Sprintf("%s #%d: %d after %s", c, i, rec.Code, time.Since(start)))
					slowMu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if len(slow) > 0 {
		t.Fatalf("answers must come within outbound.wait+1s with 200: %v", slow)
	}
	mu.Lock()
	down = false
	mu.Unlock()
	for _, c := range contacts {
		waitFor(t, func() bool { return len(fake.sentTexts(c)) == perContact })
	}
	time.Sleep(100 * time.Millisecond) // nothing more may arrive
	for _, c := range contacts {
		got := fake.sentTexts(c)
		want := make([]string, perContact)
		for i := range want {
			want[i] = fmt.Sprintf("%s #%d", c, i)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: want each message exactly once in order, got %v", c, got)
		}
	}
}

// postKeyed posts a text /message to the demo channel with an
// Idempotency-Key.
func (h *harness) postKeyed(key, text string) *httptest.ResponseRecorder {
	raw, _ := json.Marshal(textRequest("demo", phoneContact, text))
	req := newJSONRequest("/message", raw)
	req.Header.Set("Authorization", "Bearer "+demoToken)
	req.Header.Set("Idempotency-Key", key)
	return h.doRequest(req, raw)
}

func TestIdempotencyKeyReturnsTheFirstAnswer(t *testing.T) {
	fake := &fakeProvider{}
	h := newHarnessWith(t, nil, fake)
	send := func(key string, text string) (int, string) {
		rec := h.postKeyed(key, text)
		return rec.Code, rec.Body.String()
	}
	code1, body1 := send("key-1", "hello")
	code2, body2 := send("key-1", "hello")
	if code1 != 200 || code2 != 200 || mIDOf(t, []byte(body1)) != mIDOf(t, []byte(body2)) {
		t.Fatalf("a repeat must get the first answer: %d %s / %d %s", code1, body1, code2, body2)
	}
	if n := len(fake.sentTexts(phoneContact)); n != 1 {
		t.Fatalf("a repeat must send nothing: %d sends", n)
	}
	if code, _ := send("key-1", "a different body"); code != http.StatusUnprocessableEntity {
		t.Fatalf("a reused key with another body: want 422, got %d", code)
	}
	if code, _ := send("key-2", "hello"); code != 200 || len(fake.sentTexts(phoneContact)) != 2 {
		t.Fatal("another key is another message")
	}
	// The remembered answer goes with its key: swept once the key expired.
	mID := mIDOf(t, []byte(body1))
	if _, err := h.st.Get(t.Context(), nsIdempotencyAnswer, mID); err != nil {
		t.Fatalf("the first answer is not remembered: %v", err)
	}
	sweep := store.SweepRequest{Now: time.Now().Add(idempotencyWindow + time.Minute)}
	if err := h.st.Sweep(t.Context(), sweep); err != nil {
		t.Fatal(err)
	}
	if _, err := h.st.Get(t.Context(), nsIdempotencyAnswer, mID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the answer outlived its Idempotency-Key: %v", err)
	}
}

func TestIdempotencyKeyRepeatsARefusal(t *testing.T) {
	fake := &fakeProvider{sendErr: &providers.SendError{Kind: providers.Permanent, Reason: "not a mobile number"}}
	h := newHarnessWith(t, nil, fake)
	var bodies []string
	for range 2 {
		rec := h.postKeyed("k", "hi")
		if rec.Code != http.StatusBadRequest {
			t.Fatalf("want the first answer (400) again, got %d", rec.Code)
		}
		bodies = append(bodies, strings.TrimSpace(rec.Body.String()))
	}
	if bodies[0] != bodies[1] {
		t.Errorf("the repeat must be the same answer: %q vs %q", bodies[0], bodies[1])
	}
	fake.mu.Lock()
	defer fake.mu.Unlock()
	if fake.attempts != 1 {
		t.Fatalf("one attempt only, got %d", fake.attempts)
	}
}

// answerNotRemembered refuses to store a keyed request's answer: the
// process stopped (or the store refused the write) after the job's end was
// recorded and before its answer was.
type answerNotRemembered struct{ store.Store }

func (s answerNotRemembered) PutUntil(ctx context.Context, ns, key string, value []byte, expires time.Time) error {
	if ns == nsIdempotencyAnswer {
		return errors.New("stopped before the answer was stored")
	}
	return s.Store.PutUntil(ctx, ns, key, value, expires)
}

// A repeat whose first answer was never stored is answered from the job: a
// refusal stays a refusal (the request answered it, so no failed status
// follows, and a 200 would leave the message looking sent for good), and a
// sent message gets its mId.
func TestIdempotencyKeyRepeatWithoutAStoredAnswerIsAnsweredFromTheJob(t *testing.T) {
	refused := &providers.SendError{Kind: providers.Permanent, Reason: "not a mobile number"}
	for _, tc := range []struct {
		name    string
		sendErr error
		status  int
	}{{"refused", refused, http.StatusBadRequest}, {"sent", nil, http.StatusOK}} {
		t.Run(tc.name, func(t *testing.T) {
			fake := &fakeProvider{sendErr: tc.sendErr}
			h := newHarnessOn(t, answerNotRemembered{store.NewMemory()}, func(c *Config) { c.Outbound.Wait = 200 * time.Millisecond }, fake)
			var bodies []string
			for range 2 {
				rec := h.postKeyed("k", "hi")
				if rec.Code != tc.status {
					t.Fatalf("want %d both times, got %d: %s", tc.status, rec.Code, rec.Body)
				}
				bodies = append(bodies, strings.TrimSpace(rec.Body.String()))
			}
			if bodies[0] != bodies[1] {
				t.Errorf("the repeat must be the same answer: %q vs %q", bodies[0], bodies[1])
			}
			if n := fake.attemptCount(); n != 1 {
				t.Fatalf("%d attempts, want one", n)
			}
		})
	}
}

func TestStatusesOnlyMoveForward(t *testing.T) {
	h := newHarness(t, nil)
	p := h.srv.pipe
	ctx := t.Context()
	for _, v := range []string{schema.StatusDelivered, schema.StatusSent, schema.StatusDelivered, schema.StatusRead, schema.StatusDelivered} {
		if err := p.postStatus(ctx, "demo", phoneContact, "m-forward", v, ""); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool { return len(h.statusesFor("m-forward")) == 2 })
	time.Sleep(50 * time.Millisecond)
	var got []string
	for _, s := range h.statusesFor("m-forward") {
		got = append(got, s.Value)
	}
	if !slices.Equal(got, []string{"delivered", "read"}) {
		t.Fatalf("late and duplicate receipts must be dropped: %v", got)
	}
	_ = p.postStatus(ctx, "demo", phoneContact, "m-failed", schema.StatusFailed, "bounced")
	_ = p.postStatus(ctx, "demo", phoneContact, "m-failed", schema.StatusRead, "")
	waitFor(t, func() bool { return len(h.statusesFor("m-failed")) == 1 })
	time.Sleep(50 * time.Millisecond)
	if n := len(h.statusesFor("m-failed")); n != 1 {
		t.Fatalf("failed is final: %d statuses", n)
	}
}

func TestPlatformEventsOfOneContactAreBatchedInOrder(t *testing.T) {
	h := newHarness(t, nil)
	h.platform.script(503) // hold the first post so the rest pile up
	for i := range 25 {
		body := map[string]any{"from": phoneContact, "id": fmt.Sprintf("SM%03d", i), "text": fmt.Sprint("message ", i)}
		if rec := h.postJSON("/console/demo/inbound", demoToken, body); rec.Code != 200 {
			t.Fatalf("inbound %d: %d", i, rec.Code)
		}
	}
	waitFor(t, func() bool { return h.jobCount(store.Done) == 25 })
	var order []string
	maxBatch := 0
	for _, p := range h.platform.posts() {
		if p.Status != http.StatusOK {
			continue // refused, and re-sent later
		}
		maxBatch = max(maxBatch, len(p.Payload.Events))
		for _, e := range p.Payload.Events {
			order = append(order, e.MID)
		}
	}
	want := make([]string, 25)
	for i := range want {
		want[i] = fmt.Sprintf("SM%03d", i)
	}
	if !slices.Equal(order, want) {
		t.Fatalf("events must reach BonyChat in order: %v", order)
	}
	if maxBatch < 2 || maxBatch > 20 {
		t.Fatalf("waiting events of one contact go in batches of at most 20: largest %d", maxBatch)
	}
}

func TestPlatformPastMaxAgeIsDead(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Platform.MaxAge = 100 * time.Millisecond })
	h.platform.script(slices.Repeat([]int{503}, 1000)...)
	h.postJSON("/console/demo/inbound", demoToken, map[string]any{"from": phoneContact, "text": "hi"})
	waitFor(t, func() bool { return h.jobCount(store.Dead) == 1 })
	jobs, _ := h.st.Jobs(t.Context(), store.JobFilter{State: store.Dead})
	if len(jobs) != 1 || !strings.Contains(jobs[0].LastError, "not accepted by BonyChat within") {
		t.Fatalf("the dead job must say why: %+v", jobs)
	}
}

func TestPlatformRateLimitPerChannel(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Platform.RateLimit = 20 })
	start := time.Now()
	for i := range 30 { // 30 contacts: 30 lanes, each one request
		body := map[string]any{"from": fmt.Sprintf("+6010000%04d", i), "text": "hi"}
		h.postJSON("/console/demo/inbound", demoToken, body)
	}
	h.waitPosts(30)
	elapsed := time.Since(start)
	// 20 per second with no burst: 30 posts need at least ~1.45 s. Only a
	// lower bound is asserted, which a slow machine cannot break.
	if elapsed < 1400*time.Millisecond {
		t.Fatalf("30 posts at 20/s took only %s", elapsed)
	}
}

func TestProviderDepsStatusesAndRecords(t *testing.T) {
	h := newHarness(t, nil)
	deps := h.srv.providerDeps(h.srv.channels["demo"])
	ctx := t.Context()
	if err := deps.Statuses.PostStatus(ctx, phoneContact, "m-deps", "bogus", ""); err == nil {
		t.Error("an unknown status value must be refused")
	}
	if err := deps.Statuses.PostStatus(ctx, phoneContact, "m-deps", schema.StatusDelivered, ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return len(h.statusesFor("m-deps")) == 1 })
	if _, found, err := deps.Records.Get(ctx, "optout", "x"); found || err != nil {
		t.Fatalf("a missing record is not found, without error: %v %v", found, err)
	}
	if err := deps.Records.Put(ctx, "optout", "x", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if v, found, err := deps.Records.Get(ctx, "optout", "x"); !found || err != nil || string(v) != "1" {
		t.Fatalf("a stored record reads back: %q %v %v", v, found, err)
	}
	if deps.PublicURL != strings.TrimSuffix(h.cfg.PublicURL, "/") || deps.Fetcher == nil || deps.Media == nil {
		t.Error("deps must carry the public URL, the fetcher and the media sink")
	}
}

func TestIdempotencyKeyConcurrentRepeatGetsTheFirstRefusal(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	fake := &fakeProvider{script: func(n int, _ providers.Recipient, _ schema.Message) error {
		if n == 0 {
			close(started)
			<-release
		}
		return &providers.SendError{Kind: providers.Permanent, Reason: "not a mobile number"}
	}}
	h := newHarnessWith(t, nil, fake)
	send := func() int { return h.postKeyed("same", "hi").Code }
	first := make(chan int, 1)
	go func() { first <- send() }()
	<-started
	second := make(chan int, 1)
	go func() { second <- send() }()
	time.Sleep(100 * time.Millisecond) // the repeat is now waiting for the first answer
	close(release)
	if a, b := <-first, <-second; a != http.StatusBadRequest || b != http.StatusBadRequest {
		t.Fatalf("a repeat during the first attempt must get the first answer: %d then %d", a, b)
	}
}

func TestIdempotencyKeyTooLongIs400(t *testing.T) {
	h := newHarnessWith(t, nil, &fakeProvider{})
	if rec := h.postKeyed(strings.Repeat("k", 256), "hi"); rec.Code != http.StatusBadRequest {
		t.Fatalf("want 400, got %d", rec.Code)
	}
}

func TestInterruptedSendWithAReceiptIsNotReportedFailed(t *testing.T) {
	st := store.NewMemory()
	ctx := t.Context()
	job := store.NewJob{Queue: store.Outbound, ChannelID: "demo", ContactID: phoneContact, MID: "m-receipt",
		Payload: mustJSON(outboundJob{Message: *schema.TextMessage("hi")})}
	if _, l, err := st.EnqueueLeased(ctx, job, nil, time.Now(), time.Hour); err != nil || l == nil {
		t.Fatal(err)
	}
	// the previous process died after the provider took it and its receipt arrived
	if _, err := st.AdvanceStatus(ctx, store.Status{MID: "m-receipt", Value: schema.StatusDelivered, Rank: 2}); err != nil {
		t.Fatal(err)
	}
	fake := &fakeProvider{}
	h := newHarnessOn(t, st, nil, fake) // start-up recovers the job as interrupted
	waitFor(t, func() bool { return h.jobCount(store.Done) == 1 })
	time.Sleep(50 * time.Millisecond)
	if len(h.statusesFor("m-receipt")) != 0 || fake.sentCount() != 0 {
		t.Fatalf("a delivered message is neither re-sent nor reported failed: %v, %d sends", h.statusesFor("m-receipt"), fake.sentCount())
	}
}

func TestInterruptedSendWithoutReceiptIsOutcomeUnknown(t *testing.T) {
	st := store.NewMemory()
	job := store.NewJob{Queue: store.Outbound, ChannelID: "demo", ContactID: phoneContact, MID: "m-cut",
		Payload: mustJSON(outboundJob{Message: *schema.TextMessage("hi")})}
	if _, l, err := st.EnqueueLeased(t.Context(), job, nil, time.Now(), time.Hour); err != nil || l == nil {
		t.Fatal(err)
	}
	fake := &fakeProvider{}
	h := newHarnessOn(t, st, nil, fake)
	waitFor(t, func() bool { return len(h.statusesFor("m-cut")) == 1 })
	if s := h.statusesFor("m-cut")[0]; s.Value != schema.StatusFailed || !strings.Contains(s.Message, "may have been sent") || fake.sentCount() != 0 {
		t.Fatalf("want failed/may have been sent and no re-send, got %+v, %d sends", s, fake.sentCount())
	}
}

// resumingProvider is a provider that can look up a send a crash cut off
// (providers.Resumer): Resume answers resumeErr, or sent.
type resumingProvider struct {
	fakeProvider
	resumeErr error
	mu        sync.Mutex
	resumed   []time.Time // the since of each Resume
}

func (p *resumingProvider) Resume(_ context.Context, _ providers.Recipient, _ schema.Message, mID string, since time.Time) (providers.Sent, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.resumed = append(p.resumed, since)
	if p.resumeErr != nil {
		return providers.Sent{}, p.resumeErr
	}
	return providers.Sent{ProviderIDs: []string{"found-" + mID}}, nil
}

func (p *resumingProvider) resumes() []time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.resumed)
}

// startHarnessFor builds the server with prov and starts its workers; now,
// if given, is the pipeline's clock.
func startHarnessFor(t *testing.T, st store.Store, mutate func(*Config), prov providers.Provider, now func() time.Time) *harness {
	t.Helper()
	h := buildHarnessFor(t, st, mutate, prov)
	if now != nil {
		h.srv.pipe.now = now
	}
	stop, err := h.srv.StartWorkers()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return h
}

// interruptedJob stores an outbound job as a crash leaves it: leased, its
// attempt cut off (start-up recovers it as interrupted). It returns when
// the job was created.
func interruptedJob(t *testing.T, st store.Store, mID string) time.Time {
	t.Helper()
	job := store.NewJob{Queue: store.Outbound, ChannelID: "demo", ContactID: phoneContact, MID: mID,
		Payload: mustJSON(outboundJob{Message: *schema.TextMessage("hi")})}
	_, l, err := st.EnqueueLeased(t.Context(), job, nil, time.Now(), time.Hour)
	if err != nil || l == nil {
		t.Fatal(err)
	}
	return l.Jobs[0].CreatedAt
}

func TestInterruptedSendIsResumedByAProviderThatCanLookItUp(t *testing.T) {
	st := store.NewMemory()
	created := interruptedJob(t, st, "m-resume")
	prov := &resumingProvider{}
	h := startHarnessFor(t, st, nil, prov, nil)
	waitFor(t, func() bool { return len(h.statusesFor("m-resume")) == 1 })
	if s := h.statusesFor("m-resume")[0]; s.Value != schema.StatusSent {
		t.Fatalf("a message the provider has is reported %+v, want sent", s)
	}
	r := prov.resumes()
	if len(r) != 1 || prov.sentCount() != 0 {
		t.Fatalf("%d resumes, %d plain sends; want one resume and no blind send", len(r), prov.sentCount())
	}
	if d := r[0].Sub(created); d < -time.Millisecond || d > time.Millisecond {
		t.Fatalf("Resume looked from %v, want the job's creation %v", r[0], created)
	}
}

func TestInterruptedSendThatCannotBeToldIsOutcomeUnknown(t *testing.T) {
	st := store.NewMemory()
	interruptedJob(t, st, "m-unknown")
	prov := &resumingProvider{resumeErr: &providers.SendError{Kind: providers.Ambiguous,
		Reason: "the server stopped while sending; the provider cannot tell, so it is not sent again"}}
	h := startHarnessFor(t, st, nil, prov, nil)
	waitFor(t, func() bool { return len(h.statusesFor("m-unknown")) == 1 })
	if s := h.statusesFor("m-unknown")[0]; s.Value != schema.StatusFailed || !strings.Contains(s.Message, "cannot tell") {
		t.Fatalf("got %+v, want failed with the provider's reason", s)
	}
	if len(prov.resumes()) != 1 || prov.sentCount() != 0 {
		t.Fatalf("%d resumes, %d sends", len(prov.resumes()), prov.sentCount())
	}
}

// Resuming may send: a job past outbound.max_age is not resumed.
func TestInterruptedSendPastMaxAgeIsNotResumed(t *testing.T) {
	st := store.NewMemory()
	interruptedJob(t, st, "m-old")
	prov := &resumingProvider{}
	h := startHarnessFor(t, st, func(c *Config) { c.Outbound.MaxAge = time.Hour }, prov,
		func() time.Time { return time.Now().Add(2 * time.Hour) }) // the server was down that long
	waitFor(t, func() bool { return len(h.statusesFor("m-old")) == 1 })
	if s := h.statusesFor("m-old")[0]; s.Value != schema.StatusFailed || !strings.Contains(s.Message, "may have been sent") {
		t.Fatalf("got %+v, want failed, may have been sent", s)
	}
	if len(prov.resumes()) != 0 || prov.sentCount() != 0 {
		t.Fatalf("%d resumes, %d sends; want none", len(prov.resumes()), prov.sentCount())
	}
}

// carriesText refuses a post whose events include a text message text.
func carriesText(text string) func(schema.WebhookPayload) bool {
	return func(p schema.WebhookPayload) bool {
		for _, e := range p.Events {
			if e.Message != nil && e.Message.Text != nil && *e.Message.Text == text {
				return true
			}
		}
		return false
	}
}

func TestFailedAfterDeliveredIsIgnored(t *testing.T) {
	h := newHarness(t, nil)
	p := h.srv.pipe
	_ = p.postStatus(t.Context(), "demo", phoneContact, "m-dl", schema.StatusDelivered, "")
	_ = p.postStatus(t.Context(), "demo", phoneContact, "m-dl", schema.StatusFailed, "late bounce")
	waitFor(t, func() bool { return len(h.statusesFor("m-dl")) == 1 })
	time.Sleep(50 * time.Millisecond)
	if n := len(h.statusesFor("m-dl")); n != 1 {
		t.Fatalf("a delivered message cannot fail afterwards: %d statuses", n)
	}
}

// Events that died of old age (BonyChat down past platform.max_age) and are
// replayed with `jobs retry` start over: a passing failure of the replay is
// retried, not the end of them at once.
func TestARevivedEventIsRetriedLikeANewOne(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Platform.MaxAge = 300 * time.Millisecond
		c.Platform.Retries = 0
		c.Platform.RetryMin, c.Platform.RetryMax = 10*time.Millisecond, 50*time.Millisecond
	})
	h.platform.script(slices.Repeat([]int{503}, 1000)...)
	h.postJSON("/console/demo/inbound", demoToken, map[string]any{"from": phoneContact, "text": "hi"})
	waitFor(t, func() bool { return h.jobCount(store.Dead) == 1 })
	// BonyChat is back but still flaky: one 503, then it accepts everything.
	h.platform.script(503)
	before := len(h.platform.posts())
	if n, err := h.st.Revive(context.Background(), nil, time.Now()); err != nil || n != 1 {
		t.Fatalf("revive: %d %v", n, err)
	}
	wake(h.srv.pipe.platWake)
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if h.jobCount(store.Done) == 1 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	posts := h.platform.posts()[before:]
	codes := []int{}
	for _, p := range posts {
		codes = append(codes, p.Status)
	}
	t.Fatalf("revived job not delivered: dead=%d done=%d; posts after revive: %v (want a retry after the 503, got %d)",
		h.jobCount(store.Dead), h.jobCount(store.Done), codes, len(posts))
}

// BonyChat refuses a whole batch for one event it cannot take: that event
// alone ends dead, and the others of the batch are delivered, once each,
// in order (the batch is posted in halves until the refused one is alone).
func TestOneRefusedEventDoesNotTakeItsBatchWithIt(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Platform.Retries = 0
		c.Platform.RetryMin, c.Platform.RetryMax = 300*time.Millisecond, 300*time.Millisecond
	})
	h.platform.mu.Lock()
	h.platform.answers = []int{503} // the first post fails: the rest gather into one batch
	h.platform.refuse = carriesText("bad")
	h.platform.mu.Unlock()
	texts := []string{"a", "b", "bad", "c", "d", "e"}
	for _, text := range texts {
		if rec := h.postJSON("/console/demo/inbound", demoToken, map[string]any{"from": phoneContact, "text": text}); rec.Code != http.StatusOK {
			t.Fatalf("inbound %q: %d %s", text, rec.Code, rec.Body)
		}
	}
	waitFor(t, func() bool { return h.jobCount(store.Dead) == 1 && h.jobCount(store.Done) == 5 })
	var delivered []string
	batched := false
	for _, p := range h.platform.posts() {
		batched = batched || len(p.Payload.Events) > 2
		if p.Status != http.StatusOK {
			continue
		}
		for _, e := range p.Payload.Events {
			delivered = append(delivered, *e.Message.Text)
		}
	}
	if !batched {
		t.Fatal("the events were never posted as one batch: the test proves nothing")
	}
	if want := []string{"a", "b", "c", "d", "e"}; !slices.Equal(delivered, want) {
		t.Fatalf("delivered %q, want %q once each, in order", delivered, want)
	}
	dead, err := h.st.Jobs(t.Context(), store.JobFilter{State: store.Dead})
	if err != nil || len(dead) != 1 || !strings.Contains(string(dead[0].Payload), `"bad"`) {
		t.Fatalf("dead jobs %+v (%v): want the refused event only", dead, err)
	}
}

// agedLeaseStore hands out platform leases as if the first post of each had
// already taken `aged` (a slow refusal, or a rate-limit wait plus quick
// retries): only LeaseUntil, as the worker sees it, is moved.
type agedLeaseStore struct {
	store.Store
	aged time.Duration
}

func (s *agedLeaseStore) Lease(ctx context.Context, req store.LeaseRequest) ([]store.Lease, error) {
	ls, err := s.Store.Lease(ctx, req)
	if req.Queue == store.Platform {
		for i := range ls {
			for j := range ls[i].Jobs {
				ls[i].Jobs[j].LeaseUntil = ls[i].Jobs[j].LeaseUntil.Add(-s.aged)
			}
		}
	}
	return ls, err
}

// A refusal that leaves too little of the lease for another post (a slow
// answer) still splits: the lane's next leases carry the halves, so the
// refused event ends dead alone instead of the whole batch being posted
// again and again.
func TestASlowRefusalStillSplitsOverLaterLeases(t *testing.T) {
	st := &agedLeaseStore{Store: store.NewMemory(), aged: 61 * time.Second}
	h := newHarnessOn(t, st, func(c *Config) {
		c.Platform.Retries = 0
		c.Platform.RetryMin, c.Platform.RetryMax = 100*time.Millisecond, 100*time.Millisecond
		c.Platform.MaxAge = 2 * time.Second
	}, nil)
	h.platform.mu.Lock()
	h.platform.answers = []int{503}
	h.platform.refuse = carriesText("bad")
	h.platform.mu.Unlock()
	for _, text := range []string{"a", "b", "bad", "c"} {
		if rec := h.postJSON("/console/demo/inbound", demoToken, map[string]any{"from": phoneContact, "text": text}); rec.Code != http.StatusOK {
			t.Fatalf("inbound %q: %d %s", text, rec.Code, rec.Body)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if h.jobCount(store.Dead) >= 1 && h.jobCount(store.Pending)+h.jobCount(store.Leased) == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	sizes := []int{}
	for _, p := range h.platform.posts() {
		sizes = append(sizes, len(p.Payload.Events))
	}
	t.Fatalf("after 5 s (max_age 2 s): dead=%d done=%d pending=%d; %d posts, sizes %v: the refused batch is re-posted whole for ever",
		h.jobCount(store.Dead), h.jobCount(store.Done), h.jobCount(store.Pending), len(sizes), sizes)
}

// A refusal that is about the channel, not an event (401: the token), is
// not split: the batch dies at once, with one post, not one per event.
func TestARefusalOfTheChannelIsNotSplit(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Platform.Retries = 0
		c.Platform.RetryMin, c.Platform.RetryMax = 300*time.Millisecond, 300*time.Millisecond
	})
	h.platform.script(503, 401)
	for _, text := range []string{"a", "b", "c", "d"} {
		if rec := h.postJSON("/console/demo/inbound", demoToken, map[string]any{"from": phoneContact, "text": text}); rec.Code != http.StatusOK {
			t.Fatalf("inbound %q: %d %s", text, rec.Code, rec.Body)
		}
	}
	waitFor(t, func() bool { return h.jobCount(store.Dead) == 4 })
	if posts := h.platform.posts(); len(posts) != 2 || len(posts[1].Payload.Events) != 4 {
		t.Fatalf("%d posts: want the 503, then one refused batch of all four", len(posts))
	}
}

// splitHintCount is how many lanes have a split hint.
func splitHintCount(p *pipeline) int {
	n := 0
	p.splitHints.Range(func(any, any) bool { n++; return true })
	return n
}

// A lane whose batch BonyChat refused (400) is being split when its events
// die of platform.max_age (BonyChat down after the split): the lane's split
// hint goes with them, not kept in memory for the life of the process.
func TestSplitHintIsDroppedWhenTheLaneDiesOfAge(t *testing.T) {
	h := buildHarness(t, store.NewMemory(), func(c *Config) {
		c.Platform.MaxAge = time.Millisecond
		c.Platform.Retries = 0
	}, nil)
	p := h.srv.pipe
	ctx := context.Background()
	const lanes = 50
	for i := range lanes {
		contact := fmt.Sprintf("+6017%08d", i)
		var jobs []store.NewJob
		for k := range 2 {
			ev := schema.Event{Type: schema.EventMessage, MID: providers.NewMID(), Timestamp: providers.NowMillis(),
				Message: schema.TextMessage(fmt.Sprintf("m%d", k))}
			jobs = append(jobs, store.NewJob{Queue: store.Platform, ChannelID: "demo", ContactID: contact, MID: ev.MID,
				Payload: mustJSON(platformJob{Event: ev})})
		}
		if _, err := h.st.Enqueue(ctx, jobs, nil); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(5 * time.Millisecond) // every job is now past platform.max_age
	for {
		leases, err := h.st.Lease(ctx, store.LeaseRequest{Queue: store.Platform, Now: time.Now(), For: p.platformLease(),
			Lanes: 1, PerLane: schema.MaxEvents})
		if err != nil {
			t.Fatal(err)
		}
		if len(leases) == 0 {
			break
		}
		// A whole batch is refused for its content; whatever follows meets
		// a BonyChat outage.
		h.platform.script(http.StatusBadRequest, http.StatusServiceUnavailable)
		if len(leases[0].Jobs) == 1 {
			h.platform.script(http.StatusServiceUnavailable)
		}
		p.runPlatform(ctx, leases[0])
	}
	if dead := h.jobCount(store.Dead); dead != 2*lanes {
		t.Fatalf("want %d dead jobs, got %d", 2*lanes, dead)
	}
	if n := splitHintCount(p); n != 0 {
		t.Errorf("%d split hints kept after every split lane died, want 0", n)
	}
}

// failureTexts gives what an agent reads about a message that fails with
// se: the /message answer when the failure comes within outbound.wait, and
// the failed status when it comes later (the message queued behind one
// the provider holds past the wait).
func failureTexts(t *testing.T, se *providers.SendError) (answer, status string) {
	t.Helper()
	rec := newHarnessWith(t, nil, &fakeProvider{sendErr: se}).postJSON("/message", demoToken, textRequest("demo", phoneContact, "x"))
	answer = errorBody(t, rec).Error.Message

	block := make(chan struct{})
	fp := &fakeProvider{block: block, script: func(n int, _ providers.Recipient, _ schema.Message) error {
		if n == 0 {
			return nil
		}
		return se
	}}
	h := newHarnessWith(t, func(c *Config) { c.Outbound.Wait = 100 * time.Millisecond }, fp)
	h.postJSON("/message", demoToken, textRequest("demo", phoneContact, "first"))
	mID := mIDOf(t, h.postJSON("/message", demoToken, textRequest("demo", phoneContact, "second")).Body.Bytes())
	close(block)
	waitFor(t, func() bool { return len(h.statusesFor(mID)) == 1 })
	return answer, h.statusesFor(mID)[0].Message
}

// A failure reads the same in the /message answer and in a later failed
// status; a message that may have been sent says so once.
func TestAFailureReadsTheSameInTheAnswerAndTheStatus(t *testing.T) {
	for _, tc := range []struct {
		se   *providers.SendError
		want string
	}{
		{&providers.SendError{Kind: providers.Permanent, Reason: "+60177872890 is not a valid phone number"},
			"+60177872890 is not a valid phone number"},
		{&providers.SendError{Kind: providers.Config, Reason: "Twilio refused the channel's credentials"},
			"channel demo: the provider refused this channel's settings: Twilio refused the channel's credentials"},
		{&providers.SendError{Kind: providers.Ambiguous, Reason: "no answer from Twilio; the message may have been sent"},
			"no answer from Twilio; the message may have been sent"},
		{&providers.SendError{Kind: providers.Ambiguous, Reason: "the connection dropped"},
			"the connection dropped; the message may have been sent"},
	} {
		answer, status := failureTexts(t, tc.se)
		if answer != tc.want || status != tc.want {
			t.Errorf("%s: answer %q, status %q; want both %q", tc.se.Kind, answer, status, tc.want)
		}
	}
}

// A message given up at outbound.max_age after a send whose answer was lost
// reads in words: the cause, not the retry's bookkeeping or its kind.
func TestGivingUpAfterALostAnswerSaysTheMessageMayHaveBeenSent(t *testing.T) {
	fake := faketwilio.New(t, twilioSID, twilioToken)
	h := newHarness(t, func(c *Config) {
		c.Channels[2].Twilio.APIURL = fake.URL
		c.Outbound.MaxAge = 1500 * time.Millisecond
		c.Outbound.Wait = 200 * time.Millisecond
	})
	fake.Always(faketwilio.Create, faketwilio.Code(20500))
	mID := mIDOf(t, h.postJSON("/message", smsToken, textRequest("sms01", phoneContact, "hello")).Body.Bytes())
	var got string
	waitFor(t, func() bool {
		for _, s := range h.statusesFor(mID) {
			got = s.Message
		}
		return got != ""
	})
	if !strings.HasPrefix(got, "gave up after 1.5s: ") || !strings.Contains(got, "may have") {
		t.Errorf("status %q: want the age and that the SMS may have been sent", got)
	}
	for _, internal := range []string{"unreachable:", "ambiguous:", "looked up again", "too soon"} {
		if strings.Contains(got, internal) {
			t.Errorf("status %q says %q", got, internal)
		}
	}
}

func TestDurationsInWords(t *testing.T) {
	for d, want := range map[time.Duration]string{
		24 * time.Hour: "24 hours", time.Hour: "1 hour", 90 * time.Minute: "90 minutes", 30 * time.Second: "30 seconds",
		1500 * time.Millisecond: "1.5s", 72 * time.Hour: "72 hours",
	} {
		if got := inWords(d); got != want {
			t.Errorf("inWords(%v) = %q, want %q", d, got, want)
		}
	}
}

// A message given up at outbound.max_age reads its last error without the
// kind the store keeps with it; an attempt a stop cut off says the message
// may have been sent.
func TestGivingUpNamesTheLastErrorInWords(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Outbound.MaxAge = 24 * time.Hour })
	for last, want := range map[string]string{
		"": "gave up after 24 hours",
		lastErrorOf(&providers.SendError{Kind: providers.Throttled, Reason: "Twilio is rate limiting this account"}): "gave up after 24 hours: Twilio is rate limiting this account",
		interruptedMark: "gave up after 24 hours: the server stopped while sending; the message may have been sent",
	} {
		if got := h.srv.pipe.tooOld(last); got != want {
			t.Errorf("tooOld(%q) = %q, want %q", last, got, want)
		}
	}
}
