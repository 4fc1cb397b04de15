package twilio

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/bonychat/bonychat-adapter/internal/faketwilio"
	"github.com/bonychat/bonychat-adapter/internal/testkit"
	"github.com/bonychat/bonychat-adapter/providers"
	"github.com/bonychat/bonychat-adapter/schema"
)

// outCallback is the StatusCallback the provider must give for a message.
func outCallback(mID string, part, parts int) string {
	q := url.Values{"mid": {mID}}
	if parts > 1 {
		q.Set("part", strconv.Itoa(part))
		q.Set("parts", strconv.Itoa(parts))
	}
	return outPublicURL + "/twilio/" + outChannel + "/status?" + q.Encode()
}

func TestSendTextIsOneTwilioMessage(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		opt      outOption
		to, from string // as posted
		service  string
		mID      string
	}{
		{name: "from number", opt: outWithConfig(func(*Config) {}), to: outContact, from: outFrom, mID: "m1"},
		{name: "messaging service instead of from", opt: outWithConfig(func(c *Config) { c.From, c.MessagingServiceSID = "", outService }),
			to: outContact, service: outService, mID: "m2"},
		{name: "messaging service wins over from", opt: outWithConfig(func(c *Config) { c.MessagingServiceSID = outService }),
			to: outContact, service: outService, mID: "m3"},
		{name: "whatsapp sender prefixes both ends", opt: outWithConfig(func(c *Config) { c.WhatsApp = true }),
			to: "whatsapp:" + outContact, from: "whatsapp:" + outFrom, mID: "m4"},
		{name: "mId with characters a query must escape", opt: outWithConfig(func(*Config) {}),
			to: outContact, from: outFrom, mID: "a b&c=d/é+"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := outNew(t, c.opt)
			sent, err := e.send(t, outText("Hello from BonyChat"), c.mID)
			if err != nil {
				t.Fatal(err)
			}
			msgs := e.fake.Messages()
			if len(msgs) != 1 {
				t.Fatalf("%d messages", len(msgs))
			}
			m := msgs[0]
			if !slices.Equal(sent.ProviderIDs, []string{m.SID}) {
				t.Fatalf("returned %v, fake created %s", sent.ProviderIDs, m.SID)
			}
			f := m.Form
			if f.Get("Body") != "Hello from BonyChat" || f.Get("To") != c.to || f.Get("From") != c.from ||
				f.Get("MessagingServiceSid") != c.service || len(f["MediaUrl"]) != 0 || len(f["PersistentAction"]) != 0 {
				t.Fatalf("form = %v", f)
			}
			if f.Get("StatusCallback") != outCallback(c.mID, 0, 1) {
				t.Fatalf("StatusCallback = %q, want %q", f.Get("StatusCallback"), outCallback(c.mID, 0, 1))
			}
			cb, err := url.Parse(f.Get("StatusCallback"))
			if err != nil || cb.Host != "adapter.example.com" || cb.Path != "/twilio/sms01/status" || cb.Query().Get("mid") != c.mID {
				t.Fatalf("StatusCallback %q does not carry the mId", f.Get("StatusCallback"))
			}
			if e.fake.Requests() != 1 || !e.fake.RequestLog()[0].Authorized {
				t.Fatalf("requests: %+v", e.fake.RequestLog())
			}
		})
	}
}

// outWords is a text of n words of varying length, with some line breaks.
func outWords(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			if i%37 == 0 {
				b.WriteString("\n")
			} else {
				b.WriteString(" ")
			}
		}
		b.WriteString(strings.Repeat("w", 1+i%9))
		b.WriteString(strconv.Itoa(i))
	}
	return b.String()
}

func TestSendLongTextSplitsAtWordBoundariesInOrder(t *testing.T) {
	t.Parallel()
	emoji := strings.Repeat("smile 😀 ", 300)        // 2,400 code points, 2,700 UTF-16 units
	longWord := strings.Repeat("x", 2000) + " tail" // no space in the first 1,600
	cases := []struct {
		name      string
		text      string
		wantParts int // 0: just more than one
		wordCuts  bool
	}{
		{name: "exactly 1600 is one message", text: strings.Repeat("a", 1600), wantParts: 1},
		{name: "1601 is two", text: strings.Repeat("a ", 800) + "b", wantParts: 2, wordCuts: true},
		{name: "several thousand characters of words", text: outWords(900), wordCuts: true},
		{name: "non-GSM characters count by UTF-16 units", text: emoji, wantParts: 2, wordCuts: true},
		{name: "a word longer than a message is cut", text: longWord, wantParts: 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := outNew(t)
			sent, err := e.send(t, outText(c.text), "long-1")
			if err != nil {
				t.Fatal(err)
			}
			msgs := e.fake.Messages()
			n := len(msgs)
			if (c.wantParts != 0 && n != c.wantParts) || (c.wantParts == 0 && n < 2) {
				t.Fatalf("%d messages, want %d", n, c.wantParts)
			}
			var joined strings.Builder
			var sids []string
			for i, m := range msgs {
				if schema.Length(m.Body) > MaxBody {
					t.Errorf("part %d has %d characters", i, schema.Length(m.Body))
				}
				if c.wordCuts && i < n-1 {
					last, _ := outLastRune(m.Body)
					first, _ := outFirstRune(msgs[i+1].Body)
					if !unicode.IsSpace(last) || unicode.IsSpace(first) {
						t.Errorf("part %d ends %q and part %d starts %q: not a word boundary", i, last, i+1, first)
					}
				}
				if got := m.StatusCallback; got != outCallback("long-1", i, n) {
					t.Errorf("part %d StatusCallback = %q, want %q", i, got, outCallback("long-1", i, n))
				}
				joined.WriteString(m.Body)
				sids = append(sids, m.SID)
			}
			if joined.String() != c.text {
				t.Fatal("the parts joined are not the text")
			}
			if !slices.Equal(sent.ProviderIDs, sids) {
				t.Fatalf("returned %v, created in order %v", sent.ProviderIDs, sids)
			}
		})
	}
}

func outLastRune(s string) (rune, bool) {
	r := []rune(s)
	if len(r) == 0 {
		return 0, false
	}
	return r[len(r)-1], true
}

func outFirstRune(s string) (rune, bool) {
	for _, r := range s {
		return r, true
	}
	return 0, false
}

func TestSendAfterAFailedLaterPartSendsOnlyTheRest(t *testing.T) {
	t.Parallel()
	text := outWords(900)
	parts := schema.SplitText(text, MaxBody)
	if len(parts) < 3 {
		t.Fatalf("want at least 3 parts, have %d", len(parts))
	}
	cases := []struct {
		name    string
		failure []faketwilio.Behaviour
		kind    providers.ErrorKind
	}{
		// Dropped without being created: reconciliation finds nothing.
		{"connection dropped", []faketwilio.Behaviour{faketwilio.Drop()}, providers.Unreachable},
		// Throttled on every attempt the HTTP layer makes.
		{"throttled", []faketwilio.Behaviour{faketwilio.Throttled(), faketwilio.Throttled(), faketwilio.Throttled()}, providers.Throttled},
		{"queue full", []faketwilio.Behaviour{faketwilio.Code(21611)}, providers.Throttled},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := outNew(t)
			e.fake.Script(faketwilio.Create, append([]faketwilio.Behaviour{faketwilio.OK()}, c.failure...)...)
			sent, err := e.send(t, outText(text), "resume-1")
			if se := outSendError(t, err); se.Kind != c.kind || !se.Kind.Retryable() {
				t.Fatalf("first Send: %v (kind %v)", err, se.Kind)
			}
			first := e.fake.Messages()
			if len(first) != 1 || first[0].Body != parts[0] {
				t.Fatalf("after the failure Twilio has %d messages", len(first))
			}
			// The memo of sent parts is a per-message record: it expires.
			if d := time.Until(e.records.Expiries.Of(nsParts, "resume-1")); d < providers.MessageRecordTTL-time.Minute || d > providers.MessageRecordTTL {
				t.Fatalf("parts memo expires in %v, want about %v", d, providers.MessageRecordTTL)
			}
			if !slices.Equal(sent.ProviderIDs, []string{first[0].SID}) {
				t.Fatalf("failed Send reports %v", sent.ProviderIDs)
			}

			e.settled(t, "resume-1") // the queue's retry comes after the wait
			sent, err = e.send(t, outText(text), "resume-1")
			if err != nil {
				t.Fatal(err)
			}
			msgs := e.fake.Messages()
			if len(msgs) != len(parts) {
				t.Fatalf("%d messages after the retry, want %d (the first part was sent again?)", len(msgs), len(parts))
			}
			var sids []string
			for i, m := range msgs {
				if m.Body != parts[i] {
					t.Fatalf("message %d is not part %d", i, i)
				}
				sids = append(sids, m.SID)
			}
			if !slices.Equal(sent.ProviderIDs, sids) {
				t.Fatalf("returned %v, want %v", sent.ProviderIDs, sids)
			}

			// A third Send of the finished mId sends nothing and answers the same.
			before := e.fake.Requests()
			again, err := e.send(t, outText(text), "resume-1")
			if err != nil || !slices.Equal(again.ProviderIDs, sids) || e.fake.Requests() != before {
				t.Fatalf("replay: %v %v, %d new requests", again.ProviderIDs, err, e.fake.Requests()-before)
			}
		})
	}
}

// A later part that fails says how much of the message reached the
// contact, also when it is retried (its reason is what an agent reads if
// the message is given up); a first part that fails says nothing of parts.
func TestSendPartRefusedAfterOthersSaysHowManyWereSent(t *testing.T) {
	t.Parallel()
	text := outWords(900)
	n := len(schema.SplitText(text, MaxBody))
	if n < 3 {
		t.Fatalf("want at least 3 parts, have %d", n)
	}
	cases := []struct {
		name   string
		script []faketwilio.Behaviour
		kind   providers.ErrorKind
		want   string
		sent   int // parts at Twilio
	}{
		{"the second part refused", []faketwilio.Behaviour{faketwilio.OK(), faketwilio.Code(21610)}, providers.Permanent,
			"the first 1 of " + strconv.Itoa(n) + " parts were sent; " + OptOutReason, 1},
		{"the third part refused for the channel's settings", []faketwilio.Behaviour{faketwilio.OK(), faketwilio.OK(), faketwilio.Code(21606)}, providers.Config,
			"the first 2 of " + strconv.Itoa(n) + " parts were sent; " + sendCodes[21606].reason, 2},
		{"the first part refused", []faketwilio.Behaviour{faketwilio.Code(21610)}, providers.Permanent, OptOutReason, 0},
		{"the second part throttled (retried, or given up at max_age)", []faketwilio.Behaviour{faketwilio.OK(), faketwilio.Code(20429), faketwilio.Code(20429), faketwilio.Code(20429), faketwilio.Code(20429)},
			providers.Throttled, "the first 1 of " + strconv.Itoa(n) + " parts were sent; Twilio is rate limiting this account", 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := outNew(t)
			e.fake.Script(faketwilio.Create, c.script...)
			sent, err := e.send(t, outText(text), "parts-1")
			se := outSendError(t, err)
			if se.Kind != c.kind || se.Reason != c.want {
				t.Fatalf("kind %v reason %q, want %v %q", se.Kind, se.Reason, c.kind, c.want)
			}
			if len(sent.ProviderIDs) != c.sent || len(e.fake.Messages()) != c.sent {
				t.Fatalf("returned %v, Twilio has %d messages", sent.ProviderIDs, len(e.fake.Messages()))
			}
		})
	}
}

// A part sent whose progress cannot be recorded: when it was the last
// part, the message is simply sent; with parts still to come the attempt
// ends retryable, the part marked with its SID, and the retry sends only
// the rest. Only when the mark cannot be written either does the message
// end ambiguous (a retry could repeat the part).
func TestSendProgressThatCannotBeRecorded(t *testing.T) {
	t.Parallel()
	long := outText(strings.Repeat("Lorem ipsum dolor sit amet. ", 100)) // 2 parts
	e := outNew(t)
	e.records.FailPuts(nsParts, errors.New("disk full"))
	sent, err := e.send(t, outText("hello"), "m1")
	if err != nil || len(e.fake.Messages()) != 1 || len(sent.ProviderIDs) != 1 {
		t.Fatalf("the whole message is out: %v, %d messages, returned %v", err, len(e.fake.Messages()), sent.ProviderIDs)
	}

	e = outNew(t)
	e.records.FailPuts(nsParts, errors.New("disk full"))
	_, err = e.send(t, long, "m2")
	if se := outSendError(t, err); se.Kind != providers.Unreachable || len(e.fake.Messages()) != 1 {
		t.Fatalf("kind %v, %d messages: %v; want retryable after the first part", se.Kind, len(e.fake.Messages()), err)
	}
	e.records.FailPuts(nsParts, nil)
	sent, err = e.send(t, long, "m2")
	if err != nil || len(e.fake.Messages()) != 2 || len(sent.ProviderIDs) != 2 {
		t.Fatalf("retry: %v, %d messages, returned %v; want the second part only", err, len(e.fake.Messages()), sent.ProviderIDs)
	}
	if first, second := e.fake.Messages()[0], e.fake.Messages()[1]; first.Body == second.Body || first.SID != sent.ProviderIDs[0] {
		t.Fatalf("parts sent %q then %q, returned %v: want two different parts, the first's SID kept", first.Body, second.Body, sent.ProviderIDs)
	}

	e = outNew(t)
	e.records.FailPuts(nsParts, errors.New("disk full"))
	e.records.FailPuts(nsUnconfirmed, errors.New("disk full"))
	_, err = e.send(t, long, "m3")
	if se := outSendError(t, err); se.Kind != providers.Ambiguous || len(e.fake.Messages()) != 1 {
		t.Fatalf("kind %v, %d messages: %v; want ambiguous after the first part", se.Kind, len(e.fake.Messages()), err)
	}

	e = outNew(t)
	e.records.FailGets(nsParts, errors.New("db down"))
	_, err = e.send(t, outText("hello"), "m4")
	if se := outSendError(t, err); se.Kind != providers.Unreachable || e.fake.Requests() != 0 {
		t.Fatalf("kind %v, %d requests: %v", se.Kind, e.fake.Requests(), err)
	}
}

func TestSendAttachment(t *testing.T) {
	t.Parallel()
	const media = "https://cdn.example.com/files/photo.jpg"
	no, yes := false, true
	cases := []struct {
		name      string
		mms       *bool
		a         schema.Attachment
		wantMedia bool
		wantBody  string // "": no Body field at all
	}{
		{"image as MMS with its description as caption", nil,
			schema.Attachment{Type: "image", URL: media, FileName: "photo.jpg", Description: "Our shop"}, true, "Our shop"},
		{"image as MMS without a caption", &yes, schema.Attachment{Type: "image", URL: media}, true, ""},
		{"video as MMS", &yes, schema.Attachment{Type: "video", URL: "https://cdn.example.com/v.mp4", FileName: "v.mp4"}, true, ""},
		{"audio as MMS", nil, schema.Attachment{Type: "audio", URL: "https://cdn.example.com/a.mp3"}, true, ""},
		{"file is always a link", &yes, schema.Attachment{Type: "file", URL: "https://cdn.example.com/r.pdf", FileName: "report.pdf"},
			false, "report.pdf: https://cdn.example.com/r.pdf"},
		{"file without a name is labelled by type", &yes, schema.Attachment{Type: "file", URL: "https://cdn.example.com/r.pdf"},
			false, "file: https://cdn.example.com/r.pdf"},
		{"image with mms off is a link with its caption", &no,
			schema.Attachment{Type: "image", URL: media, FileName: "photo.jpg", Description: "Our shop"}, false,
			"Our shop\nphoto.jpg: " + media},
		{"video with mms off is a link", &no, schema.Attachment{Type: "video", URL: "https://cdn.example.com/v.mp4"},
			false, "video: https://cdn.example.com/v.mp4"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := outNew(t, outWithConfig(func(cfg *Config) { cfg.MMS = c.mms }))
			a := c.a
			sent, err := e.send(t, schema.Message{Type: schema.TypeAttachment, Attachment: &a}, "att-1")
			if err != nil {
				t.Fatal(err)
			}
			msgs := e.fake.Messages()
			if len(msgs) != 1 || !slices.Equal(sent.ProviderIDs, []string{msgs[0].SID}) {
				t.Fatalf("%d messages, returned %v", len(msgs), sent.ProviderIDs)
			}
			f := msgs[0].Form
			if c.wantMedia != (len(f["MediaUrl"]) == 1 && f.Get("MediaUrl") == a.URL) ||
				(!c.wantMedia && len(f["MediaUrl"]) != 0) {
				t.Fatalf("MediaUrl = %v", f["MediaUrl"])
			}
			if _, has := f["Body"]; has != (c.wantBody != "") || f.Get("Body") != c.wantBody {
				t.Fatalf("Body = %q (present %v), want %q", f.Get("Body"), has, c.wantBody)
			}
			if c.wantMedia && !strings.HasPrefix(msgs[0].SID, "MM") {
				t.Fatalf("media message SID %s", msgs[0].SID)
			}
		})
	}
}

func TestSendLocation(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		whatsapp   bool
		lat, lng   float64
		address    *string
		wantBody   string
		wantAction []string
	}{
		{"sms with address", false, 3.139, 101.6869, outStr("Menara KL, Kuala Lumpur"),
			"Menara KL, Kuala Lumpur\nhttps://maps.google.com/?q=3.139,101.6869", nil},
		{"sms without address", false, 40.7128, -74.006, nil, "https://maps.google.com/?q=40.7128,-74.006", nil},
		{"whatsapp adds the native location", true, 3.139, 101.6869, outStr("Menara KL"),
			"Menara KL\nhttps://maps.google.com/?q=3.139,101.6869", []string{"geo:3.139,101.6869|Menara KL"}},
		{"whatsapp without address", true, -33.8688, 151.2093, nil,
			"https://maps.google.com/?q=-33.8688,151.2093", []string{"geo:-33.8688,151.2093"}},
		{"whole degrees keep no trailing zeros", false, 10, 100, nil, "https://maps.google.com/?q=10,100", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := outNew(t, outWithConfig(func(cfg *Config) { cfg.WhatsApp = c.whatsapp }))
			m := schema.Message{Type: schema.TypeLocation, Latitude: outF64(c.lat), Longitude: outF64(c.lng), Address: c.address}
			if _, err := e.send(t, m, "loc-1"); err != nil {
				t.Fatal(err)
			}
			msgs := e.fake.Messages()
			if len(msgs) != 1 {
				t.Fatalf("%d messages", len(msgs))
			}
			f := msgs[0].Form
			if f.Get("Body") != c.wantBody || !slices.Equal(f["PersistentAction"], c.wantAction) {
				t.Fatalf("Body %q PersistentAction %q", f.Get("Body"), f["PersistentAction"])
			}
			wantTo, wantFrom := outContact, outFrom
			if c.whatsapp {
				wantTo, wantFrom = "whatsapp:"+outContact, "whatsapp:"+outFrom
			}
			if f.Get("To") != wantTo || f.Get("From") != wantFrom {
				t.Fatalf("To %q From %q", f.Get("To"), f.Get("From"))
			}
		})
	}
}

func TestSendQuickReplyListsOptionsAndRemembersThem(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	cases := []struct {
		name     string
		title    string
		replies  []string
		wantBody string
	}{
		{"three options", "Which colour?", []string{"Red", "Green", "Blue"},
			"Which colour?\n1. Red\n2. Green\n3. Blue\nReply 1-3"},
		{"one option", "Confirm?", []string{"Yes"}, "Confirm?\n1. Yes\nReply 1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := outNew(t)
			e.p.now = func() time.Time { return now }
			m := schema.Message{Type: schema.TypeQuickReply, Title: outStr(c.title), Replies: c.replies}
			if _, err := e.send(t, m, "qr-1"); err != nil {
				t.Fatal(err)
			}
			msgs := e.fake.Messages()
			if len(msgs) != 1 || msgs[0].Body != c.wantBody {
				t.Fatalf("messages %+v, want body %q", msgs, c.wantBody)
			}
			raw, ok := e.records.Value(nsQuickReply, outChannel+"|"+outContact)
			if !ok {
				t.Fatal("options not remembered")
			}
			var memo quickReplyMemo
			if err := json.Unmarshal(raw, &memo); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(memo.Options, c.replies) || !memo.Expires.Equal(now.Add(24*time.Hour)) {
				t.Fatalf("memo %+v", memo)
			}
		})
	}

	t.Run("options that cannot be remembered are not sent", func(t *testing.T) {
		t.Parallel()
		e := outNew(t)
		e.records.FailPuts(nsQuickReply, errors.New("db down"))
		_, err := e.send(t, schema.Message{Type: schema.TypeQuickReply, Title: outStr("Q"), Replies: []string{"A", "B"}}, "qr-2")
		if se := outSendError(t, err); se.Kind != providers.Unreachable || e.fake.Requests() != 0 {
			t.Fatalf("kind %v, %d requests", se.Kind, e.fake.Requests())
		}
	})
}

func TestSendErrorCodesMapToKindsAndReasons(t *testing.T) {
	t.Parallel()
	codes := make([]int, 0, len(sendCodes))
	for code := range sendCodes {
		codes = append(codes, code)
	}
	slices.Sort(codes)
	for _, code := range codes {
		want := sendCodes[code]
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			t.Parallel()
			e := outNew(t)
			attempts := 1
			if want.kind == providers.Throttled && faketwilio.ErrorStatus(code) == http.StatusTooManyRequests {
				attempts = 3 // a 429 is retried by the HTTP layer
			}
			for range attempts {
				e.fake.Script(faketwilio.Create, faketwilio.Code(code))
			}
			_, err := e.send(t, outText("hello"), "err-1")
			se := outSendError(t, err)
			if se.Kind != want.kind || se.Code != strconv.Itoa(code) {
				t.Fatalf("kind %v code %q, want %v %d: %v", se.Kind, se.Code, want.kind, code, err)
			}
			wantReason := want.reason
			if strings.Contains(wantReason, "%s") {
				wantReason = fmt.Sprintf(wantReason, outContact)
				if !strings.Contains(se.Reason, outContact) {
					t.Fatalf("reason %q does not name the number", se.Reason)
				}
			}
			if se.Reason != wantReason || strings.Contains(se.Reason, "%!") {
				t.Fatalf("reason %q, want %q", se.Reason, wantReason)
			}
			if e.fake.Count(faketwilio.Create) != attempts || e.fake.Count(faketwilio.List) != 0 || len(e.fake.Messages()) != 0 {
				t.Fatalf("%d creates, %d lists", e.fake.Count(faketwilio.Create), e.fake.Count(faketwilio.List))
			}
		})
	}

	t.Run("the listed agent wordings", func(t *testing.T) {
		t.Parallel()
		for code, words := range map[int]string{
			21211: "not a valid phone number", 21612: "cannot be reached", 21614: "not a mobile number",
			21635: "landline", 21610: "contact has opted out (replied STOP)", 21408: "region is not enabled",
			21617: "too long", 21620: "media URL", 21623: "too many media", 20003: "check account_sid and auth_token",
			21212: "check from", 21660: "check from and account_sid", 21703: "check messaging_service_sid",
			21704: "check messaging_service_sid", 63007: "WhatsApp sender", 21609: "check public_url",
		} {
			if !strings.Contains(sendCodes[code].reason, words) {
				t.Errorf("%d: %q lacks %q", code, sendCodes[code].reason, words)
			}
		}
	})
}

func TestSendOtherTwilioAnswers(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		script   []faketwilio.Behaviour
		kind     providers.ErrorKind
		code     string
		reason   string // contained
		creates  int
		lists    int
		messages int
	}{
		{name: "unknown 4xx code is permanent with Twilio's words",
			script: []faketwilio.Behaviour{faketwilio.Error(21999, 400, "Something odd")},
			kind:   providers.Permanent, code: "21999", reason: "Twilio refused the message (error 21999): Something odd", creates: 1},
		{name: "any 401 is the channel's credentials", script: []faketwilio.Behaviour{faketwilio.Error(20151, 401, "Bad auth")},
			kind: providers.Config, code: "20151", reason: "auth_token", creates: 1},
		{name: "any 403 is the channel's credentials", script: []faketwilio.Behaviour{faketwilio.Error(20403, 403, "Forbidden")},
			kind: providers.Config, code: "20403", reason: "auth_token", creates: 1},
		{name: "a 429 with another code is throttled", script: []faketwilio.Behaviour{
			faketwilio.Error(14107, 429, "Rate"), faketwilio.Error(14107, 429, "Rate"), faketwilio.Error(14107, 429, "Rate")},
			kind: providers.Throttled, code: "14107", creates: 3},
		{name: "a 500 with a Twilio body is reconciled, not resent",
			script: []faketwilio.Behaviour{faketwilio.Code(20500)},
			kind:   providers.Unreachable, code: "20500", reason: "Twilio answered 500", creates: 1, lists: 1},
		{name: "a 503 HTML page is reconciled, not resent", script: []faketwilio.Behaviour{faketwilio.ServiceUnavailableHTML()},
			kind: providers.Unreachable, reason: "may have been sent", creates: 1, lists: 1},
		{name: "a gateway's JSON 502 without Twilio's status field is reconciled, not a refusal",
			script: []faketwilio.Behaviour{faketwilio.Raw(502, "application/json", `{"message":"upstream problem"}`)},
			kind:   providers.Unreachable, reason: "Twilio answered 502", creates: 1, lists: 1},
		{name: "a gateway's JSON 429 without Twilio's status field is throttled, not a refusal",
			script: []faketwilio.Behaviour{faketwilio.Raw(429, "application/json", `{"message":"rate limit"}`),
				faketwilio.Raw(429, "application/json", `{"message":"rate limit"}`),
				faketwilio.Raw(429, "application/json", `{"message":"rate limit"}`)},
			kind: providers.Throttled, creates: 3},
		{name: "a gateway's JSON 400 without a code is a refusal with its status, in its words",
			script: []faketwilio.Behaviour{faketwilio.Raw(400, "application/json", `{"message":"bad request"}`)},
			kind:   providers.Permanent, reason: "Twilio refused the message (HTTP 400): bad request", creates: 1},
		{name: "a 201 without a SID is reconciled",
			script: []faketwilio.Behaviour{faketwilio.Raw(201, "application/json", `{"status":"queued"}`)},
			kind:   providers.Unreachable, creates: 1, lists: 1},
		{name: "a 200 HTML page from a proxy is reconciled",
			script: []faketwilio.Behaviour{faketwilio.Raw(200, "text/html", "<html>captive portal</html>")},
			kind:   providers.Unreachable, creates: 1, lists: 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := outNew(t)
			e.fake.Script(faketwilio.Create, c.script...)
			_, err := e.send(t, outText("hello"), "o-1")
			se := outSendError(t, err)
			if se.Kind != c.kind || se.Code != c.code || !strings.Contains(se.Reason, c.reason) {
				t.Fatalf("kind %v code %q reason %q: %v", se.Kind, se.Code, se.Reason, err)
			}
			if e.fake.Count(faketwilio.Create) != c.creates || e.fake.Count(faketwilio.List) != c.lists ||
				len(e.fake.Messages()) != c.messages {
				t.Fatalf("%d creates, %d lists, %d messages", e.fake.Count(faketwilio.Create),
					e.fake.Count(faketwilio.List), len(e.fake.Messages()))
			}
		})
	}
}

func TestSendWithWrongCredentialsIsAConfigError(t *testing.T) {
	t.Parallel()
	e := outNew(t, outWithConfig(func(c *Config) { c.AuthToken = "wrongToken42" }))
	_, err := e.send(t, outText("hello"), "m1")
	se := outSendError(t, err)
	if se.Kind != providers.Config || se.Code != "20003" || !strings.Contains(se.Reason, "auth_token") {
		t.Fatalf("kind %v code %q: %v", se.Kind, se.Code, err)
	}
	if strings.Contains(err.Error(), "wrongToken42") {
		t.Fatalf("the token is in the error: %v", err)
	}
	if log := e.fake.RequestLog(); len(log) != 1 || log[0].Authorized {
		t.Fatalf("requests %+v", log)
	}
}

func TestSendDialFailureIsUnreachableAndRetriedSafely(t *testing.T) {
	t.Parallel()
	e := outNew(t, outWithConfig(func(c *Config) { c.APIURL = outClosedURL(t) }))
	_, err := e.send(t, outText("hello"), "m1")
	se := outSendError(t, err)
	if se.Kind != providers.Unreachable || !se.Kind.Retryable() || se.Reason != "Twilio could not be reached" {
		t.Fatalf("kind %v reason %q: %v", se.Kind, se.Reason, err)
	}
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "dial" {
		t.Fatalf("cause is not a dial error: %v", err)
	}
	// A dial failure never reached Twilio, so the HTTP layer may retry it:
	// 1 attempt + 2 retries, and no reconciliation (nothing to reconcile).
	if n := e.trips.n.Load(); n != 3 {
		t.Fatalf("%d round trips, want 3", n)
	}
	if e.fake.Requests() != 0 {
		t.Fatal("the fake was reached")
	}
}

func TestSendReconciliationSendsExactlyOneSMS(t *testing.T) {
	t.Parallel()
	type check func(t *testing.T, e *outEnv, sent providers.Sent, err error)
	succeeds := func(t *testing.T, e *outEnv, sent providers.Sent, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("Send failed: %v", err)
		}
		msgs := e.fake.Messages()
		if len(msgs) != 1 || !slices.Equal(sent.ProviderIDs, []string{msgs[0].SID}) {
			t.Fatalf("%d messages, returned %v", len(msgs), sent.ProviderIDs)
		}
	}
	// lookAgain: not found (or the list unreadable), the send is retried
	// no sooner than DefaultReconcileWait, and the retry looks again first.
	lookAgain := func(messages int, why string) check {
		return func(t *testing.T, e *outEnv, _ providers.Sent, err error) {
			t.Helper()
			se := outSendError(t, err)
			if se.Kind != providers.Unreachable || se.RetryAfter < DefaultReconcileWait || len(e.fake.Messages()) != messages ||
				!strings.Contains(se.Error(), why) || !strings.Contains(se.Error(), "looked up again before it is sent again") {
				t.Fatalf("kind %v RetryAfter %v reason %q, %d messages", se.Kind, se.RetryAfter, se.Reason, len(e.fake.Messages()))
			}
			var inner *providers.SendError
			if !errors.As(se.Err, &inner) || inner.Kind != providers.Ambiguous {
				t.Fatalf("the ambiguous cause is lost: %v", err)
			}
		}
	}
	retryable := lookAgain(0, "does not show the message yet")
	image := schema.Message{Type: schema.TypeAttachment, Attachment: &schema.Attachment{Type: "image", URL: "https://cdn.example.com/a.png"}}
	cases := []struct {
		name      string
		opts      []outOption
		msg       schema.Message
		create    faketwilio.Behaviour
		listFails bool
		first     check
		lists     int
		// after: a second Send of the same mId leaves exactly one message.
	}{
		{name: "recorded then dropped: success with the recorded SID", create: faketwilio.RecordThenDrop(),
			first: succeeds, lists: 1},
		{name: "recorded then dropped, whatsapp", opts: []outOption{outWithConfig(func(c *Config) { c.WhatsApp = true })},
			create: faketwilio.RecordThenDrop(), first: succeeds, lists: 1},
		{name: "recorded then dropped, messaging service",
			opts:   []outOption{outWithConfig(func(c *Config) { c.From, c.MessagingServiceSID = "", outService })},
			create: faketwilio.RecordThenDrop(), first: succeeds, lists: 1},
		{name: "recorded then dropped, media without body", msg: image, create: faketwilio.RecordThenDrop(),
			first: succeeds, lists: 1},
		{name: "dropped without recording: retryable, then sent once", create: faketwilio.Drop(), first: retryable, lists: 1},
		{name: "dropped and the list fails too: looked up again, then sent once", create: faketwilio.Drop(), listFails: true,
			first: lookAgain(0, "message list cannot be read"), lists: 4},
		{name: "recorded then dropped and the list fails: looked up again, found, never resent", create: faketwilio.RecordThenDrop(),
			listFails: true, first: lookAgain(1, "message list cannot be read"), lists: 4},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := outNew(t, c.opts...)
			e.fake.Script(faketwilio.Create, c.create)
			if c.listFails {
				e.fake.Always(faketwilio.List, faketwilio.ServiceUnavailableHTML())
			}
			msg := c.msg
			if msg.Type == "" {
				msg = outText("Your code is 123456")
			}
			sent, err := e.send(t, msg, "rec-1")
			c.first(t, e, sent, err)
			if e.fake.Count(faketwilio.Create) != 1 || e.fake.Count(faketwilio.List) != c.lists {
				t.Fatalf("%d creates, %d lists (want 1, %d)", e.fake.Count(faketwilio.Create),
					e.fake.Count(faketwilio.List), c.lists)
			}
			if err != nil && !outSendError(t, err).Kind.Retryable() {
				return // the pipeline does not re-send an ambiguous message
			}
			// The job runs again (a retry after Unreachable, or a redelivery).
			e.fake.Always(faketwilio.List, faketwilio.OK())
			e.settled(t, "rec-1")
			sent, err = e.send(t, msg, "rec-1")
			if err != nil {
				t.Fatalf("second Send: %v", err)
			}
			if msgs := e.fake.Messages(); len(msgs) != 1 || !slices.Equal(sent.ProviderIDs, []string{msgs[0].SID}) {
				t.Fatalf("%d messages after the second Send, returned %v", len(msgs), sent.ProviderIDs)
			}
		})
	}
}

// Twilio may keep a body other than the one posted (a Messaging Service's
// Smart Encoding, a trial account's notice): the look-up still finds the
// lost send, so it is not sent twice; a body that differs in its words is
// still not taken for it.
func TestReconcileFindsABodyTwilioRewrote(t *testing.T) {
	t.Parallel()
	smart := strings.NewReplacer("’", "'", "“", `"`, "”", `"`, "—", "-", "…", "...")
	const posted = "We’re on it — “soon”…"
	cases := []struct {
		name    string
		rewrite func(string) string
		found   bool
	}{
		{"smart encoding", smart.Replace, true},
		{"trial notice", func(b string) string { return trialNotice + b }, true},
		{"both", func(b string) string { return trialNotice + smart.Replace(b) }, true},
		{"other words", func(string) string { return "We're on it - \"later\"..." }, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := outNew(t)
			e.fake.SetBodyRewrite(tc.rewrite)
			e.fake.Script(faketwilio.Create, faketwilio.RecordThenDrop())
			_, err := e.send(t, outText(posted), "rew-1")
			if found := err == nil; found != tc.found {
				t.Fatalf("found = %v (%v), want %v", found, err, tc.found)
			}
			if n := len(e.fake.Messages()); n != 1 {
				t.Fatalf("%d messages, want the one", n)
			}
		})
	}
}

// Only Smart Encoding's rewrite is forgiven: bodies that differ in any
// other character are different messages.
func TestSameBodyForgivesOnlySmartEncodingAndTheTrialNotice(t *testing.T) {
	for _, tc := range []struct {
		kept, posted string
		same         bool
	}{
		{"It's 10-12...", "It\u2019s 10\u201312\u2026", true},
		{trialNotice + "Ok!", "Ok!", true},
		{"Ok?", "Ok!", false},
		{"1030", "10.30", false},
		{"\U0001F600", "\U0001F44D", false},
		{"Ok!", trialNotice + "Ok!", false},
	} {
		if got := sameBody(tc.kept, tc.posted); got != tc.same {
			t.Errorf("sameBody(%q, %q) = %v, want %v", tc.kept, tc.posted, got, tc.same)
		}
	}
}

func TestReconcileIgnoresOtherMessagesToTheContact(t *testing.T) {
	t.Parallel()
	e := outNew(t)
	// An older identical message (before the clock-skew window) and a
	// recent different one must not pass for the lost one.
	old := time.Now().Add(-10 * time.Minute)
	e.fake.SetNow(func() time.Time { return old })
	if _, err := e.send(t, outText("Your code is 123456"), "earlier-1"); err != nil {
		t.Fatal(err)
	}
	e.fake.SetNow(time.Now)
	if _, err := e.send(t, outText("Something else"), "earlier-2"); err != nil {
		t.Fatal(err)
	}
	e.fake.Script(faketwilio.Create, faketwilio.Drop())
	_, err := e.send(t, outText("Your code is 123456"), "rec-1")
	if se := outSendError(t, err); se.Kind != providers.Unreachable {
		t.Fatalf("kind %v: an unrelated message was taken for the lost one: %v", se.Kind, err)
	}
	e.settled(t, "rec-1")
	if _, err := e.send(t, outText("Your code is 123456"), "rec-1"); err != nil {
		t.Fatal(err)
	}
	if n := len(e.fake.Messages()); n != 3 {
		t.Fatalf("%d messages, want 3", n)
	}
}

func TestReconcileFindsTheNewestAmongManyMessages(t *testing.T) {
	t.Parallel()
	// The lost message is the newest; Twilio lists newest first, so it is on
	// the first page even with many older ones.
	e := outNew(t)
	for i := range 60 {
		if _, err := e.send(t, outText(fmt.Sprintf("old %d", i)), fmt.Sprintf("old-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	e.fake.Script(faketwilio.Create, faketwilio.RecordThenDrop())
	sent, err := e.send(t, outText("the one"), "rec-1")
	if err != nil {
		t.Fatal(err)
	}
	msgs := e.fake.Messages()
	if len(msgs) != 61 || !slices.Equal(sent.ProviderIDs, []string{msgs[60].SID}) {
		t.Fatalf("%d messages, returned %v", len(msgs), sent.ProviderIDs)
	}
}

func TestSendTimeoutAfterTheRequestWasWritten(t *testing.T) {
	t.Parallel()
	// A transport that gives up waiting for the answer stands for a timeout
	// after the request reached Twilio.
	impatient := &testkit.LocalOnlyTransport{Base: &http.Transport{ResponseHeaderTimeout: 300 * time.Millisecond}}
	cases := []struct {
		name     string
		create   faketwilio.Behaviour
		wantErr  bool
		messages int
	}{
		{"created before the timeout: found, not resent", faketwilio.RecordThenStall(5 * time.Second), false, 1},
		{"not created: retryable", faketwilio.Stall(5 * time.Second), true, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := outNew(t, outWithTransport(impatient))
			e.fake.Script(faketwilio.Create, c.create)
			sent, err := e.send(t, outText("hello"), "to-1")
			if c.wantErr {
				if se := outSendError(t, err); se.Kind != providers.Unreachable {
					t.Fatalf("kind %v: %v", se.Kind, err)
				}
			} else if err != nil || len(sent.ProviderIDs) != 1 {
				t.Fatalf("%v %v", sent, err)
			}
			if e.fake.Count(faketwilio.Create) != 1 || len(e.fake.Messages()) != c.messages {
				t.Fatalf("%d creates (a timeout must not be retried), %d messages",
					e.fake.Count(faketwilio.Create), len(e.fake.Messages()))
			}
		})
	}
}

func TestSendHTTPRetriesOnlyWhatTwilioNeverProcessed(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		script  []faketwilio.Behaviour
		ok      bool
		creates int
	}{
		{"429 then success is retried", []faketwilio.Behaviour{faketwilio.Throttled()}, true, 2},
		{"two 429s then success", []faketwilio.Behaviour{faketwilio.Throttled(), faketwilio.Throttled()}, true, 3},
		{"three 429s give up throttled", []faketwilio.Behaviour{faketwilio.Throttled(), faketwilio.Throttled(), faketwilio.Throttled()}, false, 3},
		{"503 is not retried", []faketwilio.Behaviour{faketwilio.ServiceUnavailableHTML()}, false, 1},
		{"502 is not retried", []faketwilio.Behaviour{faketwilio.HTML(502)}, false, 1},
		{"500 is not retried", []faketwilio.Behaviour{faketwilio.Code(20500)}, false, 1},
		{"a reset after writing is not retried", []faketwilio.Behaviour{faketwilio.Drop()}, false, 1},
		{"400 is not retried", []faketwilio.Behaviour{faketwilio.Code(21211)}, false, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := outNew(t)
			e.fake.Script(faketwilio.Create, c.script...)
			_, err := e.send(t, outText("hello"), "r-1")
			if (err == nil) != c.ok {
				t.Fatalf("err = %v", err)
			}
			if n := e.fake.Count(faketwilio.Create); n != c.creates {
				t.Fatalf("%d create requests, want %d", n, c.creates)
			}
			if c.ok && len(e.fake.Messages()) != 1 {
				t.Fatalf("%d messages", len(e.fake.Messages()))
			}
		})
	}
}

func TestSendToAnOptedOutContactIsRefusedWithoutCallingTwilio(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		cfg     func(*Config)
		sender  string // the opt-out record's sender
		value   []byte
		refused bool
	}{
		{"opted out of this number", func(*Config) {}, outFrom, []byte("1"), true},
		{"opted out of this messaging service", func(c *Config) { c.MessagingServiceSID = outService }, outService, []byte("1"), true},
		{"opted out of another sender only", func(*Config) {}, "+15550002222", []byte("1"), false},
		{"opted back in (START) clears it", func(*Config) {}, outFrom, nil, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := outNew(t, outWithConfig(c.cfg))
			if err := e.records.Put(context.Background(), nsOptOut, optOutKey(c.sender, outContact), c.value); err != nil {
				t.Fatal(err)
			}
			_, err := e.send(t, outText("hello"), "oo-1")
			if !c.refused {
				if err != nil || len(e.fake.Messages()) != 1 {
					t.Fatalf("%v, %d messages", err, len(e.fake.Messages()))
				}
				return
			}
			se := outSendError(t, err)
			if se.Kind != providers.Permanent || se.Code != "21610" || se.Reason != OptOutReason ||
				!strings.Contains(err.Error(), "contact has opted out (replied STOP)") {
				t.Fatalf("kind %v code %q reason %q", se.Kind, se.Code, se.Reason)
			}
			if e.fake.Requests() != 0 || e.trips.n.Load() != 0 {
				t.Fatalf("Twilio was called: %d requests", e.fake.Requests())
			}
		})
	}

	t.Run("an unreadable opt-out list sends nothing", func(t *testing.T) {
		t.Parallel()
		e := outNew(t)
		e.records.FailGets(nsOptOut, errors.New("db down"))
		_, err := e.send(t, outText("hello"), "oo-2")
		if se := outSendError(t, err); se.Kind != providers.Unreachable || e.fake.Requests() != 0 {
			t.Fatalf("kind %v, %d requests", se.Kind, e.fake.Requests())
		}
	})
}

func TestSendAPIURLWithAPathPrefix(t *testing.T) {
	t.Parallel()
	// api_url names a proxy in front of Twilio that serves it under a path.
	e := outNew(t, outWithConfig(func(c *Config) {
		target, err := url.Parse(c.APIURL) // the fake
		if err != nil {
			t.Fatal(err)
		}
		proxy := httptest.NewServer(http.StripPrefix("/twilio-proxy", httputil.NewSingleHostReverseProxy(target)))
		t.Cleanup(proxy.Close)
		c.APIURL = proxy.URL + "/twilio-proxy"
	}))
	if _, err := e.send(t, outText("via proxy"), "px-1"); err != nil {
		t.Fatal(err)
	}
	if len(e.fake.Messages()) != 1 {
		t.Fatal("not sent through the proxy")
	}
}

func TestSendErrorsNeverCarryTheAuthToken(t *testing.T) {
	t.Parallel()
	// Every failure path, with the token checked in the error text (send
	// does that for each call) and in the logs (outNew's cleanup).
	scripts := [][]faketwilio.Behaviour{
		{faketwilio.Code(20003)},
		{faketwilio.Code(21211)},
		{faketwilio.Throttled(), faketwilio.Throttled(), faketwilio.Throttled()},
		{faketwilio.ServiceUnavailableHTML()},
		{faketwilio.Drop()},
		{faketwilio.RecordThenDrop()},
	}
	for i, s := range scripts {
		e := outNew(t)
		e.fake.Script(faketwilio.Create, s...)
		_, err := e.send(t, outText("hello"), "sec-"+strconv.Itoa(i))
		if err != nil {
			for _, text := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
				if strings.Contains(text, outToken) {
					t.Fatalf("token in %q", text)
				}
			}
		}
	}
	e := outNew(t, outWithConfig(func(c *Config) { c.APIURL = outClosedURL(t) }))
	_, err := e.send(t, outText("hello"), "sec-dial")
	if err == nil || strings.Contains(fmt.Sprintf("%+v", err), outToken) {
		t.Fatalf("dial error: %v", err)
	}
	// The config never prints its tokens either.
	cfg := Config{AccountSID: outAccount, AuthToken: outToken, PreviousAuthToken: outToken + "x"}
	for _, text := range []string{fmt.Sprintf("%v", cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg)} {
		if strings.Contains(text, outToken) {
			t.Fatalf("config prints the token: %s", text)
		}
	}
}

// TestReconcileNeverTakesAnEarlierIdenticalMessage: "OK" was sent and
// succeeded; a second "OK" is lost on the wire before Twilio records it.
// Reconciliation must not take the first for the second: the second is
// reported retryable and, sent again, exists exactly once.
func TestReconcileNeverTakesAnEarlierIdenticalMessage(t *testing.T) {
	t.Parallel()
	for _, m := range []schema.Message{outText("OK"),
		{Type: schema.TypeAttachment, Attachment: &schema.Attachment{Type: "image", URL: "https://cdn.example.com/a.png"}}} {
		e := outNew(t)
		if _, err := e.send(t, m, "first"); err != nil {
			t.Fatal(err)
		}
		e.fake.Script(faketwilio.Create, faketwilio.Drop())
		_, err := e.send(t, m, "second")
		if se := outSendError(t, err); se.Kind != providers.Unreachable {
			t.Fatalf("the lost second message must be retryable, got %v", err)
		}
		e.settled(t, "second")
		if _, err := e.send(t, m, "second"); err != nil {
			t.Fatal(err)
		}
		if n := len(e.fake.Messages()); n != 2 {
			t.Fatalf("want both messages exactly once, Twilio holds %d", n)
		}
	}
}

func TestSendCreateAnswered21610RecordsTheOptOut(t *testing.T) {
	t.Parallel()
	e := outNew(t)
	e.fake.Script(faketwilio.Create, faketwilio.Code(21610))
	if se := outSendError(t, func() error { _, err := e.send(t, outText("hi"), "o-1"); return err }()); se.Kind != providers.Permanent {
		t.Fatalf("21610 is permanent: %v", se)
	}
	before := len(e.fake.RequestLog())
	_, err := e.send(t, outText("hi again"), "o-2")
	if se := outSendError(t, err); se.Reason != OptOutReason || len(e.fake.RequestLog()) != before {
		t.Fatalf("the next send must be refused without calling Twilio: %v", err)
	}
}

func TestSendNeverFollowsARedirect(t *testing.T) {
	t.Parallel()
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			http.Redirect(w, r, "/landing", http.StatusFound)
			return
		}
		_, _ = w.Write([]byte(`{"sid":"SMfromtheredirect00000000000000000"}`))
	}))
	t.Cleanup(redirect.Close)
	e := outNew(t, outWithConfig(func(c *Config) { c.APIURL = redirect.URL }))
	sent, err := e.send(t, outText("hi"), "r-1")
	if err == nil || slices.Contains(sent.ProviderIDs, "SMfromtheredirect00000000000000000") {
		t.Fatalf("a redirected create is not a sent message: %v %v", sent, err)
	}
}

func TestSendAPIURLWithATrailingSlash(t *testing.T) {
	t.Parallel()
	e := outNew(t, outWithConfig(func(c *Config) { c.APIURL += "/" }))
	if _, err := e.send(t, outText("slash"), "s-1"); err != nil || len(e.fake.Messages()) != 1 {
		t.Fatalf("api_url with a trailing slash must work: %v", err)
	}
}

// With our clock ahead of Twilio's (by more than reconcileSkew), a create
// whose answer was lost is still found in Twilio's list: the look-up's
// window is moved by what Twilio's Date header showed, instead of missing
// the message and sending it again. Twilio's clock ahead of ours changes
// nothing (the window only ever widens).
func TestReconcileAllowsForOurClockBeingAhead(t *testing.T) {
	t.Parallel()
	for _, twilioOffset := range []time.Duration{-30 * time.Second, 30 * time.Second} {
		e := outNew(t)
		e.fake.SetNow(func() time.Time { return time.Now().Add(twilioOffset) })
		if _, err := e.send(t, outText("earlier"), "clock-0"); err != nil { // an answer with a Date
			t.Fatal(err)
		}
		e.fake.Script(faketwilio.Create, faketwilio.RecordThenDrop())
		sent, err := e.send(t, outText("Your order has shipped"), "clock-1")
		if err != nil {
			t.Fatalf("Twilio %v from us: %v; want the lost create found", twilioOffset, err)
		}
		msgs := e.fake.Messages()
		if len(msgs) != 2 || !slices.Equal(sent.ProviderIDs, []string{msgs[1].SID}) {
			t.Fatalf("Twilio %v from us: %d messages, returned %v", twilioOffset, len(msgs), sent.ProviderIDs)
		}
	}
}

// The Date header only ever widens a look-up, and by at most maxClockAhead.
func TestTwilioClockWidensALookUpWithinBounds(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	answer := func(date string) *http.Response {
		return &http.Response{Header: http.Header{"Date": []string{date}}}
	}
	for _, tc := range []struct {
		name, date string
		want       time.Duration
	}{
		{"Twilio 30 s behind", now.Add(-30 * time.Second).Format(http.TimeFormat), 30 * time.Second},
		{"Twilio a day behind: capped", now.Add(-24 * time.Hour).Format(http.TimeFormat), maxClockAhead},
		{"Twilio ahead: no change", now.Add(time.Minute).Format(http.TimeFormat), 0},
		{"no usable Date: the last estimate stays", "yesterday", 30 * time.Second},
	} {
		c := &twilioClock{}
		c.observe(answer(now.Add(-30*time.Second).Format(http.TimeFormat)), now)
		c.observe(answer(tc.date), now)
		if got := now.Sub(c.twilioTime(now)); got != tc.want {
			t.Errorf("%s: the look-up starts %v earlier, want %v", tc.name, got, tc.want)
		}
	}
}
