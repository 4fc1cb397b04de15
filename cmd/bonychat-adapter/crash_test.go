package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bonychat/bonychat-adapter/store"
)

// --- helpers shared by crash_test.go and jobs_test.go ---

// standInPost is one webhook post a BonyChat stand-in received.
type standInPost struct {
	Status  int // what the stand-in answered
	Auth    string
	Payload standInPayload
	Problem string // why the post was malformed, if it was
}

type standInPayload struct {
	ChannelID string         `json:"channelId"`
	ContactID string         `json:"contactId"`
	Events    []standInEvent `json:"events"`
}

type standInEvent struct {
	Type      string `json:"type"`
	MID       string `json:"mId"`
	Timestamp int64  `json:"timestamp"`
	Message   *struct {
		Type string  `json:"type"`
		Text *string `json:"text"`
	} `json:"message"`
	Status *struct {
		Value   string `json:"value"`
		Message string `json:"message"`
	} `json:"status"`
}

// standIn is a BonyChat webhook stand-in: it checks the bearer token,
// decodes every payload, records it, and answers with status (200 unless
// changed). Events count as received only when it answered 2xx.
type standIn struct {
	token  string
	status atomic.Int32

	mu       sync.Mutex
	posts    []standInPost
	accepted map[string]int      // mId -> times received with a 2xx answer
	order    map[string][]string // contactId -> mIds in arrival order (2xx only, repeats kept)
}

func newStandIn(token string) *standIn {
	s := &standIn{token: token, accepted: map[string]int{}, order: map[string][]string{}}
	s.status.Store(http.StatusOK)
	return s
}

func (s *standIn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	post, authorized := readStandInPost(r, func(string) string { return s.token })
	status := int(s.status.Load())
	if post.Problem != "" {
		status = http.StatusUnauthorized
		if authorized {
			status = http.StatusBadRequest
		}
	}
	post.Status = status
	s.mu.Lock()
	s.posts = append(s.posts, post)
	if status >= 200 && status < 300 {
		for _, e := range post.Payload.Events {
			s.accepted[e.MID]++
			s.order[post.Payload.ContactID] = append(s.order[post.Payload.ContactID], e.MID)
		}
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, `{"ok":true}`)
}

// readStandInPost reads one webhook post as BonyChat would and says what is
// wrong with it, if anything; authorized: it carried the bearer token that
// tokenOf gives for its channel.
func readStandInPost(r *http.Request, tokenOf func(channelID string) string) (post standInPost, authorized bool) {
	post.Auth = r.Header.Get("Authorization")
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err == nil {
		err = json.Unmarshal(body, &post.Payload)
	}
	authorized = post.Auth == "Bearer "+tokenOf(post.Payload.ChannelID)
	switch {
	case r.Method != http.MethodPost:
		post.Problem = "method " + r.Method
	case !authorized:
		post.Problem = "wrong Authorization header"
	case !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json"):
		post.Problem = "Content-Type " + r.Header.Get("Content-Type")
	case err != nil:
		post.Problem = "unreadable payload: " + err.Error()
	}
	return post, authorized
}

// distinct counts the mIds received with a 2xx answer.
func (s *standIn) distinct() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.accepted)
}

// times is how often mID was received with a 2xx answer.
func (s *standIn) times(mID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted[mID]
}

// snapshot copies what the stand-in recorded.
func (s *standIn) snapshot() (posts []standInPost, accepted map[string]int, order map[string][]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	accepted = make(map[string]int, len(s.accepted))
	for k, v := range s.accepted {
		accepted[k] = v
	}
	order = make(map[string][]string, len(s.order))
	for k, v := range s.order {
		order[k] = append([]string(nil), v...)
	}
	return append([]standInPost(nil), s.posts...), accepted, order
}

// serveStandInAt serves h on exactly addr (a 127.0.0.1 port picked earlier
// and left free), retrying briefly should the port still be in TIME_WAIT.
func serveStandInAt(t *testing.T, addr string, h http.Handler) {
	t.Helper()
	if host, _, err := net.SplitHostPort(addr); err != nil || host != "127.0.0.1" {
		t.Fatalf("stand-in address %q is not on 127.0.0.1", addr)
	}
	var ln net.Listener
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; {
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cannot bring the BonyChat stand-in up on %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
}

// waitHealthy waits until GET base/healthz answers 200.
func waitHealthy(t *testing.T, p *process, client *http.Client, base string) {
	t.Helper()
	p.waitFor(t, "GET /healthz to answer 200", 15*time.Second, func() bool {
		resp, err := client.Get(base + "/healthz")
		if err != nil {
			return false
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("[... %d earlier lines]", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// --- the durability proof ---

const (
	crashChannel    = "crash"
	crashToken      = "crash-channel-token-7c1e94b2d05a"
	crashContacts   = 10
	crashPerContact = 20
	crashTotal      = crashContacts * crashPerContact
)

func crashContact(c int) string { return fmt.Sprintf("+6017000%04d", c) }
func crashMID(c, m int) string  { return fmt.Sprintf("c%02d-m%02d", c, m) }
func crashText(c, m int) string { return fmt.Sprintf("c%02d m%02d", c, m) }

func crashConfig(listen, dir, webhookURL string) string {
	return storeConfig(listen, dir, webhookURL, "warn", crashChannel, crashToken)
}

// storeConfig is a console channel whose SQLite store and media live in
// dir, with fast BonyChat retries.
func storeConfig(listen, dir, webhookURL, logLevel, channel, token string) string {
	return binaryConfigHead(listen, dir, logLevel) + fmt.Sprintf(`http:
  shutdown_timeout: 10s
platform:
  webhook_url: %q
  timeout: 5s
  retries: 0
  retry_min: 50ms
  retry_max: 300ms
  rate_limit: 1000
channels:
  - id: %q
    token: %q
    id_type: phone
    provider: console
`, webhookURL, channel, token)
}

// binaryConfigHead is the start of each binary test's configuration: its
// address, JSON logs at level, and its SQLite store and media in dir.
func binaryConfigHead(listen, dir, level string) string {
	return fmt.Sprintf(`listen: %q
public_url: "http://%s"
log:
  level: %s
  format: json
store: "sqlite:%s"
media:
  dir: %q
`, listen, listen, level, filepath.Join(dir, "adapter.db"), filepath.Join(dir, "media"))
}

// postResult is how one inbound message was acknowledged.
type postResult struct {
	attempts int      // requests sent, the acknowledged one included
	errs     []string // why earlier attempts were not acknowledged (first few)
	acked    bool
	fatal    string // a refusal that no retry can fix
}

// postInboundUntilAcked posts one console inbound message, retrying the very
// same body on any error or non-200 answer, as a provider redelivers a
// webhook, until it is answered 200 or ctx ends.
func postInboundUntilAcked(ctx context.Context, client *http.Client, url, token, body, wantMID string) postResult {
	post := func(ctx context.Context) (int, []byte, error) { return postOnce(ctx, client, url, token, body) }
	return redeliverUntilAcked(ctx, post, answerNames(wantMID))
}

// answerNames checks that a console inbound's 200 answer names wantMID.
func answerNames(wantMID string) func(answer []byte) string {
	return func(answer []byte) string {
		var got struct {
			MIDs []string `json:"mIds"`
		}
		if err := json.Unmarshal(answer, &got); err != nil || len(got.MIDs) != 1 || got.MIDs[0] != wantMID {
			return fmt.Sprintf("200 answer %s, want {\"mIds\":[%q]}", answer, wantMID)
		}
		return ""
	}
}

// redeliverUntilAcked makes post again and again, as a provider redelivers
// a webhook, until it is answered 200 or ctx ends. wrongAck says what is
// wrong with a 200 answer ("" when nothing is); that, like a 4xx no
// retry can fix, ends the posting as fatal.
func redeliverUntilAcked(ctx context.Context, post func(context.Context) (int, []byte, error), wrongAck func(answer []byte) string) postResult {
	var res postResult
	for res.attempts < 5000 && ctx.Err() == nil {
		res.attempts++
		status, answer, err := post(ctx)
		switch {
		case err == nil && status == http.StatusOK:
			if res.fatal = wrongAck(answer); res.fatal != "" {
				return res
			}
			res.acked = true
			return res
		case err == nil && refusedForGood(status):
			res.fatal = fmt.Sprintf("answered %d %s", status, answer)
			return res
		}
		if len(res.errs) < 5 {
			if err != nil {
				res.errs = append(res.errs, err.Error())
			} else {
				res.errs = append(res.errs, fmt.Sprintf("answered %d %s", status, answer))
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
	return res
}

// refusedForGood: a 4xx that no retry can fix (not 408 or 429).
func refusedForGood(status int) bool {
	return status >= 400 && status < 500 && status != http.StatusRequestTimeout && status != http.StatusTooManyRequests
}

func postOnce(ctx context.Context, client *http.Client, url, token, body string) (int, []byte, error) {
	return postWithKey(ctx, client, url, token, "", body)
}

// postWithKey posts a JSON body with a bearer token and, unless key is "",
// an Idempotency-Key.
func postWithKey(ctx context.Context, client *http.Client, url, token, key, body string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return 0, nil, fmt.Errorf("reading the answer: %w", err)
	}
	return resp.StatusCode, b, nil
}

// TestCrashLosesAndDuplicatesNothing kills the server with SIGKILL while
// inbound messages pour in and BonyChat is down, restarts it on the same
// store, and proves that once BonyChat comes up every acknowledged message
// reaches it exactly once, in order per contact.
func TestCrashLosesAndDuplicatesNothing(t *testing.T) {
	start := time.Now()
	buildBinary(t)
	dir := t.TempDir()
	addr := freeAddr(t)
	platformAddr := freeAddr(t) // BonyChat: down until every message is acknowledged
	cfgPath := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfgPath, []byte(crashConfig(addr, dir, "http://"+platformAddr+"/webhook")), 0o600); err != nil {
		t.Fatal(err)
	}
	base, client := "http://"+addr, localClient(t)
	inboundURL := base + "/console/" + crashChannel + "/inbound"

	var procs []*process
	stderrs := func() string {
		var b strings.Builder
		for i, p := range procs {
			fmt.Fprintf(&b, "--- stderr of process %d (tail) ---\n%s\n", i+1, tail(p.stderr.String(), 40))
		}
		return b.String()
	}
	serve := func() *process {
		p := startBinary(t, nil, "serve", "--config", cfgPath)
		procs = append(procs, p)
		waitHealthy(t, p, client, base)
		return p
	}
	first := serve()

	// 10 contacts post their 20 messages each, in order, concurrently.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() }) // no poster outlives the test
	var acked atomic.Int32
	half := make(chan struct{})
	results := make([][]postResult, crashContacts)
	for c := range crashContacts {
		results[c] = make([]postResult, crashPerContact)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m := range crashPerContact {
				body := fmt.Sprintf(`{"from":%q,"id":%q,"text":%q}`, crashContact(c), crashMID(c, m), crashText(c, m))
				r := postInboundUntilAcked(ctx, client, inboundURL, crashToken, body, crashMID(c, m))
				results[c][m] = r
				if !r.acked {
					return // the contact's later messages must not overtake this one
				}
				if acked.Add(1) == crashTotal/2 {
					close(half)
				}
			}
		}()
	}
	posting := make(chan struct{})
	go func() { wg.Wait(); close(posting) }()

	select {
	case <-half:
	case <-posting:
		t.Fatalf("posting ended with %d of %d messages acknowledged before the kill; %s", acked.Load(), crashTotal, stderrs())
	case <-time.After(30 * time.Second):
		t.Fatalf("only %d messages acknowledged after 30s; %s", acked.Load(), stderrs())
	}
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("SIGKILL: %v", err)
	}
	first.waitExit(t, 10*time.Second)
	atKill := acked.Load()
	t.Logf("SIGKILL after %d of %d messages were acknowledged (%v in)", atKill, crashTotal, time.Since(start).Round(time.Millisecond))

	time.Sleep(300 * time.Millisecond) // posters meet a dead port: connection refused
	second := serve()
	t.Logf("restarted and healthy (%v in)", time.Since(start).Round(time.Millisecond))

	select {
	case <-posting:
	case <-time.After(65 * time.Second):
		t.Fatalf("posting did not end; %d of %d acknowledged; %s", acked.Load(), crashTotal, stderrs())
	}
	retried := 0
	for c := range crashContacts {
		for m := range crashPerContact {
			r := results[c][m]
			switch {
			case r.fatal != "":
				t.Errorf("%s: %s", crashMID(c, m), r.fatal)
			case !r.acked:
				t.Errorf("%s: not acknowledged after %d attempts: %q", crashMID(c, m), r.attempts, r.errs)
			case r.attempts > 1:
				retried++
				t.Logf("%s acknowledged at attempt %d, after %q", crashMID(c, m), r.attempts, r.errs)
			}
		}
	}
	if t.Failed() {
		t.Fatalf("not every message was acknowledged; %s", stderrs())
	}
	if atKill >= crashTotal || retried == 0 {
		t.Errorf("the kill cut nothing (%d acknowledged before it, %d messages retried): the test proves less than it should",
			atKill, retried)
	}
	t.Logf("all %d acknowledged, %d of them after a retry (%v in)", crashTotal, retried, time.Since(start).Round(time.Millisecond))

	// BonyChat comes up.
	platform := newStandIn(crashToken)
	serveStandInAt(t, platformAddr, platform)
	// Wait for every event, or until the server has nothing left to send
	// for 2s (then the analysis below names what is missing).
	idleSince := time.Time{}
	for deadline := time.Now().Add(60 * time.Second); platform.distinct() < crashTotal; {
		if second.exited() {
			t.Fatalf("the server exited (code %d) before BonyChat had every event; %s",
				second.cmd.ProcessState.ExitCode(), stderrs())
		}
		if time.Now().After(deadline) {
			t.Errorf("after 60s BonyChat has %d of %d events", platform.distinct(), crashTotal)
			break
		}
		if r, err := getReadyz(client, base); err == nil && *r.PendingJobs == 0 {
			if idleSince.IsZero() {
				idleSince = time.Now()
			} else if time.Since(idleSince) > 2*time.Second {
				t.Errorf("BonyChat has %d of %d events and the server has no pending job left (%d dead)",
					platform.distinct(), crashTotal, *r.DeadJobs)
				break
			}
		} else {
			idleSince = time.Time{}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("BonyChat has %d events (%v in)", platform.distinct(), time.Since(start).Round(time.Millisecond))
	time.Sleep(time.Second) // a late duplicate would arrive now

	posts, accepted, order := platform.snapshot()
	failed := false
	fail := func(format string, args ...any) {
		failed = true
		t.Errorf(format, args...)
	}
	for i, p := range posts {
		switch {
		case p.Problem != "":
			fail("post %d: %s (answered %d)", i, p.Problem, p.Status)
		case p.Status != http.StatusOK:
			fail("post %d answered %d", i, p.Status)
		case p.Payload.ChannelID != crashChannel:
			fail("post %d: channelId %q, want %q", i, p.Payload.ChannelID, crashChannel)
		case len(p.Payload.Events) < 1 || len(p.Payload.Events) > 20:
			fail("post %d: %d events, want 1 to 20", i, len(p.Payload.Events))
		}
		for _, e := range p.Payload.Events {
			var c, m int
			if _, err := fmt.Sscanf(e.MID, "c%02d-m%02d", &c, &m); err != nil || crashMID(c, m) != e.MID {
				fail("post %d: unexpected mId %q", i, e.MID)
				continue
			}
			if p.Payload.ContactID != crashContact(c) {
				fail("post %d: event %s in a payload for contactId %q, want %q", i, e.MID, p.Payload.ContactID, crashContact(c))
			}
			if e.Type != "message" || e.Timestamp <= 0 || e.Message == nil || e.Message.Type != "text" ||
				e.Message.Text == nil || *e.Message.Text != crashText(c, m) {
				got, _ := json.Marshal(e)
				fail("post %d: event %s = %s, want a text message %q with a timestamp", i, e.MID, got, crashText(c, m))
			}
		}
	}
	var lost, dups []string
	for c := range crashContacts {
		want := make([]string, crashPerContact)
		for m := range crashPerContact {
			want[m] = crashMID(c, m)
			switch n := accepted[want[m]]; {
			case n == 0:
				lost = append(lost, want[m])
			case n > 1:
				dups = append(dups, fmt.Sprintf("%s×%d", want[m], n))
			}
		}
		var firsts []string
		seen := map[string]bool{}
		for _, id := range order[crashContact(c)] {
			if !seen[id] {
				seen[id] = true
				firsts = append(firsts, id)
			}
		}
		if strings.Join(firsts, ",") != strings.Join(want, ",") {
			fail("contact %s: events arrived in the order %v, want %v", crashContact(c), firsts, want)
		}
	}
	if len(lost) > 0 {
		fail("%d acknowledged messages never reached BonyChat: %v", len(lost), lost)
	}
	if len(dups) > 0 {
		sort.Strings(dups)
		fail("messages reached BonyChat more than once: %v", dups)
	}
	if len(accepted) != crashTotal {
		fail("BonyChat received %d distinct mIds, want %d", len(accepted), crashTotal)
	}
	t.Logf("%d posts carried %d distinct events", len(posts), len(accepted))

	// Connections the client dialled but never used count as busy for 5s
	// in http.Server.Shutdown; close them so the stop is quick.
	client.CloseIdleConnections()
	if err := second.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	if code := second.waitExit(t, 15*time.Second); code != 0 {
		fail("exit code after SIGTERM = %d, want 0", code)
	}
	t.Logf("stopped by SIGTERM (%v in)", time.Since(start).Round(time.Millisecond))
	checkCrashStore(t, filepath.Join(dir, "adapter.db"), fail)
	for i, p := range procs {
		if strings.Contains(p.stderr.String()+p.stdout.String(), crashToken) {
			fail("process %d's output contains the channel token", i+1)
		}
	}
	if failed {
		t.Logf("diagnostics:\n%s", stderrs())
	}
	t.Logf("done in %v", time.Since(start).Round(time.Millisecond))
}

// checkCrashStore opens the stopped server's store and checks it holds each
// message as exactly one platform job, done.
func checkCrashStore(t *testing.T, path string, fail func(string, ...any)) {
	t.Helper()
	st, err := store.Open("sqlite:" + path)
	if err != nil {
		fail("open the store after the run: %v", err)
		return
	}
	defer st.Close()
	jobs, err := st.Jobs(context.Background(), store.JobFilter{})
	if err != nil {
		fail("list the jobs after the run: %v", err)
		return
	}
	perMID := map[string]int{}
	for _, j := range jobs {
		perMID[j.MID]++
		if j.Queue != store.Platform || j.State != store.Done || j.ChannelID != crashChannel {
			fail("job %d (%s): queue %s, state %s, channel %s; want a done platform job of %s",
				j.ID, j.MID, j.Queue, j.State, j.ChannelID, crashChannel)
		}
	}
	for mid, n := range perMID {
		if n != 1 {
			fail("the store holds %d jobs for %s, want 1", n, mid)
		}
	}
	if len(jobs) != crashTotal || len(perMID) != crashTotal {
		fail("the store holds %d jobs for %d mIds, want %d of each", len(jobs), len(perMID), crashTotal)
	}
}
