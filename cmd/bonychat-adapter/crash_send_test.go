package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bonychat/bonychat-adapter/internal/faketwilio"
)

// The fake Twilio account of the binary's tests, and its channel's number.
const (
	twilioAccount   = "AC0123456789abcdef0123456789abcdef"
	twilioAuthToken = "twilioAuthToken0123456789abcdef"
	twilioFrom      = "+15550001111"
)

const (
	sendCrashChannel = "sms"
	sendCrashToken   = "send-crash-channel-token-3f9a"
	sendCrashTo      = "+15550002222"
)

// sendCrashConfig is one Twilio channel against the fake, with a short
// /message wait, BonyChat at webhookURL.
func sendCrashConfig(listen, dir, webhookURL, twilioURL string) string {
	return binaryConfigHead(listen, dir, "info") + fmt.Sprintf(`outbound:
  wait: 1s
platform:
  webhook_url: %q
  retry_min: 50ms
  retry_max: 300ms
channels:
%s`, webhookURL, twilioChannelYAML(sendCrashChannel, sendCrashToken, twilioURL))
}

// twilioChannelYAML is a channels: entry for a Twilio channel against the
// fake at twilioURL.
func twilioChannelYAML(id, token, twilioURL string) string {
	return fmt.Sprintf(`  - id: %q
    token: %q
    id_type: phone
    provider: twilio
    twilio:
      account_sid: %q
      auth_token: %q
      from: %q
      api_url: %q
`, id, token, twilioAccount, twilioAuthToken, twilioFrom, twilioURL)
}

// stallingTwilioSetup is a config file for one Twilio channel against a
// fake Twilio that creates the message but never answers, BonyChat a
// stand-in; extra is appended to the config.
type stallingTwilioSetup struct {
	cfgPath, addr, base string
	client              *http.Client
	twilio              *faketwilio.Server
	platform            *standIn
}

func newStallingTwilioSetup(t *testing.T, extra string) stallingTwilioSetup {
	t.Helper()
	buildBinary(t)
	dir := t.TempDir()
	addr, platformAddr := freeAddr(t), freeAddr(t)
	platform := newStandIn(sendCrashToken)
	serveStandInAt(t, platformAddr, platform)
	twilio := faketwilio.New(t, twilioAccount, twilioAuthToken)
	twilio.Script(faketwilio.Create, faketwilio.RecordThenStall(time.Minute))
	cfgPath := filepath.Join(dir, "config.yaml")
	cfg := sendCrashConfig(addr, dir, "http://"+platformAddr+"/webhook", twilio.URL) + extra
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return stallingTwilioSetup{cfgPath: cfgPath, addr: addr, base: "http://" + addr, client: localClient(t),
		twilio: twilio, platform: platform}
}

// sendCrashBody is the /message body both tests send.
var sendCrashBody = fmt.Sprintf(`{"channelId":%q,"contactId":%q,"message":{"type":"text","text":"Your order has shipped"}}`,
	sendCrashChannel, sendCrashTo)

// TestCrashMidSendIsResumedNotRepeated kills the server with SIGKILL while
// a send is in flight and Twilio has already created the message, then
// restarts it on the same store: the interrupted send is looked up in
// Twilio's message list, found, and reported sent; Twilio gets it once.
func TestCrashMidSendIsResumedNotRepeated(t *testing.T) {
	env := newStallingTwilioSetup(t, "") // Twilio creates the message, but the answer never comes back
	cfgPath, base, client, twilio, platform := env.cfgPath, env.base, env.client, env.twilio, env.platform

	first := startBinary(t, nil, "serve", "--config", cfgPath)
	waitHealthy(t, first, client, base)
	body := sendCrashBody
	status, answer, err := postOnce(t.Context(), client, base+"/message", sendCrashToken, body)
	var got struct {
		MID string `json:"mId"`
	}
	if err != nil || status != 200 || json.Unmarshal(answer, &got) != nil || got.MID == "" {
		t.Fatalf("/message: %d %s %v; want 200 with an mId once the wait is over", status, answer, err)
	}
	first.waitFor(t, "Twilio to have the message", 10*time.Second, func() bool { return len(twilio.Messages()) == 1 })
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("SIGKILL: %v", err)
	}
	first.waitExit(t, 10*time.Second)

	second := startBinary(t, nil, "serve", "--config", cfgPath)
	waitHealthy(t, second, client, base)
	second.waitFor(t, "BonyChat to get the message's status", 20*time.Second, func() bool { return platform.times(got.MID) > 0 })
	// A Send right after a found look (the bug this guards against) would
	// create at once: give it a moment to show.
	time.Sleep(300 * time.Millisecond)
	if n := twilio.Count(faketwilio.Create); n != 1 || len(twilio.Messages()) != 1 {
		t.Fatalf("Twilio saw %d creates, has %d messages: the message was sent again; stderr:\n%s",
			n, len(twilio.Messages()), tail(second.stderr.String(), 30))
	}
	posts, _, _ := platform.snapshot()
	var statuses []string
	for _, p := range posts {
		for _, e := range p.Payload.Events {
			if e.MID == got.MID && e.Status != nil {
				statuses = append(statuses, e.Type+":"+e.Status.Value)
			}
		}
	}
	if strings.Join(statuses, ",") != "message_status:sent" {
		t.Fatalf("BonyChat got %q for the message, want one message_status sent", statuses)
	}
}

// The whole drain, requests and then the send in flight, fits in one
// http.shutdown_timeout (the kill grace period an operator sets by it): a
// request left open and a Twilio create that never answers do not make it
// twice as long; the send is left for start-up to settle.
func TestDrainFitsInOneShutdownTimeout(t *testing.T) {
	env := newStallingTwilioSetup(t, "http:\n  shutdown_timeout: 3s\n")
	p := startBinary(t, nil, "serve", "--config", env.cfgPath)
	waitHealthy(t, p, env.client, env.base)
	if status, answer, err := postOnce(t.Context(), env.client, env.base+"/message", sendCrashToken, sendCrashBody); err != nil || status != 200 {
		t.Fatalf("/message: %d %s %v", status, answer, err)
	}
	conn, err := net.Dial("tcp", env.addr) // a request whose body never finishes
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := fmt.Fprintf(conn, "POST /message HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"+
		"Authorization: Bearer %s\r\nContent-Length: 100\r\n\r\n{", sendCrashToken); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	if code := p.waitExit(t, 15*time.Second); code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
	if took := time.Since(start); took > 5*time.Second { // one timeout is 3 s; twice would be 6
		t.Errorf("the drain took %v with shutdown_timeout 3s; stderr:\n%s", took, tail(p.stderr.String(), 10))
	}
}
