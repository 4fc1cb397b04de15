package mailgun

import (
	"errors"
	"maps"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/bonychat/bonychat-adapter/schema"
)

func inEvent(t *testing.T, name string) *Event {
	t.Helper()
	e, err := ParseEvent(inFile(t, name))
	if err != nil {
		t.Fatalf("ParseEvent(%s): %v", name, err)
	}
	return e
}

func TestParseEventFixtures(t *testing.T) {
	for _, tc := range []struct {
		file, name, id, severity, reason, recipient, messageID, ts string
		vars                                                       map[string]string
		code                                                       int
		value, status                                              string
		report                                                     bool
	}{
		{file: "event-accepted.json", name: "accepted", id: "ncV2XwymRUKbPek_MIM-Gw", recipient: "jane.doe@example.org",
			messageID: "01JD2XK8Q3W5Y7Z9A1B3C5D7E9@mg.example.com", ts: "1795000400",
			vars: map[string]string{"mid": "01JD2XK8Q3W5Y7Z9A1B3C5D7E9"}, value: "sent", report: true},
		{file: "event-delivered.json", name: "delivered", id: "W3X4Y5Z6A7B8C9D0E1F2G3", recipient: "jane.doe@example.org",
			messageID: "01JD2XK8Q3W5Y7Z9A1B3C5D7E9@mg.example.com", ts: "1795000460", code: 250,
			vars: map[string]string{"mid": "01JD2XK8Q3W5Y7Z9A1B3C5D7E9"}, value: "delivered", report: true},
		{file: "event-opened.json", name: "opened", id: "Ase7i2zsRYeDXztHGENqRA", recipient: "jane.doe@example.org",
			messageID: "01JD2XK8Q3W5Y7Z9A1B3C5D7E9@mg.example.com", ts: "1795003000",
			vars:  map[string]string{"mid": "01JD2XK8Q3W5Y7Z9A1B3C5D7E9", "attempt": "2", "meta": `{"k": 1}`},
			value: "read", report: true},
		{file: "event-failed-permanent.json", name: "failed", id: "G9Bn5sl1TC6nu79C8C0bwg", severity: "permanent", reason: "bounce",
			recipient: "nobody@example.org", messageID: "01JD2Y0000BOUNCE00000000@mg.example.com", ts: "1795000500", code: 550,
			vars: map[string]string{"mid": "01JD2Y0000BOUNCE00000000"}, value: "failed",
			status: "bounced: nobody@example.org could not be delivered to: 550 5.1.1 The email account that you tried to reach does not exist. Please try double-checking the recipient's email address for typos.",
			report: true},
		{file: "event-failed-temporary.json", name: "failed", id: "YusK9KhoTwe2C00iRxsEqQ", severity: "temporary", reason: "generic",
			recipient: "jane.doe@example.org", messageID: "01JD2XK8Q3W5Y7Z9A1B3C5D7E9@mg.example.com", ts: "1770920772", code: 421,
			vars: map[string]string{"mid": "01JD2XK8Q3W5Y7Z9A1B3C5D7E9"}},
		{file: "event-uservars-empty-array.json", name: "failed", id: "czsjqFATSlC3QtAK-C80nw", severity: "permanent", reason: "suppress-bounce",
			recipient: "alice@example.com", messageID: "20130503192659.13651.20287@mg.example.com", ts: "1795000600", code: 605,
			vars: map[string]string{}, value: "failed",
			status: "not sent: alice@example.com is suppressed because earlier mail to it bounced (remove it from the domain's bounce list in Mailgun to retry): 605 Not delivering to previously bounced address",
			report: true},
	} {
		t.Run(tc.file, func(t *testing.T) {
			e := inEvent(t, tc.file)
			if e.Name != tc.name || e.ID != tc.id || e.Severity != tc.severity || e.Reason != tc.reason ||
				e.Recipient != tc.recipient || e.MessageID != tc.messageID || e.DeliveryStatus.Code != tc.code {
				t.Errorf("parsed %+v", e)
			}
			if e.Signature.Timestamp != tc.ts || len(e.Signature.Token) != 50 || len(e.Signature.Signature) != 64 {
				t.Errorf("signature %+v", e.Signature)
			}
			if e.Timestamp < 1e9 {
				t.Errorf("timestamp %v", e.Timestamp)
			}
			if !maps.Equal(e.UserVariables, tc.vars) || e.UserVariables == nil {
				t.Errorf("user-variables %q, want %q", e.UserVariables, tc.vars)
			}
			value, status, report := StatusFor(e)
			if value != tc.value || status != tc.status || report != tc.report {
				t.Errorf("StatusFor = %q, %q, %v; want %q, %q, %v", value, status, report, tc.value, tc.status, tc.report)
			}
		})
	}
}

func TestParseEventDescriptionNullUsesMessage(t *testing.T) {
	e := inEvent(t, "event-failed-temporary.json")
	if e.DeliveryStatus.Description != "" || e.DeliveryStatus.Message != "4.7.0 Try again later, closing connection." ||
		e.DeliveryStatus.EnhancedCode != "" {
		t.Errorf("delivery-status %+v", e.DeliveryStatus)
	}
}

func inEventBody(data string) []byte {
	return []byte(`{"signature":{"timestamp":"1","token":"t","signature":"s"},"event-data":` + data + `}`)
}

func TestParseEventUserVariablesShapes(t *testing.T) {
	for data, want := range map[string]map[string]string{
		`{"event":"delivered"}`:                                       {},
		`{"event":"delivered","user-variables":null}`:                 {},
		`{"event":"delivered","user-variables":[]}`:                   {},
		`{"event":"delivered","user-variables":[ ]}`:                  {},
		`{"event":"delivered","user-variables":{}}`:                   {},
		`{"event":"delivered","user-variables":{"mid":"m1","n":1.5}}`: {"mid": "m1", "n": "1.5"},
		`{"event":"delivered","user-variables":{"json":"{\"k\":1}"}}`: {"json": `{"k":1}`},
		`{"event":"delivered","user-variables":{"b":true,"z":null}}`:  {"b": "true", "z": ""},
	} {
		e, err := ParseEvent(inEventBody(data))
		if err != nil {
			t.Errorf("%s: %v", data, err)
			continue
		}
		if e.UserVariables == nil || !maps.Equal(e.UserVariables, want) {
			t.Errorf("%s: user-variables %q, want %q", data, e.UserVariables, want)
		}
	}
	// Other shapes (Mailgun's "Could not load user-variables…" string
	// among them) are no variables and a problem, not a lost event.
	for _, data := range []string{
		`{"event":"delivered","user-variables":["mid"]}`,
		`{"event":"delivered","user-variables":"mid"}`,
		`{"event":"delivered","user-variables":5}`,
	} {
		e, err := ParseEvent(inEventBody(data))
		if err != nil || len(e.UserVariables) != 0 || !strings.Contains(e.Problem, "user-variables") {
			t.Errorf("%s: err = %v, event %+v; want no variables and a problem", data, err, e)
		}
	}
}

func TestParseEventTolerantTypes(t *testing.T) {
	body := []byte(`{"signature":{"timestamp":1795000000,"token":"t","signature":"s","parent-signature":"p"},
		"event-data":{"event":"FAILED","severity":"Permanent","reason":"espblock","timestamp":"1795000000.5",
		"message":{"headers":{"message-id":"<x@y>"}},
		"delivery-status":{"code":"554","message":"blocked","enhanced-code":"5.7.1","description":null},
		"new-field":{"anything":[1,2]}}}`)
	e, err := ParseEvent(body)
	if err != nil {
		t.Fatal(err)
	}
	if e.Signature.Timestamp != "1795000000" || e.Timestamp != 1795000000.5 || e.DeliveryStatus.Code != 554 ||
		e.MessageID != "x@y" || e.Name != "failed" || e.Severity != "permanent" || e.DeliveryStatus.EnhancedCode != "5.7.1" {
		t.Errorf("parsed %+v", e)
	}
	value, reason, report := StatusFor(e)
	if value != "failed" || !report || reason != "blocked by the recipient's mail provider for the recipient: 554 5.7.1 blocked" {
		t.Errorf("StatusFor = %q %q %v", value, reason, report)
	}
}

func TestParseEventMalformed(t *testing.T) {
	for _, body := range []string{
		``, `[]`, `{}`, `not json`,
		`{"event-data":{"event":"delivered"}}`,
		`{"signature":{"timestamp":"1","token":"t","signature":"s"}}`,
		`{"signature":{"timestamp":"1","token":"t","signature":"s"},"event-data":{}}`,
		`{"signature":{"timestamp":"1","token":"t","signature":"s"},"event-data":{"event":5}}`,
		`{"signature":{"timestamp":[1],"token":"t","signature":"s"},"event-data":{"event":"delivered"}}`,
	} {
		if _, err := ParseEvent([]byte(body)); !errors.Is(err, ErrMalformedEvent) {
			t.Errorf("%q: err = %v, want ErrMalformedEvent", body, err)
		}
	}
}

func TestStatusFor(t *testing.T) {
	ds := DeliveryStatus{Code: 550, Description: "  mailbox\n full  "}
	for _, tc := range []struct {
		e      Event
		value  string
		reason string
		report bool
	}{
		{Event{Name: "accepted"}, "sent", "", true},
		{Event{Name: "delivered"}, "delivered", "", true},
		{Event{Name: "opened"}, "read", "", true},
		{Event{Name: "clicked"}, "", "", false},
		{Event{Name: "complained"}, "", "", false},
		{Event{Name: "unsubscribed"}, "", "", false},
		{Event{Name: "stored"}, "", "", false},
		{Event{Name: "something-new"}, "", "", false},
		{Event{Name: "failed", Severity: "temporary", Reason: "generic"}, "", "", false},
		{Event{Name: "failed", Reason: "bounce"}, "", "", false}, // no severity: not known to be final
		{Event{Name: "failed", Severity: "permanent", Reason: "bounce", Recipient: "a@x", DeliveryStatus: ds},
			"failed", "bounced: a@x could not be delivered to: 550 mailbox full", true},
		{Event{Name: "failed", Severity: "permanent", Reason: "suppress-unsubscribe", Recipient: "a@x"},
			"failed", "not sent: a@x unsubscribed from this domain's mail", true},
		{Event{Name: "failed", Severity: "permanent", Reason: "suppress-complaint", Recipient: "a@x"},
			"failed", "not sent: a@x marked earlier mail as spam", true},
		{Event{Name: "failed", Severity: "permanent", Reason: "blacklisted", Recipient: "a@x"},
			"failed", "blocked: a@x or the sending IP is on a blocklist", true},
		{Event{Name: "failed", Severity: "permanent", Reason: "old", Recipient: "a@x"},
			"failed", "gave up on a@x: it could not be delivered for too long", true},
		{Event{Name: "failed", Severity: "permanent", Reason: "policy", Recipient: "a@x"},
			"failed", "not delivered to a@x (policy)", true},
		{Event{Name: "rejected", Recipient: "a@x", DeliveryStatus: DeliveryStatus{Message: "Sandbox subdomains are for test purposes only"}},
			"failed", "Mailgun refused to send to a@x: Sandbox subdomains are for test purposes only", true},
	} {
		value, reason, report := StatusFor(&tc.e)
		if value != tc.value || reason != tc.reason || report != tc.report {
			t.Errorf("%s/%s/%s: got %q %q %v, want %q %q %v", tc.e.Name, tc.e.Severity, tc.e.Reason,
				value, reason, report, tc.value, tc.reason, tc.report)
		}
	}
}

// A receiving server's long answer is cut as Mailgun's own messages are
// (maxReasonMessage, then "…"), at a whole character: a combining accent
// stays with its letter. A short answer is left whole.
func TestBounceDetailIsCutAtAWholeCharacterWithAMark(t *testing.T) {
	const to = "jane.doe@example.org"
	// "550 5.2.1 " and 290 code points, then an accent: a cut by code
	// points alone would part it from its letter.
	long := strings.Repeat("mailbox ", 36) + "xe\u0301 " + strings.Repeat("unavailable ", 20)
	e := &Event{Name: "failed", Severity: "permanent", Reason: "bounce", Recipient: to,
		DeliveryStatus: DeliveryStatus{Code: 550, EnhancedCode: "5.2.1", Description: long}}
	_, reason, _ := StatusFor(e)
	prefix := "bounced: " + to + " could not be delivered to: "
	detail, ok := strings.CutPrefix(reason, prefix)
	if !ok || !strings.HasSuffix(detail, "…") {
		t.Fatalf("reason %q: want %q, the detail cut with a mark", reason, prefix)
	}
	kept := strings.TrimSuffix(detail, "…")
	whole := "550 5.2.1 " + strings.TrimSpace(long)
	if schema.Length(kept) > maxReasonMessage || !strings.HasPrefix(whole, kept) {
		t.Fatalf("kept %d characters, not a prefix of the answer: %q", schema.Length(kept), kept)
	}
	if next, _ := utf8.DecodeRuneInString(whole[len(kept):]); next == '\u0301' {
		t.Fatalf("cut between a letter and its accent: …%q", kept[len(kept)-10:])
	}

	e.DeliveryStatus.Description = "The email account\n that you tried to reach does not exist."
	if _, reason, _ := StatusFor(e); reason != prefix+"550 5.2.1 The email account that you tried to reach does not exist." {
		t.Fatalf("short answer: %q", reason)
	}
}
