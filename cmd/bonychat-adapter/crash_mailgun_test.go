package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bonychat/bonychat-adapter/internal/fakemailgun"
)

// The fake Mailgun domain of the binary's tests, its keys, and a channel
// on it writing to one contact.
const (
	mailgunDomain     = "mg.example.com"
	mailgunAPIKey     = "key-mailgun-crash-0123456789abcdef"
	mailgunSigningKey = "signing-mailgun-crash-fedcba9876543210"
	mailgunFrom       = "Acme Support <support@mg.example.com>"

	mailCrashChannel = "mail"
	mailCrashToken   = "mail-crash-channel-token-8d2b"
	mailCrashContact = "jane@example=com" // jane@example.com, as a custom ID
	mailCrashAddress = "jane@example.com"
	// mailCrashWait is outbound.wait: /message is still waiting when the
	// server is killed (that takes milliseconds), and a repeat of it with
	// its Idempotency-Key waits a second longer than this for the answer
	// the killed request never stored.
	mailCrashWait = 3 * time.Second
)

// mailCrashBody is the /message body of the Mailgun crash tests.
var mailCrashBody = fmt.Sprintf(`{"channelId":%q,"contactId":%q,"message":{"type":"text","text":"Your order has shipped"}}`,
	mailCrashChannel, mailCrashContact)

// mailgunChannelYAML is a channels: entry for a Mailgun channel against
// the fake at mailgunURL; reconcileWait "" leaves reconcile_wait out.
func mailgunChannelYAML(id, token, mailgunURL, reconcileWait string) string {
	y := fmt.Sprintf(`  - id: %q
    token: %q
    id_type: custom
    provider: mailgun
    mailgun:
      domain: %q
      api_key: %q
      webhook_signing_key: %q
      api_url: %q
      from: %q
      subject: "Your conversation with Acme"
`, id, token, mailgunDomain, mailgunAPIKey, mailgunSigningKey, mailgunURL, mailgunFrom)
	if reconcileWait != "" {
		y += "      reconcile_wait: " + reconcileWait + "\n"
	}
	return y
}

// stallingMailgunSetup is a config file for one Mailgun channel against a
// fake Mailgun whose first send stalls until the client goes away, BonyChat
// a stand-in.
type stallingMailgunSetup struct {
	cfgPath, base string
	client        *http.Client
	mailgun       *fakemailgun.Server
	platform      *standIn
}

func newStallingMailgunSetup(t *testing.T, firstSend fakemailgun.Behaviour, reconcileWait string) stallingMailgunSetup {
	t.Helper()
	buildBinary(t)
	dir := t.TempDir()
	addr, platformAddr := freeAddr(t), freeAddr(t)
	platform := newStandIn(mailCrashToken)
	serveStandInAt(t, platformAddr, platform)
	mg := fakemailgun.New(t, mailgunDomain, mailgunAPIKey)
	mg.Script(firstSend)
	// retry_max (1 s) is far below reconcile_wait: what holds a message in
	// doubt back is then the provider's own wait, not the queue's backoff.
	cfg := binaryConfigHead(addr, dir, "info") + fmt.Sprintf(`outbound:
  wait: %s
  retry_max: 1s
platform:
  webhook_url: %q
  retry_min: 50ms
  retry_max: 300ms
channels:
%s`, mailCrashWait, "http://"+platformAddr+"/webhook", mailgunChannelYAML(mailCrashChannel, mailCrashToken, mg.URL, reconcileWait))
	cfgPath := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return stallingMailgunSetup{cfgPath: cfgPath, base: "http://" + addr, client: localClient(t), mailgun: mg, platform: platform}
}

// postAnswer is what one /message request got.
type postAnswer struct {
	status int
	body   []byte
	err    error
}

// killMidMessage starts the binary, posts mailCrashBody to /message (with
// key as its Idempotency-Key, unless ""), SIGKILLs the server once
// inFlight holds while the request is still waiting, and checks the
// request was cut off unanswered.
func (env stallingMailgunSetup) killMidMessage(t *testing.T, key, what string, inFlight func() bool) {
	t.Helper()
	first := startBinary(t, nil, "serve", "--config", env.cfgPath)
	waitHealthy(t, first, env.client, env.base)
	answered := make(chan postAnswer, 1)
	go func() {
		status, body, err := postWithKey(t.Context(), env.client, env.base+"/message", mailCrashToken, key, mailCrashBody)
		answered <- postAnswer{status, body, err}
	}()
	first.waitFor(t, what, 10*time.Second, func() bool {
		select {
		case a := <-answered:
			t.Fatalf("/message answered %d %s %v before %s: the kill would not cut a request that waits", a.status, a.body, a.err, what)
		default:
		}
		return inFlight()
	})
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("SIGKILL: %v", err)
	}
	first.waitExit(t, 10*time.Second)
	select {
	case a := <-answered:
		if a.err == nil {
			t.Fatalf("/message answered %d %s although the server was killed while it waited", a.status, a.body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("/message still open 10s after the server was killed")
	}
}

// statusesOf lists the status events BonyChat got for mID, as type:value.
func (env stallingMailgunSetup) statusesOf(mID string) []string {
	posts, _, _ := env.platform.snapshot()
	var out []string
	for _, p := range posts {
		for _, e := range p.Payload.Events {
			if e.MID == mID && e.Status != nil {
				out = append(out, e.Type+":"+e.Status.Value)
			}
		}
	}
	return out
}

// sentMID is the mId of the one e-mail in msgs (its v:mid), checked to be
// addressed and identified as the adapter sends it.
func sentMID(t *testing.T, msgs []fakemailgun.Message) string {
	t.Helper()
	if len(msgs) != 1 {
		t.Fatalf("Mailgun got %d sends, want 1", len(msgs))
	}
	m := msgs[0]
	mID := m.Get("v:mid")
	if mID == "" || m.Get("to") != mailCrashAddress || m.ID != "<"+mID+"@"+mailgunDomain+">" {
		t.Fatalf("Mailgun got an e-mail to %q with v:mid %q and Message-Id %q; want one to %s naming its mId in both",
			m.Get("to"), mID, m.ID, mailCrashAddress)
	}
	return mID
}

// TestCrashMidMailgunSendIsResumedNotRepeated kills the server with
// SIGKILL while /message waits for a send that Mailgun has taken but not
// answered, then restarts it on the same store: the interrupted send is
// looked up in Mailgun's events by its Message-Id, found, and reported
// sent; Mailgun gets the e-mail once, and a repeat of the request with its
// Idempotency-Key names the same mId and sends nothing.
func TestCrashMidMailgunSendIsResumedNotRepeated(t *testing.T) {
	// reconcile_wait left at its 5 min: only the resume's look can report
	// the e-mail sent within the test.
	env := newStallingMailgunSetup(t, fakemailgun.RecordThenStall(time.Minute), "")
	const key = "mail-crash-key-1"
	env.killMidMessage(t, key, "Mailgun to have the e-mail", func() bool { return len(env.mailgun.Sent()) == 1 })
	mID := sentMID(t, env.mailgun.Sent())
	looksBefore := env.mailgun.EventQueries()

	second := startBinary(t, nil, "serve", "--config", env.cfgPath)
	waitHealthy(t, second, env.client, env.base)
	status, answer, err := postWithKey(t.Context(), env.client, env.base+"/message", mailCrashToken, key, mailCrashBody)
	var got struct {
		MID string `json:"mId"`
	}
	if err != nil || status != http.StatusOK || json.Unmarshal(answer, &got) != nil || got.MID != mID {
		t.Fatalf("repeated /message with the Idempotency-Key: %d %s %v; want 200 naming the first request's mId %q",
			status, answer, err, mID)
	}
	second.waitFor(t, "BonyChat to get the e-mail's status (never reported sent)", 15*time.Second,
		func() bool { return env.platform.times(mID) > 0 })
	// A send after the found look (the bug this guards against) would go at
	// once: give it a moment to show.
	time.Sleep(300 * time.Millisecond)
	if n, sent := len(env.mailgun.Attempts()), len(env.mailgun.Sent()); n != 1 || sent != 1 {
		t.Fatalf("Mailgun got %d sends (%d taken): the e-mail was sent twice; stderr:\n%s", n, sent, tail(second.stderr.String(), 30))
	}
	if env.mailgun.EventQueries() == looksBefore {
		t.Fatalf("reported sent without a look in Mailgun's events; stderr:\n%s", tail(second.stderr.String(), 30))
	}
	if s := env.statusesOf(mID); strings.Join(s, ",") != "message_status:sent" {
		t.Fatalf("BonyChat got %q for the e-mail, want one message_status sent", s)
	}
}

// TestCrashBeforeMailgunTookTheEmailSendsItOnceAfterTheWait kills the
// server while its send waits on a Mailgun that has not taken the e-mail:
// after the restart the resume does not find it, and it is sent once,
// reconcile_wait after the resume's first look at the earliest, and
// reported sent. The queue retries every second (retry_max), so each
// early retry looks and is told "too soon" until the wait has passed. The
// wait (8 s) is well past the resume's own looks (three, 2 s apart) and
// the first retry's poll, so that a server ignoring it (which sends ~5–6 s
// after the first look) fails. The 500 ms allow for the mark, which the
// wait runs from, being written just before the first look.
func TestCrashBeforeMailgunTookTheEmailSendsItOnceAfterTheWait(t *testing.T) {
	const wait = 8 * time.Second
	env := newStallingMailgunSetup(t, fakemailgun.Stall(time.Minute), wait.String())
	env.killMidMessage(t, "", "the send to reach Mailgun", func() bool { return len(env.mailgun.Attempts()) == 1 })
	if n := len(env.mailgun.Sent()); n != 0 {
		t.Fatalf("Mailgun took %d e-mails before the kill, want none", n)
	}
	mID := sentMID(t, env.mailgun.Attempts())
	looksBefore := env.mailgun.EventQueries()

	second := startBinary(t, nil, "serve", "--config", env.cfgPath)
	second.waitFor(t, "BonyChat to get the e-mail's status (never reported sent)", 30*time.Second,
		func() bool { return env.platform.times(mID) > 0 })
	time.Sleep(300 * time.Millisecond) // a second send would show now
	stderr := func() string { return tail(second.stderr.String(), 30) }
	sent := env.mailgun.Sent()
	switch {
	case len(sent) == 0:
		t.Fatalf("reported sent, but Mailgun never took the e-mail; stderr:\n%s", stderr())
	case len(sent) > 1:
		t.Fatalf("Mailgun took the e-mail %d times: sent twice; stderr:\n%s", len(sent), stderr())
	}
	if got := sentMID(t, sent); got != mID {
		t.Fatalf("Mailgun took the e-mail of mId %q, want %q", got, mID)
	}
	if n := len(env.mailgun.Attempts()); n != 2 {
		t.Fatalf("Mailgun got %d sends, want 2 (the one cut off, then one after the restart)", n)
	}
	looks := env.mailgun.EventQueryTimes()[looksBefore:]
	if len(looks) == 0 || !looks[0].Before(sent[0].Time) {
		t.Fatalf("sent again without a look in Mailgun's events first (%d looks after the restart)", len(looks))
	}
	if early := sent[0].Time.Sub(looks[0]); early < wait-500*time.Millisecond {
		t.Fatalf("sent again %v after the resume's first look, before reconcile_wait (%v) had passed", early, wait)
	} else {
		t.Logf("sent again %v after the resume's first look (%d looks after the restart)", early.Round(time.Millisecond), len(looks))
	}
	if s := env.statusesOf(mID); strings.Join(s, ",") != "message_status:sent" {
		t.Fatalf("BonyChat got %q for the e-mail, want one message_status sent", s)
	}
}
