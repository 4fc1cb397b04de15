package fakemailgun

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	mailgungo "github.com/mailgun/mailgun-go/v4"
	"github.com/mailgun/mailgun-go/v4/events"

	"github.com/bonychat/bonychat-adapter/internal/testkit"
)

const (
	testDomain = "mg.example.com"
	testKey    = "key-0123456789abcdef"
)

func client(s *Server, key string) *mailgungo.MailgunImpl {
	mg := mailgungo.NewMailgun(s.Domain, key)
	mg.SetAPIBase(s.URL + "/v3")
	mg.SetClient(&http.Client{Timeout: 5 * time.Second, Transport: testkit.NewLocalOnlyTransport()})
	return mg
}

func TestSendIsRecordedWithFieldsAndAttachments(t *testing.T) {
	s := New(t, testDomain, testKey)
	m := mailgungo.NewMessage("Acme <support@mg.example.com>", "Subject", "plain", "jane@example.com")
	m.SetHTML("<p>html</p>")
	m.AddHeader("Message-Id", "<m1@mg.example.com>")
	m.AddVariable("mid", "m1")
	data := []byte{0, 1, 2, 0xff, '\r', '\n'}
	m.AddBufferAttachment("a.bin", data)
	msg, id, err := client(s, testKey).Send(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	if msg != "Queued. Thank you." || id != "<m1@mg.example.com>" {
		t.Fatalf("answer %q %q", msg, id)
	}
	got := s.Sent()
	if len(got) != 1 {
		t.Fatalf("sent %d", len(got))
	}
	g := got[0]
	for k, v := range map[string]string{"from": "Acme <support@mg.example.com>", "to": "jane@example.com", "subject": "Subject",
		"text": "plain", "html": "<p>html</p>", "h:Message-Id": "<m1@mg.example.com>", "v:mid": "m1"} {
		if g.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, g.Get(k), v)
		}
	}
	if len(g.Attachments) != 1 || g.Attachments[0].FileName != "a.bin" || !bytes.Equal(g.Attachments[0].Data, data) {
		t.Fatalf("attachments %+v", g.Attachments)
	}
}

func TestGeneratedIDWithoutMessageID(t *testing.T) {
	s := New(t, testDomain, testKey)
	_, id, err := client(s, testKey).Send(context.Background(), mailgungo.NewMessage("a@mg.example.com", "s", "t", "b@example.com"))
	if err != nil {
		t.Fatal(err)
	}
	if len(id) < 3 || id[0] != '<' || id[len(id)-1] != '>' {
		t.Fatalf("id %q lacks angle brackets", id)
	}
}

func TestErrorsAndAuth(t *testing.T) {
	s := New(t, testDomain, testKey)
	msg := func() *mailgungo.Message { return mailgungo.NewMessage("a@mg.example.com", "s", "t", "b@example.com") }
	status := func(err error) (int, string) {
		var ure *mailgungo.UnexpectedResponseError
		if !errors.As(err, &ure) {
			t.Fatalf("error %v is not an UnexpectedResponseError", err)
		}
		var body struct {
			Message string `json:"message"`
		}
		_ = json.Unmarshal(ure.Data, &body)
		return ure.Actual, body.Message
	}
	_, _, err := client(s, "wrong").Send(context.Background(), msg())
	if code, _ := status(err); code != 401 {
		t.Fatalf("wrong key: %d", code)
	}
	s.Script(Error(400, "bad to"), TooManyRequests("1"), Error(503, "down"))
	for _, want := range []struct {
		code int
		msg  string
	}{{400, "bad to"}, {429, "Too many requests"}, {503, "down"}} {
		_, _, err := client(s, testKey).Send(context.Background(), msg())
		if code, m := status(err); code != want.code || m != want.msg {
			t.Fatalf("got %d %q, want %d %q", code, m, want.code, want.msg)
		}
	}
	if len(s.Sent()) != 0 || len(s.Attempts()) != 3 {
		t.Fatalf("sent %d attempts %d", len(s.Sent()), len(s.Attempts()))
	}
	other := mailgungo.NewMailgun("other.example.com", testKey)
	other.SetAPIBase(s.URL + "/v3")
	other.SetClient(&http.Client{Timeout: 5 * time.Second, Transport: testkit.NewLocalOnlyTransport()})
	if _, _, err := other.Send(context.Background(), msg()); err == nil {
		t.Fatal("unknown domain accepted")
	} else if code, _ := status(err); code != 404 {
		t.Fatalf("unknown domain: %d", code)
	}
}

func TestRecordThenDrop(t *testing.T) {
	s := New(t, testDomain, testKey)
	s.Script(RecordThenDrop())
	_, _, err := client(s, testKey).Send(context.Background(), mailgungo.NewMessage("a@mg.example.com", "s", "t", "b@example.com"))
	var ure *mailgungo.UnexpectedResponseError
	if err == nil || errors.As(err, &ure) {
		t.Fatalf("want a transport error, got %v", err)
	}
	if got := s.Sent(); len(got) != 1 || got[0].Status != 0 {
		t.Fatalf("sent %+v, want the message recorded", got)
	}
}

func thrListEvents(t *testing.T, s *Server, filter map[string]string, limit int) ([]mailgungo.Event, error) {
	t.Helper()
	it := client(s, testKey).ListEvents(&mailgungo.ListEventOptions{Filter: filter, Limit: limit})
	var all, page []mailgungo.Event
	for it.Next(context.Background(), &page) {
		all = append(all, page...)
	}
	return all, it.Err()
}

func TestEventsListAcceptedMessages(t *testing.T) {
	s := New(t, testDomain, testKey)
	mg := client(s, testKey)
	for _, id := range []string{"m1", "m2", "m3"} {
		m := mailgungo.NewMessage("Acme <support@mg.example.com>", "Subject", "plain", "jane@example.com")
		m.AddHeader("Message-Id", "<"+id+"@mg.example.com>")
		if id != "m3" {
			m.AddVariable("mid", id)
		}
		if _, _, err := mg.Send(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	all, err := thrListEvents(t, s, nil, 2) // two pages
	if err != nil || len(all) != 3 {
		t.Fatalf("listed %d events (%v), want 3", len(all), err)
	}
	got, err := thrListEvents(t, s, map[string]string{"message-id": "m2@mg.example.com", "event": "accepted"}, 0)
	if err != nil || len(got) != 1 {
		t.Fatalf("filtered: %d events (%v), want 1", len(got), err)
	}
	a, ok := got[0].(*events.Accepted)
	if !ok || a.Message.Headers.MessageID != "m2@mg.example.com" || a.GetID() == "" || a.GetTimestamp().IsZero() {
		t.Fatalf("event = %#v", got[0])
	}
	if vars, ok := a.UserVariables.(map[string]any); !ok || vars["mid"] != "m2" {
		t.Fatalf("user-variables = %#v", a.UserVariables)
	}
	if got, _ := thrListEvents(t, s, map[string]string{"message-id": "m3@mg.example.com"}, 0); len(got) != 1 {
		t.Fatal("m3 not listed")
	} else if vars, ok := got[0].(*events.Accepted).UserVariables.([]any); !ok || len(vars) != 0 {
		t.Fatalf("empty user-variables = %#v, want [] as Mailgun sends them", got[0].(*events.Accepted).UserVariables)
	}
	if got, err := thrListEvents(t, s, map[string]string{"message-id": "m2@mg.example.com", "event": "delivered"}, 0); err != nil || len(got) != 0 {
		t.Fatalf("delivered: %d events (%v), want none", len(got), err)
	}
	s.SetEventsDown(http.StatusServiceUnavailable)
	if _, err := thrListEvents(t, s, nil, 0); err == nil {
		t.Fatal("events API down, but no error")
	}
	if s.EventQueries() == 0 {
		t.Fatal("queries not counted")
	}
}

func TestDropRecordsNothing(t *testing.T) {
	s := New(t, testDomain, testKey)
	s.Script(Drop())
	m := mailgungo.NewMessage("Acme <support@mg.example.com>", "Subject", "plain", "jane@example.com")
	if _, _, err := client(s, testKey).Send(context.Background(), m); err == nil {
		t.Fatal("a dropped connection was not an error")
	}
	if len(s.Sent()) != 0 || len(s.Attempts()) != 1 || s.Attempts()[0].Status != 0 {
		t.Fatalf("sent %d, attempts %+v", len(s.Sent()), s.Attempts())
	}
	if got, err := thrListEvents(t, s, nil, 0); err != nil || len(got) != 0 {
		t.Fatalf("events: %d (%v), want none", len(got), err)
	}
}

// RecordThenStall takes the message, Stall does not; both hold the answer
// until the client gives up.
func TestStallsHoldTheAnswerUntilTheClientGivesUp(t *testing.T) {
	s := New(t, testDomain, testKey)
	s.Script(RecordThenStall(time.Minute), Stall(time.Minute))
	for i, wantSent := range []int{1, 1} {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		start := time.Now()
		_, _, err := client(s, testKey).Send(ctx, mailgungo.NewMessage("a@mg.example.com", "s", "t", "b@example.com"))
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
			t.Fatalf("send %d: %v after %v, want the client's deadline after 200ms", i, err, time.Since(start))
		}
		if got := len(s.Sent()); got != wantSent {
			t.Fatalf("send %d: %d recorded as sent, want %d", i, got, wantSent)
		}
	}
	if a := s.Attempts(); len(a) != 2 || a[0].Status != http.StatusOK || a[1].Status != http.StatusServiceUnavailable {
		t.Fatalf("attempts %+v, want a taken one, then a 503", a)
	}
}
