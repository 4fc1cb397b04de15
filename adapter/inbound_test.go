package adapter

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bonychat/bonychat-adapter/providers"
	"github.com/bonychat/bonychat-adapter/schema"
	"github.com/bonychat/bonychat-adapter/store"
)

func TestConsoleInboundReachesThePlatform(t *testing.T) {
	lat, lng := 3.139, 101.6869
	cases := []struct {
		name  string
		body  map[string]any
		check func(t *testing.T, p schema.WebhookPayload)
	}{
		{"text with contact profile",
			map[string]any{"from": phoneContact, "id": "SM0001", "text": "hello", "contact": map[string]any{"firstName": "Jane", "countryCode": "MY"}},
			func(t *testing.T, p schema.WebhookPayload) {
				e := p.Events[0]
				if e.Type != "message" || e.MID != "SM0001" || *e.Message.Text != "hello" || e.Timestamp <= 0 {
					t.Errorf("unexpected event %+v", e)
				}
				if p.Contact == nil || p.Contact.FirstName != "Jane" || p.Contact.CountryCode != "MY" {
					t.Errorf("contact profile lost: %+v", p.Contact)
				}
			}},
		{"echo becomes message_echo",
			map[string]any{"from": phoneContact, "text": "sent from elsewhere", "echo": true},
			func(t *testing.T, p schema.WebhookPayload) {
				if p.Events[0].Type != "message_echo" {
					t.Errorf("want message_echo, got %s", p.Events[0].Type)
				}
			}},
		{"attachment with a long file name keeps its extension",
			map[string]any{"from": phoneContact, "attachment": map[string]any{"type": "file", "url": "https://example.com/f.pdf", "fileName": strings.Repeat("n", 300) + ".pdf"}},
			func(t *testing.T, p schema.WebhookPayload) {
				a := p.Events[0].Message.Attachment
				if !strings.HasSuffix(a.FileName, ".pdf") || len(a.FileName) > 256 {
					t.Errorf("file name not fitted: %d chars", len(a.FileName))
				}
			}},
		{"location",
			map[string]any{"from": phoneContact, "location": map[string]any{"latitude": lat, "longitude": lng, "address": "KLCC"}},
			func(t *testing.T, p schema.WebhookPayload) {
				m := p.Events[0].Message
				if m.Type != "location" || *m.Latitude != lat || *m.Longitude != lng || *m.Address != "KLCC" {
					t.Errorf("unexpected location %+v", m)
				}
			}},
		{"long text is split into several events, nothing lost",
			map[string]any{"from": phoneContact, "id": "SMlong", "text": strings.Repeat("word ", 3000)},
			func(t *testing.T, p schema.WebhookPayload) {
				if len(p.Events) != 3 || p.Events[0].MID != "SMlong-1" || p.Events[2].MID != "SMlong-3" {
					t.Fatalf("want 3 events SMlong-1..3, got %d", len(p.Events))
				}
				var joined strings.Builder
				for _, e := range p.Events {
					joined.WriteString(*e.Message.Text)
				}
				if joined.String() != strings.Repeat("word ", 3000) {
					t.Error("split text does not join back to the original")
				}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil)
			rec := h.postJSON("/console/demo/inbound", demoToken, tc.body)
			if rec.Code != http.StatusOK {
				t.Fatalf("want 200, got %d: %s", rec.Code, rec.Body)
			}
			posts := h.waitPosts(1)
			if posts[0].Auth != "Bearer "+demoToken {
				t.Errorf("webhook must carry the channel token as bearer")
			}
			p := posts[0].Payload
			if p.ChannelID != "demo" || p.ContactID != phoneContact {
				t.Errorf("wrong envelope %s/%s", p.ChannelID, p.ContactID)
			}
			var answer struct{ MIDs []string }
			_ = json.Unmarshal(rec.Body.Bytes(), &answer)
			if len(answer.MIDs) != len(p.Events) {
				t.Errorf("the answer should list each posted event's mId")
			}
			tc.check(t, p)
		})
	}
}

func TestConsoleInboundRefusals(t *testing.T) {
	cases := []struct {
		name, path, token string
		body              map[string]any
		want              int
	}{
		{"no token", "/console/demo/inbound", "", map[string]any{"from": phoneContact, "text": "hi"}, 401},
		{"wrong token", "/console/demo/inbound", customToken, map[string]any{"from": phoneContact, "text": "hi"}, 401},
		{"unknown channel", "/console/nope/inbound", demoToken, map[string]any{"from": phoneContact, "text": "hi"}, 401},
		{"from is not E.164 on a phone channel", "/console/demo/inbound", demoToken, map[string]any{"from": "jane", "text": "hi"}, 400},
		{"two kinds of content", "/console/demo/inbound", demoToken, map[string]any{"from": phoneContact, "text": "hi", "location": map[string]any{"latitude": 1, "longitude": 2}}, 400},
		{"no content", "/console/demo/inbound", demoToken, map[string]any{"from": phoneContact}, 400},
		{"id not printable ASCII", "/console/demo/inbound", demoToken, map[string]any{"from": phoneContact, "text": "hi", "id": strings.Repeat("😀", 30)}, 400},
		{"unknown field", "/console/demo/inbound", demoToken, map[string]any{"from": phoneContact, "text": "hi", "x": 1}, 400},
		{"latitude out of range", "/console/demo/inbound", demoToken, map[string]any{"from": phoneContact, "location": map[string]any{"latitude": 91, "longitude": 2}}, 400},
		{"custom channel takes custom IDs", "/console/custom01/inbound", customToken, map[string]any{"from": "jane_doe@example", "text": "hi"}, 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil)
			rec := h.postJSON(tc.path, tc.token, tc.body)
			if rec.Code != tc.want {
				t.Fatalf("want %d, got %d: %s", tc.want, rec.Code, rec.Body)
			}
			if tc.want != 200 && len(h.platform.posts()) != 0 {
				t.Error("a refused request must post nothing")
			}
		})
	}
}

func TestConsoleInboundRetriesUntilBonyChatTakesIt(t *testing.T) {
	cases := []struct {
		name      string
		answers   []int
		wantPosts int
	}{
		{"BonyChat 503 then 200", []int{503, 200}, 2},
		{"BonyChat 429 then 200", []int{429, 200}, 2},
		{"BonyChat 408 then 200", []int{408, 200}, 2},
		{"BonyChat 500 many times, then 200 (durable retries)", []int{500, 500, 500, 500, 500, 500, 500, 200}, 8},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil)
			h.platform.script(tc.answers...)
			rec := h.postJSON("/console/demo/inbound", demoToken, map[string]any{"from": phoneContact, "text": "hi"})
			if rec.Code != http.StatusOK {
				t.Fatalf("stored events are acknowledged: want 200, got %d: %s", rec.Code, rec.Body)
			}
			h.waitPosts(tc.wantPosts)
			waitFor(t, func() bool { return h.jobCount(store.Done) == 1 })
		})
	}
}

func TestConsoleInboundRefusedByBonyChatIsDeadNotLost(t *testing.T) {
	h := newHarness(t, nil)
	h.platform.script(422)
	rec := h.postJSON("/console/demo/inbound", demoToken, map[string]any{"from": phoneContact, "text": "hi"})
	if rec.Code != http.StatusOK {
		t.Fatalf("want 200, got %d", rec.Code)
	}
	waitFor(t, func() bool { return h.jobCount(store.Dead) == 1 })
	if n := len(h.platform.posts()); n != 1 {
		t.Fatalf("a 4xx must not be retried: %d posts", n)
	}
	if !strings.Contains(h.logs.String(), "events dead") {
		t.Error("dead events must be logged at error level")
	}
	rec = h.do(http.MethodGet, "/readyz", "", "", nil)
	if !strings.Contains(rec.Body.String(), `"deadJobs":1`) {
		t.Errorf("/readyz should count the dead job: %s", rec.Body)
	}
	if n, err := h.st.Revive(context.Background(), nil, time.Now()); err != nil || n != 1 {
		t.Fatalf("revive: %d %v", n, err)
	}
	wake(h.srv.pipe.platWake)
	h.waitPosts(2)
	waitFor(t, func() bool { return h.jobCount(store.Done) == 1 })
}

func TestConsoleInboundDuplicateIDPostsOnce(t *testing.T) {
	h := newHarness(t, nil)
	body := map[string]any{"from": phoneContact, "id": "SMdup1", "text": "hi"}
	for range 3 {
		if rec := h.postJSON("/console/demo/inbound", demoToken, body); rec.Code != http.StatusOK {
			t.Fatalf("a redelivery is acknowledged too: got %d", rec.Code)
		}
	}
	h.waitPosts(1)
	time.Sleep(100 * time.Millisecond)
	if n := len(h.platform.posts()); n != 1 {
		t.Fatalf("duplicates must post nothing: %d posts", n)
	}
}

func TestConsoleInboundStoreFailureIs503(t *testing.T) {
	h := newHarnessOn(t, &failingStore{Store: store.NewMemory()}, nil, nil)
	rec := h.postJSON("/console/demo/inbound", demoToken, map[string]any{"from": phoneContact, "text": "hi"})
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("an event that cannot be stored must not be acknowledged: got %d", rec.Code)
	}
}

func TestIngestExtraKeysRefuseAReplayAndAcceptARedelivery(t *testing.T) {
	h := newHarness(t, nil)
	ingest := h.srv.ingester(h.srv.channels["demo"])
	in := func(id, token string) providers.Inbound {
		return providers.Inbound{DedupeKey: id, ContactID: phoneContact, Keys: []providers.InboundKey{{Name: "token:" + token, Value: id}},
			Events: []schema.Event{{Type: "message", MID: id, Timestamp: 1, Message: schema.TextMessage("hi")}}}
	}
	ctx := t.Context()
	if _, err := ingest.Ingest(ctx, in("msg-1", "tok-a")); err != nil {
		t.Fatal(err)
	}
	if _, err := ingest.Ingest(ctx, in("msg-1", "tok-a")); err != nil {
		t.Fatalf("a redelivery with the same token is acknowledged: %v", err)
	}
	_, err := ingest.Ingest(ctx, in("msg-2", "tok-a"))
	if status, _ := providers.IngestStatus(err); err == nil || status != http.StatusNotAcceptable {
		t.Fatalf("a token reused for another message must be refused with 406, got %v", err)
	}
	h.waitPosts(1)
	time.Sleep(50 * time.Millisecond)
	if n := len(h.eventsOf("msg-2")); n != 0 || len(h.eventsOf("msg-1")) != 1 {
		t.Fatalf("only the first message is posted, once")
	}
}

// The ingester tells a provider that it already took a message (by the
// dedupe key it records), per channel, so that a redelivery can skip its
// media downloads; a store it cannot read is an error, not a "no".
func TestIngesterTellsWhetherItTookAMessage(t *testing.T) {
	h := newHarness(t, nil)
	dedupe, ok := h.srv.ingester(h.srv.channels["demo"]).(providers.InboundDedupe)
	if !ok {
		t.Fatal("the ingester does not implement providers.InboundDedupe")
	}
	ctx := t.Context()
	if taken, err := dedupe.Taken(ctx, "SM-1"); err != nil || taken {
		t.Fatalf("before the ingest: Taken = %v, %v; want false", taken, err)
	}
	in := providers.Inbound{DedupeKey: "SM-1", ContactID: phoneContact,
		Events: []schema.Event{{Type: "message", MID: "SM-1", Timestamp: 1, Message: schema.TextMessage("hi")}}}
	if _, err := h.srv.ingester(h.srv.channels["demo"]).Ingest(ctx, in); err != nil {
		t.Fatal(err)
	}
	if taken, err := dedupe.Taken(ctx, "SM-1"); err != nil || !taken {
		t.Fatalf("after the ingest: Taken = %v, %v; want true", taken, err)
	}
	if taken, err := dedupe.Taken(ctx, "SM-2"); err != nil || taken {
		t.Fatalf("another message: Taken = %v, %v; want false", taken, err)
	}

	broken := newHarnessOn(t, &unreadableKeysStore{Store: store.NewMemory()}, nil, nil)
	d := broken.srv.ingester(broken.srv.channels["demo"]).(providers.InboundDedupe)
	if taken, err := d.Taken(ctx, "SM-1"); err == nil || taken {
		t.Fatalf("store failing: Taken = %v, %v; want an error", taken, err)
	}
}

// unreadableKeysStore cannot read dedupe keys, like a store with an I/O error.
type unreadableKeysStore struct{ store.Store }

func (unreadableKeysStore) LookupKey(context.Context, string, time.Time) (store.Key, error) {
	return store.Key{}, errors.New("disk I/O error")
}

// A console inbound refused for its content names each offending field in
// details, as /message does (openapi's BadRequest).
func TestConsoleInboundRefusalsNameTheFields(t *testing.T) {
	cases := []struct {
		name        string
		body        map[string]any
		field, rule string
	}{
		{"from not E.164", map[string]any{"from": "jane", "text": "hi"}, "from", "contact_id"},
		{"from missing", map[string]any{"text": "hi"}, "from", "required"},
		{"two kinds of content", map[string]any{"from": phoneContact, "text": "hi", "location": map[string]any{"latitude": 1, "longitude": 2}}, "text", "oneof"},
		{"latitude out of range", map[string]any{"from": phoneContact, "location": map[string]any{"latitude": 91, "longitude": 2}}, "location.latitude", "lte"},
		{"attachment URL not http", map[string]any{"from": phoneContact, "attachment": map[string]any{"type": "image", "url": "ftp://x/a.png"}}, "attachment.url", "url"},
		{"id not printable ASCII", map[string]any{"from": phoneContact, "text": "hi", "id": "é"}, "id", "printascii"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil)
			rec := h.postJSON("/console/demo/inbound", demoToken, tc.body)
			var got struct {
				Error struct {
					Details []schema.FieldError `json:"details"`
				} `json:"error"`
			}
			if rec.Code != http.StatusBadRequest || json.Unmarshal(rec.Body.Bytes(), &got) != nil {
				t.Fatalf("%d %s, want 400 with details", rec.Code, rec.Body)
			}
			for _, d := range got.Error.Details {
				if d.Field == tc.field && d.Rule == tc.rule && d.Message != "" {
					return
				}
			}
			t.Fatalf("details %+v do not name %s/%s", got.Error.Details, tc.field, tc.rule)
		})
	}
}
