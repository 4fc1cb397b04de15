package mailgun

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bonychat/bonychat-adapter/internal/testkit"
	"github.com/bonychat/bonychat-adapter/providers"
	"github.com/bonychat/bonychat-adapter/schema"
)

// inSigningKey signed the forwards in testdata/mailgun.
const inSigningKey = "key-inbound-test"

// inMediaURL is where the test media sink links saved files.
const inMediaURL = "https://adapter.example.com"

func inProvider(t *testing.T) (*Provider, *testkit.Media, *testkit.Records) {
	t.Helper()
	media, rec := &testkit.Media{BaseURL: inMediaURL}, testkit.NewRecords()
	cfg := Config{Domain: "mg.example.com", APIKey: "key-1", WebhookSigningKey: inSigningKey,
		From: "Acme Support <support@mg.example.com>", Subject: "Your conversation with Acme"}
	p, err := New(cfg, providers.Deps{ChannelID: "mail01", IDType: schema.IDTypeCustom, Media: media, Records: rec})
	if err != nil {
		t.Fatal(err)
	}
	return p, media, rec
}

func inFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "mailgun", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// inRequest is a POST of a testdata forward: name.form is urlencoded, name.txt
// multipart with its Content-Type in name.ct.
func inRequest(t *testing.T, name string) *http.Request {
	t.Helper()
	body := inFile(t, name)
	ctype := "application/x-www-form-urlencoded"
	if base, ok := strings.CutSuffix(name, ".txt"); ok {
		ctype = strings.TrimSpace(string(inFile(t, base+".ct")))
	}
	r := httptest.NewRequest(http.MethodPost, "/mailgun/mail01/inbound", bytes.NewReader(body))
	r.Header.Set("Content-Type", ctype)
	return r
}

func inParse(t *testing.T, name string) *Forward {
	t.Helper()
	f, err := ParseForward(inRequest(t, name), 25<<20)
	if err != nil {
		t.Fatalf("ParseForward(%s): %v", name, err)
	}
	return f
}

func inEvents(t *testing.T, p *Provider, f *Forward, newThread bool, business ...string) providers.Inbound {
	t.Helper()
	in, err := p.InboundEvents(context.Background(), f, newThread, business)
	if err != nil {
		t.Fatalf("InboundEvents: %v", err)
	}
	return in
}

// inCheckValid posts the events through the protocol's own checks.
func inCheckValid(t *testing.T, in providers.Inbound) {
	t.Helper()
	if !inIDPattern.MatchString(in.ContactID) {
		t.Errorf("contactId %q is not a custom ID", in.ContactID)
	}
	seen := map[string]bool{}
	for _, e := range schema.FitEvents(in.Events) {
		if len(e.MID) == 0 || len(e.MID) > 50 {
			t.Errorf("mId %q: length %d", e.MID, len(e.MID))
		}
		if seen[e.MID] {
			t.Errorf("mId %q used twice", e.MID)
		}
		seen[e.MID] = true
		if e.Timestamp <= 0 {
			t.Errorf("event %q has no timestamp", e.MID)
		}
	}
}

var inIDPattern = regexp.MustCompile(`^[A-Za-z0-9_=+/@]{1,50}$`)

func TestParseForwardMultipart(t *testing.T) {
	f := inParse(t, "forward-multipart.txt")
	if err := Verify(inSigningKey, f.Timestamp, f.Token, f.Signature, time.Unix(1795000100, 0), time.Hour); err != nil {
		t.Fatalf("the testdata's signature fields do not verify: %v", err)
	}
	if f.From != "Jane Doe <Jane.Doe@example.org>" || f.Recipient != "support@mg.example.com" ||
		f.Sender != "bounces+SRS=x1y2z=AB@example.org" || f.Subject != "Invoice #4711 – wrong address" {
		t.Errorf("envelope: %+v", f)
	}
	if f.MessageID != "CAF=kx9Qm2Lw7Yt0pVz+4aH3nRb8sE1uJc6dG5fT@mail.gmail.com" {
		t.Errorf("MessageID = %q", f.MessageID)
	}
	if !slices.Equal(f.To, []string{"support@mg.example.com"}) {
		t.Errorf("To = %q", f.To)
	}
	if want := "Hello,\n\nthe invoice shows my old address. Scan and notes attached.\n\n[image: logo]\n\nJane"; f.Text != want {
		t.Errorf("Text = %q, want %q", f.Text, want)
	}
	want := []struct{ name, ctype, cid, prefix string }{
		{"invoice-4711.pdf", "application/pdf", "", "%PDF-1.4"},
		{"notes.txt", "text/plain", "", "New address:\nMusterstraße 1"},
		{"logo.png", "image/png", "ii_logo01", "\x89PNG\r\n\x1a\n"},
	}
	if len(f.Attachments) != len(want) {
		t.Fatalf("%d attachments, want %d: %+v", len(f.Attachments), len(want), f.Attachments)
	}
	for i, w := range want {
		a := f.Attachments[i]
		if a.FileName != w.name || a.ContentType != w.ctype || a.ContentID != w.cid || !bytes.HasPrefix(a.Body, []byte(w.prefix)) {
			t.Errorf("attachment %d = %q %q cid %q body %q, want %+v", i+1, a.FileName, a.ContentType, a.ContentID, a.Body, w)
		}
	}
	if len(f.Attachments[2].Body) != 67 {
		t.Errorf("the PNG has %d bytes, want 67 (binary part intact)", len(f.Attachments[2].Body))
	}
}

func TestParseForwardUrlencoded(t *testing.T) {
	f := inParse(t, "forward-urlencoded.form")
	if err := Verify(inSigningKey, f.Timestamp, f.Token, f.Signature, time.Unix(1795000100, 0), time.Hour); err != nil {
		t.Fatalf("the testdata's signature fields do not verify: %v", err)
	}
	if f.Text != "Hi, are you open on Sunday?" {
		t.Errorf("Text = %q (stripped-text, without the signature)", f.Text)
	}
	if f.MessageID != "20261119101500.GA1234@example.net" || f.InReplyTo != "" || f.References != nil {
		t.Errorf("ids: %q %q %q", f.MessageID, f.InReplyTo, f.References)
	}
	if f.Attachments != nil {
		t.Errorf("attachments: %+v", f.Attachments)
	}
}

func TestParseForwardReplyUsesStrippedTextAndThreadHeaders(t *testing.T) {
	f := inParse(t, "forward-reply.form")
	if f.Text != "Thanks, that fixed it!" {
		t.Errorf("Text = %q, want the reply without quoted history or signature", f.Text)
	}
	if f.MessageID != "CAF=reply0001Qm2Lw7Yt0pVz@mail.gmail.com" {
		t.Errorf("MessageID = %q", f.MessageID)
	}
	if f.InReplyTo != "01JD2XK8Q3W5Y7Z9A1B3C5D7E9@mg.example.com" {
		t.Errorf("InReplyTo = %q", f.InReplyTo)
	}
	want := []string{"CAF=kx9Qm2Lw7Yt0pVz+4aH3nRb8sE1uJc6dG5fT@mail.gmail.com", "01JD2XK8Q3W5Y7Z9A1B3C5D7E9@mg.example.com"}
	if !slices.Equal(f.References, want) {
		t.Errorf("References = %q, want %q", f.References, want)
	}
}

func TestParseForwardFallsBackToBodyPlain(t *testing.T) {
	form := url.Values{"from": {"a@example.com"}, "body-plain": {"line one\r\n> quoted\r\n"}, "stripped-text": {"  \r\n"}}
	f := inParseForm(t, form)
	if f.Text != "line one\n> quoted" {
		t.Errorf("Text = %q", f.Text)
	}
}

func TestParseForwardHTMLOnly(t *testing.T) {
	f := inParse(t, "forward-html-only.form")
	want := "Hello there,\n\nIs R&D <open>?\nCafé €5"
	if f.Text != want {
		t.Errorf("Text = %q, want %q", f.Text, want)
	}
	if f.MessageID != "html-only-1@example.com" {
		t.Errorf("MessageID = %q", f.MessageID)
	}
}

func TestHTMLToText(t *testing.T) {
	for in, want := range map[string]string{
		"":                                 "",
		"plain":                            "plain",
		"a<br>b<br/>c<BR />d":              "a\nb\nc\nd",
		"<p>one</p><p>two</p>":             "one\n\ntwo",
		"x &lt;y&gt; &amp;&quot;z&#39;":    `x <y> &"z'`,
		"<style>b{}</style>t<!-- c -->":    "t",
		"a\n   b":                          "a b",
		"<div>1</div>\n\n\n\n<div>2</div>": "1\n\n2",
		`see <a href="https://x.example/a?b=1&amp;c=2">the <b>docs</b></a>.`: "see the docs (https://x.example/a?b=1&c=2).",
		`<a href='https://x.example/'>https://x.example</a>`:                 "https://x.example/",
		`<a href="mailto:a@x">write</a>`:                                     "write",
	} {
		if got := htmlToText(in); got != want {
			t.Errorf("htmlToText(%q) = %q, want %q", in, got, want)
		}
	}
}

func inParseForm(t *testing.T, form url.Values) *Forward {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/inbound", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	f, err := ParseForward(r, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestParseForwardFallsBackToTopLevelHeaders(t *testing.T) {
	f := inParseForm(t, url.Values{"from": {"a@example.com"}, "Message-Id": {"<top@example.com>"},
		"In-Reply-To": {"<parent@example.com>"}, "References": {"<r1@x> <r2@x>"}})
	if f.MessageID != "top@example.com" || f.InReplyTo != "parent@example.com" || !slices.Equal(f.References, []string{"r1@x", "r2@x"}) {
		t.Errorf("ids: %q %q %q", f.MessageID, f.InReplyTo, f.References)
	}
}

func TestParseForwardIgnoresTheQueryString(t *testing.T) {
	r := httptest.NewRequest(http.MethodPost, "/inbound?token=forged&from=evil@example.com",
		strings.NewReader(url.Values{"from": {"a@example.com"}, "token": {"real"}}.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	f, err := ParseForward(r, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if f.Token != "real" || f.From != "a@example.com" {
		t.Errorf("token %q from %q", f.Token, f.From)
	}
}

func TestParseForwardRefusesBadInput(t *testing.T) {
	t.Run("too large", func(t *testing.T) {
		r := inRequest(t, "forward-multipart.txt")
		_, err := ParseForward(r, 1000)
		if !errors.Is(err, ErrForwardTooLarge) {
			t.Fatalf("err = %v, want ErrForwardTooLarge", err)
		}
	})
	t.Run("too large urlencoded", func(t *testing.T) {
		_, err := ParseForward(inRequest(t, "forward-urlencoded.form"), 100)
		if !errors.Is(err, ErrForwardTooLarge) {
			t.Fatalf("err = %v, want ErrForwardTooLarge", err)
		}
	})
	t.Run("message-headers not an array", func(t *testing.T) {
		// Not worth losing the mail: noted, and the header fields are used.
		f := inParseForm(t, url.Values{"message-headers": {`{"a":1}`}, "Message-Id": {"<m@x>"}})
		if f.MessageID != "m@x" || len(f.Problems) != 1 || !strings.Contains(f.Problems[0], "message-headers") {
			t.Fatalf("MessageID %q problems %q", f.MessageID, f.Problems)
		}
	})
	t.Run("body-mime not an e-mail", func(t *testing.T) {
		r := httptest.NewRequest(http.MethodPost, "/inbound", strings.NewReader(url.Values{"body-mime": {"no headers here"}}.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if _, err := ParseForward(r, 1<<20); err == nil || errors.Is(err, ErrForwardInterrupted) {
			t.Fatalf("err = %v, want a malformed body-mime", err)
		}
	})
	t.Run("broken multipart", func(t *testing.T) {
		r := httptest.NewRequest(http.MethodPost, "/inbound", strings.NewReader("--x\r\nnot a part"))
		r.Header.Set("Content-Type", "multipart/form-data; boundary=x")
		if _, err := ParseForward(r, 1<<20); err == nil || errors.Is(err, ErrForwardTooLarge) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestParseForwardAttachmentsInNumberOrder(t *testing.T) {
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	w.WriteField("from", "a@example.com")
	w.WriteField("content-id-map", `{"<img10@x>":"attachment-10"}`)
	for _, n := range []int{10, 2, 1} {
		fw, _ := w.CreateFormFile(fmt.Sprintf("attachment-%d", n), fmt.Sprintf("f%d.bin", n))
		fmt.Fprintf(fw, "body %d", n)
	}
	fw, _ := w.CreateFormFile("unrelated", "x.bin")
	fw.Write([]byte("no"))
	w.Close()
	r := httptest.NewRequest(http.MethodPost, "/inbound", &buf)
	r.Header.Set("Content-Type", w.FormDataContentType())
	f, err := ParseForward(r, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, a := range f.Attachments {
		names = append(names, a.FileName+"/"+a.ContentType+"/"+a.ContentID)
	}
	want := []string{"f1.bin/application/octet-stream/", "f2.bin/application/octet-stream/", "f10.bin/application/octet-stream/img10@x"}
	if !slices.Equal(names, want) {
		t.Errorf("attachments %q, want %q", names, want)
	}
}

func TestInboundEventsMultipart(t *testing.T) {
	p, media, _ := inProvider(t)
	f := inParse(t, "forward-multipart.txt")
	in := inEvents(t, p, f, true)
	inCheckValid(t, in)

	if in.ContactID != "jane=doe@example=org" {
		t.Errorf("ContactID = %q", in.ContactID)
	}
	if in.DedupeKey != f.MessageID {
		t.Errorf("DedupeKey = %q", in.DedupeKey)
	}
	if c := in.Contact; c == nil || c.Email != "Jane.Doe@example.org" || c.FirstName != "Jane" || c.LastName != "Doe" {
		t.Errorf("Contact = %+v", in.Contact)
	}
	mid := MessageMID(f.MessageID, f.Token)
	if len(in.Events) != 4 {
		t.Fatalf("%d events: %+v", len(in.Events), in.Events)
	}
	text := in.Events[0]
	if text.Type != schema.EventMessage || text.MID != mid || text.Timestamp != 1795000000000 || text.Message.Type != schema.TypeText {
		t.Errorf("text event %+v", text)
	}
	if want := "Subject: Invoice #4711 – wrong address\n\n" + f.Text; *text.Message.Text != want {
		t.Errorf("text %q, want %q", *text.Message.Text, want)
	}
	wantAtt := []struct{ kind, name, ctype string }{
		{"file", "invoice-4711.pdf", "application/pdf"},
		{"file", "notes.txt", "text/plain"},
		{"image", "logo.png", "image/png"},
	}
	for i, w := range wantAtt {
		e := in.Events[i+1]
		a := e.Message.Attachment
		if e.Type != schema.EventMessage || e.MID != fmt.Sprintf("%s-%d", mid, i+1) || e.Message.Type != schema.TypeAttachment || a == nil {
			t.Fatalf("event %d: %+v", i+1, e)
		}
		if a.Type != w.kind || a.FileName != w.name || a.MimeType != w.ctype || a.URL != fmt.Sprintf("%s/media/%d/%s", inMediaURL, i+1, w.name) {
			t.Errorf("attachment %d: %+v, want %+v", i+1, a, w)
		}
		if s := media.Saved()[i]; s.Name != w.name || s.ContentType != w.ctype || !bytes.Equal(s.Body, f.Attachments[i].Body) {
			t.Errorf("saved %d: %q %q", i+1, s.Name, s.ContentType)
		}
	}
}

func TestInboundEventsSubjectOnlyOnANewThread(t *testing.T) {
	p, _, _ := inProvider(t)
	f := inParse(t, "forward-reply.form")
	in := inEvents(t, p, f, false)
	inCheckValid(t, in)
	if len(in.Events) != 1 || *in.Events[0].Message.Text != "Thanks, that fixed it!" {
		t.Fatalf("events %+v", in.Events)
	}
	// "Doe, Jane": last name first.
	if c := in.Contact; c.FirstName != "Jane" || c.LastName != "Doe" || c.Email != "jane.doe@example.org" {
		t.Errorf("contact %+v", c)
	}
	in = inEvents(t, p, &Forward{From: "a@example.com", Subject: "Hello", MessageID: "x@y", Timestamp: "1"}, true)
	if got := *in.Events[0].Message.Text; got != "Subject: Hello" {
		t.Errorf("subject-only text %q", got)
	}
	in = inEvents(t, p, &Forward{From: "a@example.com", MessageID: "x@y", Timestamp: "1"}, true)
	if len(in.Events) != 1 || *in.Events[0].Message.Text != "(empty e-mail)" {
		t.Errorf("empty mail: %+v", in.Events)
	}
}

func TestInboundEventsURLEncodedContact(t *testing.T) {
	p, _, _ := inProvider(t)
	in := inEvents(t, p, inParse(t, "forward-urlencoded.form"), true)
	inCheckValid(t, in)
	if in.ContactID != "bob@example=net" {
		t.Errorf("ContactID %q", in.ContactID)
	}
	if c := in.Contact; c.FirstName != "Robert" || c.LastName != "'Bob' Smith" || c.Email != "bob@example.net" {
		t.Errorf("contact %+v", c)
	}
	if got := *in.Events[0].Message.Text; got != "Subject: Opening hours\n\nHi, are you open on Sunday?" {
		t.Errorf("text %q", got)
	}
}

func TestSplitName(t *testing.T) {
	long := strings.Repeat("é", 60)
	for in, want := range map[string][2]string{
		"":                       {"", ""},
		"Jane":                   {"Jane", ""},
		"Jane Doe":               {"Jane", "Doe"},
		"  Jane   van  der Berg": {"Jane", "van der Berg"},
		"Doe, Jane":              {"Jane", "Doe"},
		`"Jane Doe"`:             {"Jane", "Doe"},
		"jane@example.com":       {"", ""},
		long + " " + long:        {strings.Repeat("é", 50), strings.Repeat("é", 50)},
	} {
		f, l := inboundSplitName(in)
		if f != want[0] || l != want[1] {
			t.Errorf("inboundSplitName(%q) = %q, %q; want %q", in, f, l, want)
		}
	}
}

func TestInboundEventsLongAddressHasNoEmail(t *testing.T) {
	p, _, rec := inProvider(t)
	addr := "jane.alexandra.doe.marketing.department@subsidiary.example.org" // 62 characters
	in := inEvents(t, p, &Forward{From: "Jane <" + addr + ">", MessageID: "m@x", Timestamp: "1795000000", Text: "hi"}, false)
	inCheckValid(t, in)
	if in.Contact.Email != "" || in.Contact.FirstName != "Jane" {
		t.Errorf("contact %+v", in.Contact)
	}
	if got, err := DecodeContactID(context.Background(), rec, in.ContactID); err != nil || got != addr {
		t.Errorf("DecodeContactID(%q) = %q, %v", in.ContactID, got, err)
	}
	exactly50 := strings.Repeat("a", 38) + "@example.org"
	in = inEvents(t, p, &Forward{From: exactly50, MessageID: "m@x", Text: "hi"}, false)
	if in.Contact.Email != exactly50 {
		t.Errorf("a 50-character address: email %q", in.Contact.Email)
	}
}

func TestMessageMID(t *testing.T) {
	long := "CAF=kx9Qm2Lw7Yt0pVz+4aH3nRb8sE1uJc6dG5fT.0123456789.abcdefghij.klmnopqrst@mail.gmail.com"
	a, b := MessageMID(long, "t1"), MessageMID(long, "t2")
	if a != b {
		t.Errorf("the mId depends on the token: %q %q", a, b)
	}
	if a != MessageMID(long, "") {
		t.Error("not stable")
	}
	if len(a) != 26 || !inIDPattern.MatchString(a) {
		t.Errorf("mId %q: length %d or characters", a, len(a))
	}
	// Pinned, so a change of the derivation (which would repost old mail
	// under new ids) is noticed.
	if got := MessageMID("20261119101500.GA1234@example.net", ""); got != inPinnedMID {
		t.Errorf("MessageMID = %q, want %q", got, inPinnedMID)
	}
	if MessageMID("a@x", "") == MessageMID("b@x", "") {
		t.Error("two Message-Ids share an mId")
	}
	if MessageMID("", "tok") == MessageMID("", "tok2") || MessageMID("", "tok") == MessageMID("tok", "") {
		t.Error("token fallback collides")
	}
	if s := schema.SuffixID(a, 20); s != a+"-20" {
		t.Errorf("suffix was not kept whole: %q", s)
	}
}

const inPinnedMID = "mgykbDuJog4KYNUp8tA+K15o7V"

func TestInboundEventsLongTextAttachmentsDoNotCollide(t *testing.T) {
	p, _, _ := inProvider(t)
	text := strings.Repeat("word ", 3000) // 15,000 characters: three parts
	f := &Forward{From: "a@example.com", MessageID: "m@x", Timestamp: "1795000000", Text: text,
		Attachments: []ForwardAttachment{{FileName: "", ContentType: "image/jpeg", Body: []byte("j")}}}
	in := inEvents(t, p, f, false)
	inCheckValid(t, in)
	mid := MessageMID("m@x", "")
	if att := in.Events[len(in.Events)-1]; att.MID != mid+"-4" || att.Message.Attachment.FileName != "attachment-1.jpg" ||
		att.Message.Attachment.Type != "image" {
		t.Errorf("attachment event %+v %+v", att, att.Message.Attachment)
	}
	var mids []string
	for _, e := range schema.FitEvents(in.Events) {
		mids = append(mids, e.MID)
	}
	if want := []string{mid + "-1", mid + "-2", mid + "-3", mid + "-4"}; !slices.Equal(mids, want) {
		t.Errorf("mIds %q, want %q", mids, want)
	}
}

func TestInboundEventsEcho(t *testing.T) {
	p, _, _ := inProvider(t)
	f := &Forward{From: "Agent Smith <agent@acme.example>", To: []string{"client.one@example.org", "Support@acme.example"},
		Cc: []string{"support@mg.example.com"}, MessageID: "echo@acme.example", Timestamp: "1795000000", Text: "We shipped it.",
		SenderVerified: true}
	for _, business := range [][]string{{"acme.example"}, {"@ACME.example"}, {"agent@acme.example"}, {"other@x", "Agent@Acme.Example"}} {
		in := inEvents(t, p, f, false, business...)
		inCheckValid(t, in)
		if in.ContactID != "client=one@example=org" || in.Contact.Email != "client.one@example.org" || in.Contact.FirstName != "" {
			t.Errorf("business %q: contact %q %+v", business, in.ContactID, in.Contact)
		}
		for _, e := range in.Events {
			if e.Type != schema.EventMessageEcho {
				t.Errorf("business %q: event type %q", business, e.Type)
			}
		}
	}
	// Business and channel addresses are skipped, To before Cc.
	f2 := *f
	f2.To, f2.Cc = []string{"Support@acme.example", "support@mg.example.com"}, []string{"cc.person@example.org"}
	if in := inEvents(t, p, &f2, false, "acme.example"); in.ContactID != "cc=person@example=org" || in.Events[0].Type != schema.EventMessageEcho {
		t.Errorf("skipping business addresses: %q %q", in.ContactID, in.Events[0].Type)
	}
	// Not a business sender: a message from the agent's address as a contact.
	in := inEvents(t, p, f, false, "acme.example.com", "agent@acme.example.org")
	if in.Events[0].Type != schema.EventMessage || in.ContactID != "agent@acme=example" {
		t.Errorf("non-business: %q %q", in.Events[0].Type, in.ContactID)
	}
	// A business mail only to business or channel addresses names no contact.
	f.To = []string{"support@acme.example"}
	if _, err := p.InboundEvents(context.Background(), f, false, []string{"acme.example"}); !errors.Is(err, ErrInvalidAddress) {
		t.Errorf("err = %v", err)
	}
}

// Anyone can put a business address in From: without Mailgun's word for
// the sender, such a mail is not the team's message (no echo into the
// contact's conversation) but a message from that address, headed by a
// warning.
func TestInboundEventsUnverifiedBusinessSenderIsNoEcho(t *testing.T) {
	p, _, _ := inProvider(t)
	f := &Forward{From: "Agent Smith <agent@acme.example>", To: []string{"victim@example.org"},
		MessageID: "forged@acme.example", Timestamp: "1795000000", Text: "Please pay to account 123."}
	in := inEvents(t, p, f, false, "acme.example")
	inCheckValid(t, in)
	if in.ContactID != "agent@acme=example" || len(in.Events) != 1 || in.Events[0].Type != schema.EventMessage {
		t.Fatalf("contact %q, events %+v: want a message from the claimed address", in.ContactID, in.Events)
	}
	if got := hdText(in.Events[0].Message); !strings.HasPrefix(got, unverifiedBusinessNote) || !strings.HasSuffix(got, "account 123.") {
		t.Fatalf("text %q: want the warning, then the mail", got)
	}
}

// Mailgun's SPF result counts for the From address only when the envelope
// sender it covers is on that address's domain, and only Mailgun's own
// X-Mailgun-Spf (appended after the mail's headers) is read.
func TestForwardSenderVerified(t *testing.T) {
	headers := func(spf ...string) string {
		pairs := [][2]string{{"From", "Agent <agent@acme.example>"}}
		for _, v := range spf {
			pairs = append(pairs, [2]string{"X-Mailgun-Spf", v})
		}
		b, _ := json.Marshal(pairs)
		return string(b)
	}
	cases := []struct {
		name, sender, headers string
		want                  bool
	}{
		{"SPF pass, envelope on the From domain", "agent@acme.example", headers("Pass"), true},
		{"SPF pass, envelope on a subdomain", "bounce@mail.acme.example", headers("Pass"), true},
		{"SPF pass for another domain's envelope", "x@attacker.example", headers("Pass"), false},
		{"SPF neutral", "agent@acme.example", headers("Neutral"), false},
		{"a Pass the sender wrote before Mailgun's Fail", "agent@acme.example", headers("Pass", "Fail"), false},
		{"no SPF result", "agent@acme.example", headers(), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := inParseForm(t, url.Values{"sender": {tc.sender}, "message-headers": {tc.headers}, "body-plain": {"hi"}})
			if f.SenderVerified != tc.want {
				t.Fatalf("SenderVerified = %v, want %v", f.SenderVerified, tc.want)
			}
		})
	}
}

func TestInboundEventsErrors(t *testing.T) {
	p, media, rec := inProvider(t)
	if _, err := p.InboundEvents(context.Background(), &Forward{From: "not an address"}, false, nil); !errors.Is(err, ErrInvalidAddress) {
		t.Errorf("bad From: %v", err)
	}
	media.Fail(errors.New("disk full"))
	f := &Forward{From: "a@example.com", Attachments: []ForwardAttachment{{FileName: "a.txt", ContentType: "text/plain"}}}
	if _, err := p.InboundEvents(context.Background(), f, false, nil); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("media failure: %v", err)
	}
	rec.FailPuts("", errors.New("db down"))
	long := strings.Repeat("x", 60) + "@example.org"
	if _, err := p.InboundEvents(context.Background(), &Forward{From: long, Text: "hi"}, false, nil); err == nil || !strings.Contains(err.Error(), "db down") {
		t.Errorf("record failure: %v", err)
	}
}

// InboundEvents lists the links of the attachments it saved in Media (not
// the notes standing for unreadable ones), for Ingest to remove if it does
// not store the events.
func TestInboundEventsListsTheSavedMediaForIngest(t *testing.T) {
	p, media, _ := inProvider(t)
	f := &Forward{From: "a@example.com", Text: "see attached", Attachments: []ForwardAttachment{
		{FileName: "a.pdf", ContentType: "application/pdf", Body: []byte("%PDF-1.4")},
		{FileName: "lost.png", ContentType: "image/png", Problem: "it could not be read"},
		{FileName: "b.txt", ContentType: "text/plain", Body: []byte("b")},
	}}
	in := inEvents(t, p, f, false)
	var links []string
	for _, e := range in.Events {
		if e.Message.Attachment != nil {
			links = append(links, e.Message.Attachment.URL)
		}
	}
	if len(links) != 2 || !slices.Equal(in.Media, links) || len(media.Discarded()) != 0 {
		t.Fatalf("Media %q, discarded %q; want the 2 saved links %q, none discarded", in.Media, media.Discarded(), links)
	}
}

// An attachment that cannot be saved fails the mail (the handler answers
// 503, Mailgun retries): the attachments saved before it are removed, as
// nothing will link them and the retry saves its own.
func TestInboundEventsRemovesWhatItSavedWhenALaterAttachmentFails(t *testing.T) {
	p, media, _ := inProvider(t)
	media.FailAfter(2, errors.New("disk full"))
	f := &Forward{From: "a@example.com", Text: "three files", Attachments: []ForwardAttachment{
		{FileName: "a.pdf", ContentType: "application/pdf", Body: []byte("%PDF-1.4")},
		{FileName: "b.txt", ContentType: "text/plain", Body: []byte("b")},
		{FileName: "c.txt", ContentType: "text/plain", Body: []byte("c")},
	}}
	if _, err := p.InboundEvents(context.Background(), f, false, nil); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("InboundEvents: %v, want the media store's error", err)
	}
	want := []string{inMediaURL + "/media/1/a.pdf", inMediaURL + "/media/2/b.txt"}
	if got := media.Discarded(); !slices.Equal(got, want) {
		t.Fatalf("discarded %q, want the two saved before the failure %q", got, want)
	}
}

func TestInboundEventsDedupeFallsBackToToken(t *testing.T) {
	p, _, _ := inProvider(t)
	in := inEvents(t, p, &Forward{From: "a@example.com", Token: "tok", Text: "x", Timestamp: "bad"}, false)
	if in.DedupeKey != "tok" || in.Events[0].MID != MessageMID("", "tok") {
		t.Errorf("%+v", in)
	}
	if in.Events[0].Timestamp <= 0 {
		t.Error("an unparseable timestamp gives no event time")
	}
}

func TestParseFromIsLenient(t *testing.T) {
	for from, want := range map[string][2]string{
		"Jane Doe <jane@example.org>":       {"Jane Doe", "jane@example.org"},
		"=?UTF-8?B?SsO8cmdlbg==?= <j@x.de>": {"Jürgen", "j@x.de"},
		"jane@example.org (Jane Doe)":       {"Jane Doe", "jane@example.org"},
		"Jane [Acme] <jane@x.org>":          {"Jane [Acme]", "jane@x.org"},
		"Jane Doe <jane@example.org":        {"Jane Doe", "jane@example.org"},
		"Jane Doe jane@example.org":         {"", "jane@example.org"},
		`"Doe, Jane" <jane@example.org>`:    {"Doe, Jane", "jane@example.org"},
	} {
		a, err := inboundFrom(from)
		if err != nil || a.Name != want[0] || a.Address != want[1] {
			t.Errorf("inboundFrom(%q) = %+v, %v; want %q", from, a, err, want)
		}
	}
	for _, from := range []string{"", "Jane Doe", "<>"} {
		if _, err := inboundFrom(from); !errors.Is(err, ErrInvalidAddress) {
			t.Errorf("inboundFrom(%q): err = %v", from, err)
		}
	}
}

func TestInboundFileName(t *testing.T) {
	for _, tc := range []struct {
		a    ForwardAttachment
		want string
	}{
		{ForwardAttachment{FileName: "scan.pdf", ContentType: "application/pdf"}, "scan.pdf"},
		{ForwardAttachment{FileName: "README", ContentType: "text/plain"}, "README.txt"},
		{ForwardAttachment{FileName: "data", ContentType: "application/x-unknown"}, "data"},
		{ForwardAttachment{ContentType: "image/png"}, "attachment-3.png"},
		{ForwardAttachment{ContentType: "application/x-unknown"}, "attachment-3.bin"},
	} {
		if got := inboundFileName(tc.a, 3); got != tc.want {
			t.Errorf("inboundFileName(%+v) = %q, want %q", tc.a, got, tc.want)
		}
	}
}
