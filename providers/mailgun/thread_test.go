package mailgun

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/bonychat/bonychat-adapter/internal/fakemailgun"
	"github.com/bonychat/bonychat-adapter/providers"
)

// thrLast is the latest e-mail the fake took.
func thrLast(t *testing.T, f *fakemailgun.Server) fakemailgun.Message {
	t.Helper()
	got := f.Sent()
	if len(got) == 0 {
		t.Fatal("fake took no e-mail")
	}
	return got[len(got)-1]
}

// thrHeaders checks an e-mail's threading headers ("" = absent).
func thrHeaders(t *testing.T, m fakemailgun.Message, subject, inReplyTo, references, replyTo string) {
	t.Helper()
	for field, want := range map[string]string{"subject": subject, "h:In-Reply-To": inReplyTo,
		"h:References": references, "h:Reply-To": replyTo} {
		if got := m.Get(field); got != want {
			t.Errorf("%s %s = %q, want %q", m.ID, field, got, want)
		}
		if strings.ContainsAny(m.Get(field), "\r\n") {
			t.Errorf("%s %s holds a line break: %q", m.ID, field, m.Get(field))
		}
	}
}

func thrSend(t *testing.T, e *sendEnv, contact, mID string) {
	t.Helper()
	if _, err := e.send(t, context.Background(), contact, text("hello "+mID), mID); err != nil {
		t.Fatal(err)
	}
}

func thrInbound(t *testing.T, e *sendEnv, contact, subject, id string, refs ...string) {
	t.Helper()
	if err := e.p.RecordInbound(context.Background(), contact, subject, id, refs); err != nil {
		t.Fatal(err)
	}
}

// Three round trips: each of our e-mails answers the contact's latest one,
// References grow along the whole conversation, the subject stays
// "Re: <subject>" and Reply-To stays the contact's reply address.
func TestThreadThreeRoundTrips(t *testing.T) {
	e := sendNew(t, nil)
	reply := e.p.ReplyAddress(sendContact)
	re := "Re: " + sendSubject

	thrSend(t, e, sendContact, "m1")
	thrHeaders(t, thrLast(t, e.fake), sendSubject, "", "", reply)

	thrInbound(t, e, sendContact, re, "<r1@example.com>", "<m1@mg.example.com>")
	thrSend(t, e, sendContact, "m2")
	thrHeaders(t, thrLast(t, e.fake), re, "<r1@example.com>", "<m1@mg.example.com> <r1@example.com>", reply)

	// A client that doubles the prefix, an id without brackets, and
	// references in one header value.
	thrInbound(t, e, sendContact, "RE: Re: "+sendSubject, "r2@example.com",
		"<m1@mg.example.com> <r1@example.com>\r\n <m2@mg.example.com>")
	thrSend(t, e, sendContact, "m3")
	thrHeaders(t, thrLast(t, e.fake), re, "<r2@example.com>",
		"<m1@mg.example.com> <r1@example.com> <m2@mg.example.com> <r2@example.com>", reply)

	thrInbound(t, e, sendContact, "Fwd: "+re, "<r3@example.com>", "<m3@mg.example.com>")
	thrSend(t, e, sendContact, "m4")
	thrHeaders(t, thrLast(t, e.fake), re, "<r3@example.com>",
		"<m1@mg.example.com> <r1@example.com> <m2@mg.example.com> <r2@example.com> <m3@mg.example.com> <r3@example.com>", reply)

	if n := len(e.fake.Sent()); n != 4 {
		t.Fatalf("fake took %d e-mails, want 4", n)
	}
}

// A conversation the contact starts: our first answer replies to it, under
// its subject without the prefix.
func TestThreadStartedByTheContact(t *testing.T) {
	e := sendNew(t, nil)
	thrInbound(t, e, sendContact, "Fwd:  Order   1234", "<a1@example.com>")
	thrSend(t, e, sendContact, "m1")
	thrHeaders(t, thrLast(t, e.fake), "Re: Order 1234", "<a1@example.com>", "<a1@example.com>", e.p.ReplyAddress(sendContact))
}

// An e-mail that refers to nothing of the thread and has another subject
// starts a new thread; one with the thread's subject (or a reference)
// continues it.
func TestThreadNewConversation(t *testing.T) {
	e := sendNew(t, nil)
	thrSend(t, e, sendContact, "m1")
	thrInbound(t, e, sendContact, "Re: "+sendSubject, "<r1@example.com>") // no references, same subject
	thrSend(t, e, sendContact, "m2")
	thrHeaders(t, thrLast(t, e.fake), "Re: "+sendSubject, "<r1@example.com>", "<m1@mg.example.com> <r1@example.com>", e.p.ReplyAddress(sendContact))

	thrInbound(t, e, sendContact, "Another question", "<n1@example.com>")
	thrSend(t, e, sendContact, "m3")
	thrHeaders(t, thrLast(t, e.fake), "Re: Another question", "<n1@example.com>", "<n1@example.com>", e.p.ReplyAddress(sendContact))

	thrInbound(t, e, sendContact, "Something else", "<n2@example.com>", "<m3@mg.example.com>") // a reply, renamed
	thrSend(t, e, sendContact, "m4")
	thrHeaders(t, thrLast(t, e.fake), "Re: Another question", "<n2@example.com>",
		"<n1@example.com> <m3@mg.example.com> <n2@example.com>", e.p.ReplyAddress(sendContact))
}

// Threads are per contact.
func TestThreadIsPerContact(t *testing.T) {
	e := sendNew(t, nil)
	other := "john@example=com"
	thrInbound(t, e, sendContact, "Jane's question", "<j1@example.com>")
	thrSend(t, e, other, "m1")
	thrHeaders(t, thrLast(t, e.fake), sendSubject, "", "", e.p.ReplyAddress(other))
	if e.p.ReplyAddress(other) == e.p.ReplyAddress(sendContact) {
		t.Fatal("two contacts share a reply address")
	}
}

func TestThreadReferencesAreCapped(t *testing.T) {
	e := sendNew(t, nil)
	prev := ""
	for i := range 30 {
		id := fmt.Sprintf("<r%d@example.com>", i)
		thrInbound(t, e, sendContact, "Re: Topic", id, prev)
		prev = id
	}
	thrSend(t, e, sendContact, "m1")
	refs := strings.Fields(thrLast(t, e.fake).Get("h:References"))
	if len(refs) != maxReferences || refs[0] != "<r0@example.com>" || refs[len(refs)-1] != "<r29@example.com>" {
		t.Fatalf("References = %v, want %d ids from r0, ending in r29", refs, maxReferences)
	}
	// The record keeps our e-mail too, still within the cap.
	th, err := e.p.loadThread(context.Background(), sendContact)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(th.References); n != maxReferences || th.References[0] != "<r0@example.com>" || th.References[n-1] != "<m1@mg.example.com>" {
		t.Fatalf("thread references = %v", th.References)
	}
}

// Nothing a contact's e-mail carries reaches our headers but well-formed
// ids, so no header can be injected.
func TestThreadDropsMalformedIDs(t *testing.T) {
	e := sendNew(t, nil)
	thrInbound(t, e, sendContact, "Hi\r\nBcc: evil@example.net", "<x@y>\r\nBcc: evil@example.net",
		"no-at-sign", "<a b@c>", "<ok@example.com>")
	thrSend(t, e, sendContact, "m1")
	m := thrLast(t, e.fake)
	if got := m.Get("h:In-Reply-To"); got != "<x@y>" {
		t.Errorf("In-Reply-To = %q", got)
	}
	if got := m.Get("subject"); got != "Re: Hi Bcc: evil@example.net" {
		t.Errorf("subject = %q", got)
	}
	for _, f := range []string{"h:References", "h:In-Reply-To", "subject"} {
		if strings.ContainsAny(m.Get(f), "\r\n") {
			t.Errorf("%s holds a line break: %q", f, m.Get(f))
		}
	}
	if m.Get("bcc") != "" || m.Get("h:Bcc") != "" {
		t.Error("a Bcc was injected")
	}
}

func TestStripSubject(t *testing.T) {
	for in, want := range map[string]string{
		"Re: Hello":              "Hello",
		"RE: re: Fwd: Hello":     "Hello",
		"Fw: Re[2]: Hello":       "Hello",
		"  Re :  Hello  world  ": "Hello world",
		"Regarding: Hello":       "Regarding: Hello",
		"Re:":                    "",
		"Hello: Re: x":           "Hello: Re: x",
	} {
		if got := stripSubject(in); got != want {
			t.Errorf("stripSubject(%q) = %q, want %q", in, got, want)
		}
	}
}

var thrReplyShape = regexp.MustCompile(`^reply\+[a-z2-7]{24}@mg\.example\.com$`)

func TestReplyAddressMapping(t *testing.T) {
	e := sendNew(t, nil)
	ctx := context.Background()
	long := "a.very.long.local.part.of.an.address@subdomain.of.some.example.com"
	hashed, err := EncodeContactID(ctx, e.records, long)
	if err != nil {
		t.Fatal(err)
	}
	contacts := []string{sendContact, "jane=doe@example=co", "JANE=DOE@example=com", hashed}
	seen := map[string]string{}
	for _, c := range contacts {
		addr := e.p.ReplyAddress(c)
		if !thrReplyShape.MatchString(addr) {
			t.Fatalf("ReplyAddress(%q) = %q", c, addr)
		}
		if local, _, _ := strings.Cut(addr, "@"); len(local) > 64 {
			t.Fatalf("local part of %q is too long", addr)
		}
		if addr != e.p.ReplyAddress(c) {
			t.Fatal("ReplyAddress is not stable")
		}
		if prev, dup := seen[addr]; dup {
			t.Fatalf("%q and %q share %q", prev, c, addr)
		}
		seen[addr] = c
		if _, found, err := e.p.ContactForReplyAddress(ctx, addr); err != nil || found {
			t.Fatalf("%q resolved before it was handed out (found=%v, err=%v)", addr, found, err)
		}
	}
	// Handed out by a send (to the first contacts) and by an inbound e-mail.
	thrSend(t, e, sendContact, "m1")
	thrSend(t, e, hashed, "m2")
	thrInbound(t, e, "jane=doe@example=co", "Hi", "<i1@example.co>")
	for _, c := range []string{sendContact, hashed, "jane=doe@example=co"} {
		addr := e.p.ReplyAddress(c)
		for _, form := range []string{addr, strings.ToUpper(addr), "Acme Support <" + strings.ToUpper(addr) + ">", " " + addr + " "} {
			got, found, err := e.p.ContactForReplyAddress(ctx, form)
			if err != nil || !found || got != c {
				t.Errorf("ContactForReplyAddress(%q) = %q, %v, %v; want %q", form, got, found, err, c)
			}
		}
	}
	// Sending again does not write the mapping again.
	puts := len(e.records.Puts())
	thrSend(t, e, sendContact, "m3")
	if v, _ := e.records.Value(nsReply, replyToken(sendContact)); string(v) != sendContact {
		t.Fatalf("mapping = %q", v)
	}
	if n := len(e.records.Puts()) - puts; n != 1 { // the thread record only
		t.Errorf("a repeated send wrote %d records, want 1", n)
	}
	addr := e.p.ReplyAddress(sendContact)
	token := strings.TrimPrefix(strings.Split(addr, "@")[0], "reply+")
	for _, other := range []string{
		"reply+" + token + "@other.example.com",
		"support@mg.example.com",
		"reply+" + strings.Repeat("a", 24) + "@mg.example.com",
		"reply+" + token + "x@mg.example.com",
		"reply-" + token + "@mg.example.com",
		"not an address",
	} {
		if got, found, err := e.p.ContactForReplyAddress(ctx, other); err != nil || found {
			t.Errorf("ContactForReplyAddress(%q) = %q, %v, %v; want not found", other, got, found, err)
		}
	}
	// A record that does not hash to its token is refused, not trusted.
	if err := e.records.Put(ctx, nsReply, token, []byte("someone@else=com")); err != nil {
		t.Fatal(err)
	}
	if _, found, err := e.p.ContactForReplyAddress(ctx, addr); err == nil || found {
		t.Errorf("a tampered record resolved (found=%v, err=%v)", found, err)
	}
	e.records.FailGets("", errors.New("disk on fire"))
	if _, _, err := e.p.ContactForReplyAddress(ctx, addr); err == nil {
		t.Error("a failing store was not reported")
	}
}

// A failing store stops the send before anything goes out (retryable);
// the e-mail must not go out with a reply address nobody can trace back.
func TestThreadStoreFailureSendsNothing(t *testing.T) {
	e := sendNew(t, nil)
	e.records.FailPuts("", errors.New("disk full"))
	_, err := e.send(t, context.Background(), sendContact, text("hi"), "m1")
	if se := sendKind(t, err); se.Kind != providers.Unreachable {
		t.Fatalf("kind = %v (%v), want unreachable", se.Kind, err)
	}
	if n := e.fake.Requests(); n != 0 {
		t.Fatalf("fake saw %d requests", n)
	}
	if err := e.p.RecordInbound(context.Background(), sendContact, "Hi", "<i@x>", nil); err == nil {
		t.Fatal("RecordInbound hid a failing store")
	}
}

// Once the reply address is stored, a thread update that fails after the
// e-mail went out does not fail the send (that would send it again).
func TestThreadUpdateFailureAfterSendIsNotAFailure(t *testing.T) {
	e := sendNew(t, nil)
	thrSend(t, e, sendContact, "m1")
	e.records.FailPuts("", errors.New("disk full"))
	thrSend(t, e, sendContact, "m2")
	if n := len(e.fake.Sent()); n != 2 {
		t.Fatalf("fake took %d e-mails, want 2", n)
	}
	if !strings.Contains(e.logs.String(), "thread was not updated") {
		t.Errorf("no warning logged: %s", e.logs.String())
	}
}

// A damaged thread record costs threading, not the message.
func TestThreadDamagedRecordStartsAnew(t *testing.T) {
	e := sendNew(t, nil)
	if err := e.records.Put(context.Background(), nsThread, e.p.threadKey(sendContact), []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	thrSend(t, e, sendContact, "m1")
	thrHeaders(t, thrLast(t, e.fake), sendSubject, "", "", e.p.ReplyAddress(sendContact))
	if !strings.Contains(e.logs.String(), "thread record unreadable") {
		t.Errorf("no warning logged: %s", e.logs.String())
	}
}

// Threads are per channel: a contact's conversation with one channel does
// not thread the e-mails another channel (another team, same store) sends
// to the same address, nor show it that conversation's subject and ids.
func TestThreadsArePerChannel(t *testing.T) {
	support := sendNew(t, nil)
	thrInbound(t, support, sendContact, "My password reset", "<support-1@mail.example.org>")

	sales := sendNew(t, nil) // another channel on the same store
	sales.p.deps.ChannelID, sales.p.deps.Records, sales.records = "mail02", support.records, support.records
	thrSend(t, sales, sendContact, "m-sales-1")
	thrHeaders(t, thrLast(t, sales.fake), sendSubject, "", "", sales.p.ReplyAddress(sendContact))

	thrSend(t, support, sendContact, "m-support-1")
	thrHeaders(t, thrLast(t, support.fake), "Re: My password reset", "<support-1@mail.example.org>",
		"<support-1@mail.example.org>", support.p.ReplyAddress(sendContact))
}
