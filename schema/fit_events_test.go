package schema_test

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/bonychat/bonychat-adapter/schema"
)

const testTimestamp int64 = 1732262400000

func textEvent(mID, text string) schema.Event {
	return schema.Event{Type: schema.EventMessage, MID: mID, Timestamp: testTimestamp, Message: schema.TextMessage(text)}
}

func attachmentEvent(mID string, a schema.Attachment) schema.Event {
	return schema.Event{Type: schema.EventMessage, MID: mID, Timestamp: testTimestamp,
		Message: &schema.Message{Type: schema.TypeAttachment, Attachment: &a}}
}

func statusEvent(mID, value, reason string) schema.Event {
	return schema.Event{Type: schema.EventMessageStatus, MID: mID, Timestamp: testTimestamp,
		Status: &schema.Status{Value: value, Message: reason}}
}

// assertEventFits checks every length limit of one produced event in both
// code points and UTF-16 units, which ValidatePayload (counting code points)
// does not.
func assertEventFits(t *testing.T, i int, e schema.Event) {
	t.Helper()
	check := func(field, s string, limit int) {
		t.Helper()
		if n := outputLength(s); n > limit {
			t.Errorf("event %d: %s has output length %d > %d", i, field, n, limit)
		}
	}
	check("mId", e.MID, schema.MaxMID)
	m := e.Message
	if m == nil {
		return
	}
	if err := schema.ValidateMessage(m); err != nil {
		t.Errorf("event %d: message is invalid: %v", i, err)
	}
	if m.Text != nil {
		check("text", *m.Text, schema.MaxText)
	}
	if a := m.Attachment; a != nil {
		check("attachment.url", a.URL, schema.MaxURL)
		check("attachment.fileName", a.FileName, schema.MaxFileName)
		check("attachment.description", a.Description, schema.MaxDescription)
	}
	if m.Address != nil {
		check("address", *m.Address, schema.MaxAddress)
	}
	if m.Title != nil {
		check("title", *m.Title, schema.MaxTitle)
	}
	for j, r := range m.Replies {
		check(fmt.Sprintf("replies[%d]", j), r, schema.MaxReply)
	}
}

func assertContactFits(t *testing.T, c *schema.Contact) {
	t.Helper()
	if c == nil {
		return
	}
	for field, v := range map[string]struct {
		s     string
		limit int
	}{
		"firstName": {c.FirstName, schema.MaxName}, "lastName": {c.LastName, schema.MaxName},
		"email": {c.Email, schema.MaxEmail}, "phone": {c.Phone, schema.MaxPhone}, "profilePic": {c.ProfilePic, schema.MaxURL},
	} {
		if n := outputLength(v.s); n > v.limit {
			t.Errorf("contact.%s has output length %d > %d", field, n, v.limit)
		}
	}
}

// assertPayloadsValid posts the fitted events the way the platform client
// does, in batches of at most MaxEvents, and checks each batch is valid.
func assertPayloadsValid(t *testing.T, events []schema.Event, contact *schema.Contact) {
	t.Helper()
	if len(events) == 0 {
		t.Fatal("no events after fitting")
	}
	for start := 0; start < len(events); start += schema.MaxEvents {
		batch := events[start:min(start+schema.MaxEvents, len(events))]
		p := &schema.WebhookPayload{ChannelID: testChannelID, ContactID: testContactID, Events: batch, Contact: contact}
		if err := schema.ValidatePayload(p, schema.IDTypePhone); err != nil {
			t.Fatalf("fitted payload (events %d..%d) is refused: %v", start, start+len(batch)-1, err)
		}
	}
	for i, e := range events {
		assertEventFits(t, i, e)
	}
	assertContactFits(t, contact)
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	return string(b)
}

func texts(t *testing.T, events []schema.Event) []string {
	t.Helper()
	out := make([]string, len(events))
	for i, e := range events {
		if e.Message == nil || e.Message.Type != schema.TypeText || e.Message.Text == nil {
			t.Fatalf("event %d is not a text message: %+v", i, e.Message)
		}
		out[i] = *e.Message.Text
	}
	return out
}

func mids(events []schema.Event) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.MID
	}
	return out
}

func TestFitEvents(t *testing.T) {
	longURL := urlPrefix + rep("u", 2100)
	hugeURL := urlPrefix + rep("v", 7500)
	cases := []struct {
		name  string
		in    []schema.Event
		check func(t *testing.T, out []schema.Event)
	}{
		{
			name: "15000 characters of words become three text events X-1..X-3 that join back",
			in:   []schema.Event{textEvent("X", words("lorem", 15000))},
			check: func(t *testing.T, out []schema.Event) {
				assertSplitEvents(t, out, words("lorem", 15000), []string{"X-1", "X-2", "X-3"}, schema.EventMessage)
			},
		},
		{
			name: "15000 中 without spaces become three text events X-1..X-3",
			in:   []schema.Event{textEvent("X", rep("中", 15000))},
			check: func(t *testing.T, out []schema.Event) {
				assertSplitEvents(t, out, rep("中", 15000), []string{"X-1", "X-2", "X-3"}, schema.EventMessage)
			},
		},
		{
			name: "7000 astral code points (14000 UTF-16 units) become two events",
			in:   []schema.Event{textEvent("X", rep("😀", 7000))},
			check: func(t *testing.T, out []schema.Event) {
				assertSplitEvents(t, out, rep("😀", 7000), []string{"X-1", "X-2"}, schema.EventMessage)
			},
		},
		{
			name: "7000 ascii characters stay one event with its mId",
			in:   []schema.Event{textEvent("X", rep("a", 7000))},
			check: func(t *testing.T, out []schema.Event) {
				if len(out) != 1 || out[0].MID != "X" || *out[0].Message.Text != rep("a", 7000) {
					t.Fatalf("want the event unchanged, got %d events %v", len(out), mids(out))
				}
			},
		},
		{
			name: "a split echo stays an echo",
			in: []schema.Event{{Type: schema.EventMessageEcho, MID: "E", Timestamp: testTimestamp,
				Message: schema.TextMessage(rep("b", 7001))}},
			check: func(t *testing.T, out []schema.Event) {
				assertSplitEvents(t, out, rep("b", 7001), []string{"E-1", "E-2"}, schema.EventMessageEcho)
			},
		},
		{
			name: "a split keeps the order of the other events",
			in: []schema.Event{textEvent("A", "first"), textEvent("B", rep("c", 7001)),
				statusEvent("C", schema.StatusRead, "")},
			check: func(t *testing.T, out []schema.Event) {
				if got := strings.Join(mids(out), ","); got != "A,B-1,B-2,C" {
					t.Fatalf("mIds %s, want A,B-1,B-2,C", got)
				}
			},
		},
		{
			name: "a split of a 50-character mId keeps each part within 50",
			in:   []schema.Event{textEvent(rep("m", 50), rep("d", 7001))},
			check: func(t *testing.T, out []schema.Event) {
				assertSplitEvents(t, out, rep("d", 7001), []string{rep("m", 48) + "-1", rep("m", 48) + "-2"}, schema.EventMessage)
			},
		},
		{
			name: "300-character file name is shortened keeping .pdf",
			in: []schema.Event{attachmentEvent("F", schema.Attachment{Type: "file", URL: "https://example.com/f",
				FileName: rep("n", 296) + ".pdf"})},
			check: func(t *testing.T, out []schema.Event) {
				a := onlyAttachment(t, out)
				if a.FileName != rep("n", 252)+".pdf" {
					t.Fatalf("fileName %q (len %d), want 252 n + .pdf", a.FileName, len(a.FileName))
				}
				if a.URL != "https://example.com/f" || a.Type != "file" {
					t.Fatalf("attachment changed beyond its name: %+v", a)
				}
			},
		},
		{
			name: "astral file name is shortened within 256 UTF-16 units keeping .pdf",
			in: []schema.Event{attachmentEvent("F", schema.Attachment{Type: "file", URL: "https://example.com/f",
				FileName: rep("😀", 200) + ".pdf"})},
			check: func(t *testing.T, out []schema.Event) {
				a := onlyAttachment(t, out)
				if !strings.HasSuffix(a.FileName, ".pdf") || outputLength(a.FileName) > schema.MaxFileName {
					t.Fatalf("fileName %q does not fit with its extension", a.FileName)
				}
			},
		},
		{
			name: "file name without extension is left out",
			in: []schema.Event{attachmentEvent("F", schema.Attachment{Type: "file", URL: "https://example.com/f",
				FileName: "report"})},
			check: func(t *testing.T, out []schema.Event) {
				if a := onlyAttachment(t, out); a.FileName != "" {
					t.Fatalf("fileName %q, want it left out", a.FileName)
				}
			},
		},
		{
			name: "URL over 2000 characters becomes a text event carrying the URL",
			in:   []schema.Event{attachmentEvent("U", schema.Attachment{Type: "image", URL: longURL})},
			check: func(t *testing.T, out []schema.Event) {
				got := texts(t, out)
				if len(out) != 1 || out[0].MID != "U" || !strings.Contains(got[0], longURL) {
					t.Fatalf("want one text event U with the URL, got %v", mids(out))
				}
			},
		},
		{
			name: "URL over 2000 characters keeps the file name in the text",
			in:   []schema.Event{attachmentEvent("U", schema.Attachment{Type: "file", URL: longURL, FileName: "a.pdf"})},
			check: func(t *testing.T, out []schema.Event) {
				if got := texts(t, out); len(got) != 1 || got[0] != "a.pdf: "+longURL {
					t.Fatalf("text %q, want %q", clip(got), "a.pdf: "+longURL[:20]+"…")
				}
			},
		},
		{
			name: "URL over 7000 characters becomes several text events that join to it",
			in:   []schema.Event{attachmentEvent("U", schema.Attachment{Type: "image", URL: hugeURL})},
			check: func(t *testing.T, out []schema.Event) {
				if got := strings.Join(texts(t, out), ""); got != hugeURL || len(out) != 2 {
					t.Fatalf("want two text events joining to the URL, got %d", len(out))
				}
			},
		},
		{
			name: "description of a video is dropped",
			in: []schema.Event{attachmentEvent("V", schema.Attachment{Type: "video", URL: "https://example.com/v.mp4",
				Description: "A clip"})},
			check: func(t *testing.T, out []schema.Event) {
				if a := onlyAttachment(t, out); a.Description != "" || a.URL != "https://example.com/v.mp4" {
					t.Fatalf("want the description dropped and the URL kept, got %+v", a)
				}
			},
		},
		{
			name: "description of an image is cut to 256",
			in: []schema.Event{attachmentEvent("I", schema.Attachment{Type: "image", URL: "https://example.com/i.png",
				Description: rep("é", 300)})},
			check: func(t *testing.T, out []schema.Event) {
				if a := onlyAttachment(t, out); a.Description != rep("é", 256) {
					t.Fatalf("description has %d code points, want 256", len([]rune(a.Description)))
				}
			},
		},
		{
			name: "address is cut to 256 and coordinates are kept",
			in: []schema.Event{{Type: schema.EventMessage, MID: "L", Timestamp: testTimestamp, Message: &schema.Message{
				Type: schema.TypeLocation, Latitude: ptr(0.0), Longitude: ptr(-180.0), Address: ptr(rep("😀", 200))}}},
			check: func(t *testing.T, out []schema.Event) {
				m := out[0].Message
				if len(out) != 1 || *m.Address != rep("😀", 128) || *m.Latitude != 0 || *m.Longitude != -180 {
					t.Fatalf("location not fitted as expected: %+v", m)
				}
			},
		},
		{
			name: "quick reply title and replies are cut, replies kept to 10",
			in: []schema.Event{{Type: schema.EventMessageEcho, MID: "Q", Timestamp: testTimestamp, Message: &schema.Message{
				Type: schema.TypeQuickReply, Title: ptr(rep("t", 300)), Replies: append([]string{rep("r", 300)}, replies(11)...)}}},
			check: func(t *testing.T, out []schema.Event) {
				m := out[0].Message
				if *m.Title != rep("t", 256) || len(m.Replies) != 10 || m.Replies[0] != rep("r", 256) || m.Replies[1] != "Option 1" {
					t.Fatalf("quick reply not fitted as expected: title %d, %d replies", len(*m.Title), len(m.Replies))
				}
			},
		},
		{
			name: "60-character mId of an attachment is cut to 50",
			in:   []schema.Event{attachmentEvent(rep("i", 60), schema.Attachment{Type: "image", URL: "https://example.com/i.png"})},
			check: func(t *testing.T, out []schema.Event) {
				if out[0].MID != rep("i", 50) {
					t.Fatalf("mId %q, want 50 i", out[0].MID)
				}
			},
		},
		{
			name: "status event keeps its status and gets its mId cut to 50",
			in:   []schema.Event{statusEvent(rep("s", 60), schema.StatusFailed, "number unreachable")},
			check: func(t *testing.T, out []schema.Event) {
				e := out[0]
				if len(out) != 1 || e.MID != rep("s", 50) || e.Message != nil || e.Status == nil ||
					*e.Status != (schema.Status{Value: "failed", Message: "number unreachable"}) {
					t.Fatalf("status event not kept as expected: %+v", e)
				}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := mustJSON(t, tc.in)
			out := schema.FitEvents(tc.in)
			if after := mustJSON(t, tc.in); after != before {
				t.Fatal("FitEvents modified its input")
			}
			tc.check(t, out)
			for _, e := range out {
				if e.Timestamp != testTimestamp {
					t.Errorf("event %s lost its timestamp: %d", e.MID, e.Timestamp)
				}
			}
			assertPayloadsValid(t, out, nil)
		})
	}
}

func assertSplitEvents(t *testing.T, out []schema.Event, text string, wantMIDs []string, typ string) {
	t.Helper()
	if got := mids(out); !equalStrings(got, wantMIDs) {
		t.Fatalf("mIds %v, want %v", got, wantMIDs)
	}
	parts := texts(t, out)
	if strings.Join(parts, "") != text {
		t.Fatal("the texts of the events do not join back to the original")
	}
	for i, e := range out {
		if e.Type != typ {
			t.Errorf("event %d has type %s, want %s", i, e.Type, typ)
		}
		if err := schema.ValidateMessage(e.Message); err != nil {
			t.Errorf("event %d: %v", i, err)
		}
		if n := outputLength(parts[i]); n > schema.MaxText || n == 0 {
			t.Errorf("event %d text has output length %d", i, n)
		}
	}
}

func onlyAttachment(t *testing.T, out []schema.Event) schema.Attachment {
	t.Helper()
	if len(out) != 1 || out[0].Message == nil || out[0].Message.Type != schema.TypeAttachment || out[0].Message.Attachment == nil {
		t.Fatalf("want one attachment event, got %d events", len(out))
	}
	return *out[0].Message.Attachment
}

func TestFitContact(t *testing.T) {
	cases := []struct {
		name string
		in   *schema.Contact
		want *schema.Contact
	}{
		{name: "nil stays nil", in: nil, want: nil},
		{name: "empty contact becomes nil", in: &schema.Contact{}, want: nil},
		{name: "valid contact is unchanged",
			in: &schema.Contact{FirstName: "John", LastName: "Doe", ProfilePic: "https://example.com/p.jpg", Locale: "en_US",
				CountryCode: "MY", Timezone: ptr(8.0), Email: "john@example.com", Phone: "+60177872890", Language: "en"},
			want: &schema.Contact{FirstName: "John", LastName: "Doe", ProfilePic: "https://example.com/p.jpg", Locale: "en_US",
				CountryCode: "MY", Timezone: ptr(8.0), Email: "john@example.com", Phone: "+60177872890", Language: "en"}},
		{name: "60-character first name is cut to 50", in: &schema.Contact{FirstName: rep("f", 60)},
			want: &schema.Contact{FirstName: rep("f", 50)}},
		{name: "astral last name is cut to 50 UTF-16 units", in: &schema.Contact{LastName: rep("😀", 30)},
			want: &schema.Contact{LastName: rep("😀", 25)}},
		{name: "é names at 50 are kept", in: &schema.Contact{FirstName: rep("é", 50), LastName: rep("中", 50)},
			want: &schema.Contact{FirstName: rep("é", 50), LastName: rep("中", 50)}},
		{name: "60-character email is dropped", in: &schema.Contact{FirstName: "J", Email: rep("e", 48) + "@example.com"},
			want: &schema.Contact{FirstName: "J"}},
		{name: "50-character email is kept", in: &schema.Contact{Email: rep("e", 38) + "@example.com"},
			want: &schema.Contact{Email: rep("e", 38) + "@example.com"}},
		{name: "19-character phone is dropped", in: &schema.Contact{FirstName: "J", Phone: "+" + rep("1", 18)},
			want: &schema.Contact{FirstName: "J"}},
		{name: "18-character phone is kept", in: &schema.Contact{Phone: "+" + rep("1", 17)},
			want: &schema.Contact{Phone: "+" + rep("1", 17)}},
		{name: "lower-case country code is dropped", in: &schema.Contact{FirstName: "J", CountryCode: "my"},
			want: &schema.Contact{FirstName: "J"}},
		{name: "three-letter country code is dropped", in: &schema.Contact{FirstName: "J", CountryCode: "MYS"},
			want: &schema.Contact{FirstName: "J"}},
		{name: "upper-case language is dropped", in: &schema.Contact{FirstName: "J", Language: "EN"},
			want: &schema.Contact{FirstName: "J"}},
		{name: "malformed locale is dropped", in: &schema.Contact{FirstName: "J", Locale: "english!"},
			want: &schema.Contact{FirstName: "J"}},
		{name: "non-http profile picture is dropped", in: &schema.Contact{FirstName: "J", ProfilePic: "ftp://example.com/p.jpg"},
			want: &schema.Contact{FirstName: "J"}},
		{name: "profile picture over 2000 characters is dropped", in: &schema.Contact{FirstName: "J", ProfilePic: urlPrefix + rep("p", 1981)},
			want: &schema.Contact{FirstName: "J"}},
		{name: "timezone 25 is dropped", in: &schema.Contact{FirstName: "J", Timezone: ptr(25.0)},
			want: &schema.Contact{FirstName: "J"}},
		{name: "timezone -24.5 is dropped", in: &schema.Contact{FirstName: "J", Timezone: ptr(-24.5)},
			want: &schema.Contact{FirstName: "J"}},
		{name: "timezone -24 is kept", in: &schema.Contact{Timezone: ptr(-24.0)}, want: &schema.Contact{Timezone: ptr(-24.0)}},
		{name: "timezone 0 is kept", in: &schema.Contact{Timezone: ptr(0.0)}, want: &schema.Contact{Timezone: ptr(0.0)}},
		{name: "timezone 24 is kept", in: &schema.Contact{Timezone: ptr(24.0)}, want: &schema.Contact{Timezone: ptr(24.0)}},
		{name: "all-invalid contact becomes nil",
			in: &schema.Contact{Email: rep("e", 60), Phone: rep("1", 19), CountryCode: "my", Timezone: ptr(25.0),
				Language: "eng", Locale: "??", ProfilePic: "not a url"},
			want: nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var before string
			if tc.in != nil {
				before = mustJSON(t, tc.in)
			}
			got := schema.FitContact(tc.in)
			if tc.in != nil && mustJSON(t, tc.in) != before {
				t.Fatal("FitContact modified its input")
			}
			if (got == nil) != (tc.want == nil) {
				t.Fatalf("FitContact = %s, want %s", mustJSON(t, got), mustJSON(t, tc.want))
			}
			if got != nil && mustJSON(t, got) != mustJSON(t, tc.want) {
				t.Fatalf("FitContact = %s, want %s", mustJSON(t, got), mustJSON(t, tc.want))
			}
			assertPayloadsValid(t, []schema.Event{textEvent("m1", "hi")}, got)
		})
	}
}

// TestFitThenValidatePayload: whatever a provider hands over, the fitted
// events and contact make payloads that ValidatePayload accepts, so nothing a
// contact sent is refused for its size (PROTOCOL.md, "Nothing lost on output").
func TestFitThenValidatePayload(t *testing.T) {
	nan := math.NaN()
	type input struct {
		name    string
		events  []schema.Event
		contact *schema.Contact
	}
	cases := []input{
		{name: "7000 astral code points of text", events: []schema.Event{textEvent("SM1", rep("😀", 7000))}},
		{name: "astral text with spaces at the boundary", events: []schema.Event{textEvent("SM1", "a"+words("😀😀😀", 14001))}},
		{name: "astral mId split into parts", events: []schema.Event{textEvent(rep("😀", 40), rep("x", 20000))}},
		{name: "over-long everything in a contact",
			events:  []schema.Event{textEvent("SM1", "hi")},
			contact: &schema.Contact{FirstName: rep("😀", 60), LastName: rep("中", 60), Email: rep("é", 51), Phone: rep("1", 19)}},
		{name: "25 events after splitting go out in two batches",
			events: func() []schema.Event {
				var ev []schema.Event
				for i := range 12 {
					ev = append(ev, textEvent(fmt.Sprintf("SM%d", i), rep("z", 7001)))
				}
				return ev
			}()},
		// A failed receipt's reason comes from the provider and may be long;
		// schema.Status caps it at 1000 characters.
		{name: "failed status with a 1500-character reason is made to fit",
			events: []schema.Event{statusEvent("SM1", schema.StatusFailed, rep("r", 1500))}},
		// A timezone that is not a number cannot be made valid: it must be left out.
		{name: "NaN timezone is left out", events: []schema.Event{textEvent("SM1", "hi")},
			contact: &schema.Contact{FirstName: "Jane", Timezone: &nan}},
	}
	rng := rand.New(rand.NewPCG(2026, 11))
	for i := range 40 {
		cases = append(cases, input{name: fmt.Sprintf("generated %02d", i), events: randomEvents(rng), contact: randomContact(rng)})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			events := schema.FitEvents(tc.events)
			contact := schema.FitContact(tc.contact)
			assertPayloadsValid(t, events, contact)
			// Nothing a contact typed is lost: the text events' content is kept.
			var in, out strings.Builder
			for _, e := range tc.events {
				if e.Message != nil && e.Message.Type == schema.TypeText {
					in.WriteString(*e.Message.Text)
				}
			}
			for _, e := range events {
				if e.Message != nil && e.Message.Type == schema.TypeText && !strings.HasPrefix(e.MID, "U") {
					out.WriteString(*e.Message.Text)
				}
			}
			if in.String() != out.String() {
				t.Fatal("text content was lost or changed by fitting")
			}
		})
	}
}

// randomText returns n code points drawn from the test alphabets, with
// white space at random.
func randomText(rng *rand.Rand, n int) string {
	chars := []string{"a", "é", "中", "😀", "b", " ", "\n"}
	var b strings.Builder
	spaced := rng.IntN(2) == 0
	for range n {
		c := chars[rng.IntN(4)]
		if spaced && rng.IntN(8) == 0 {
			c = chars[5+rng.IntN(2)]
		}
		b.WriteString(c)
	}
	return b.String()
}

func randomLen(rng *rand.Rand, limit int) int {
	switch rng.IntN(4) {
	case 0:
		return limit
	case 1:
		return limit + 1
	case 2:
		return 1 + rng.IntN(limit)
	default:
		return limit + rng.IntN(2*limit)
	}
}

func randomEvents(rng *rand.Rand) []schema.Event {
	n := 1 + rng.IntN(4)
	events := make([]schema.Event, 0, n)
	for i := range n {
		mID := fmt.Sprintf("SM%d-", i) + randomText(rng, rng.IntN(60))
		mID = strings.Map(func(r rune) rune {
			if r == ' ' || r == '\n' {
				return '_'
			}
			return r
		}, mID)
		e := schema.Event{Type: schema.EventMessage, MID: mID, Timestamp: testTimestamp}
		if rng.IntN(3) == 0 {
			e.Type = schema.EventMessageEcho
		}
		switch rng.IntN(5) {
		case 0:
			e.Message = schema.TextMessage(strings.TrimSpace(randomText(rng, randomLen(rng, schema.MaxText))) + "x")
		case 1:
			types := []string{"image", "video", "audio", "file"}
			a := schema.Attachment{Type: types[rng.IntN(4)], URL: urlPrefix + randomText(rng, randomLen(rng, schema.MaxURL-len(urlPrefix)))}
			a.URL = strings.NewReplacer(" ", "_", "\n", "_").Replace(a.URL)
			if rng.IntN(2) == 0 {
				a.FileName = strings.ReplaceAll(randomText(rng, randomLen(rng, schema.MaxFileName-4)), "\n", " ") + ".pdf"
			}
			if rng.IntN(2) == 0 {
				a.Description = randomText(rng, randomLen(rng, schema.MaxDescription))
			}
			e.MID = "U" + e.MID // an attachment may become text: not counted as typed text
			e.Message = &schema.Message{Type: schema.TypeAttachment, Attachment: &a}
		case 2:
			addr := randomText(rng, randomLen(rng, schema.MaxAddress))
			e.Message = &schema.Message{Type: schema.TypeLocation, Latitude: ptr(rng.Float64()*180 - 90),
				Longitude: ptr(rng.Float64()*360 - 180), Address: &addr}
		case 3:
			title := "T" + randomText(rng, randomLen(rng, schema.MaxTitle))
			reps := make([]string, 1+rng.IntN(schema.MaxReplies))
			for j := range reps {
				reps[j] = "R" + randomText(rng, randomLen(rng, schema.MaxReply))
			}
			e.Message = &schema.Message{Type: schema.TypeQuickReply, Title: &title, Replies: reps}
		default:
			e.Type = schema.EventMessageStatus
			values := []string{schema.StatusSent, schema.StatusDelivered, schema.StatusRead, schema.StatusFailed}
			e.Status = &schema.Status{Value: values[rng.IntN(4)]}
			if e.Status.Value == schema.StatusFailed {
				e.Status.Message = randomText(rng, 1+rng.IntN(1000))
			}
		}
		events = append(events, e)
	}
	return events
}

func randomContact(rng *rand.Rand) *schema.Contact {
	if rng.IntN(4) == 0 {
		return nil
	}
	return &schema.Contact{
		FirstName: randomText(rng, randomLen(rng, schema.MaxName)),
		LastName:  randomText(rng, randomLen(rng, schema.MaxName)),
		Email:     randomText(rng, randomLen(rng, schema.MaxEmail)),
		Phone:     "+" + rep("6", randomLen(rng, schema.MaxPhone-1)),
		Timezone:  ptr(float64(rng.IntN(60) - 30)),
		Language:  []string{"en", "EN", "ms", "eng", ""}[rng.IntN(5)],
	}
}
