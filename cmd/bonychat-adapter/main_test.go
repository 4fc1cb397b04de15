package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bonychat/bonychat-adapter/internal/testkit"
)

// Fixtures shared with adapter/config_test.go.
const (
	fullConfig         = "../../testdata/config/full.yaml"
	manyProblemsConfig = "../../testdata/config/many-problems.yaml"
)

// manyProblemsKeys are key paths every report on manyProblemsConfig must name.
var manyProblemsKeys = []string{
	"listne: unknown key",
	"base_path: ",
	"log.level: ",
	"channels[0].tokn: unknown key",
	"channels[0].id_type: ",
	"channels[1].id: duplicate channel id",
	"channels[1].token: required",
	"channels[1].webhook_url: ",
	"channels[1].provider: ",
	"channels[2].token: must be at least 16 characters",
	"channels[2].webhook_url: ",
}

// Tokens of the fixtures, which no output may ever contain.
var fixtureTokens = []string{
	"fixture-token-main-0001", "fixture-token-prev-0001", "fixture-token-custom-0002",
	"fixture-typo-token-0001", "fixture-token-dup-00001",
}

// runCLI runs the command in-process.
func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// writeConfig writes a configuration file into a fresh temporary directory.
func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func requireAll(t *testing.T, what, text string, wants []string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(text, want) {
			t.Errorf("%s does not contain %q:\n%s", what, want, text)
		}
	}
}

func requireNone(t *testing.T, what, text string, secrets []string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(text, s) {
			t.Errorf("%s contains the secret %q:\n%s", what, s, text)
		}
	}
}

func TestRunVersionPrintsNameAndVersion(t *testing.T) {
	old := version
	version = "9.8.7-test"
	t.Cleanup(func() { version = old })
	for _, arg := range []string{"--version", "-version", "version"} {
		t.Run(arg, func(t *testing.T) {
			code, stdout, stderr := runCLI(arg)
			if code != 0 {
				t.Errorf("exit code = %d, want 0", code)
			}
			if stdout != "bonychat-adapter 9.8.7-test\n" {
				t.Errorf("stdout = %q, want %q", stdout, "bonychat-adapter 9.8.7-test\n")
			}
			if stderr != "" {
				t.Errorf("stderr = %q, want nothing", stderr)
			}
		})
	}
}

func TestRunWithoutAKnownCommandPrintsUsageAndExits2(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"no arguments", nil},
		{"unknown command", []string{"frobnicate"}},
		{"config without subcommand", []string{"config"}},
		{"unknown config subcommand", []string{"config", "lint"}},
		{"unknown flag as command", []string{"--bogus"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(tt.args...)
			if code != 2 {
				t.Errorf("exit code = %d, want 2", code)
			}
			if stderr != usage {
				t.Errorf("stderr = %q, want the usage", stderr)
			}
			if stdout != "" {
				t.Errorf("stdout = %q, want nothing", stdout)
			}
		})
	}
}

func TestRunHelpPrintsUsageOnStdoutAndExits0(t *testing.T) {
	for _, arg := range []string{"-h", "--help", "help"} {
		t.Run(arg, func(t *testing.T) {
			code, stdout, _ := runCLI(arg)
			if code != 0 || stdout != usage {
				t.Errorf("run(%q) = %d, stdout %q; want 0 and the usage", arg, code, stdout)
			}
		})
	}
}

func TestConfigCheckReportsValidityWithExitCode(t *testing.T) {
	threeProblems := writeConfig(t, `listne: "127.0.0.1:1"
log:
  format: xml
platform:
  webhook_url: "http://127.0.0.1:1/webhook"
channels:
  - id: "c1"
    token: "main-test-short"
    id_type: email
    provider: console
`)
	withEnvToken := writeConfig(t, `platform:
  webhook_url: "http://127.0.0.1:1/webhook"
channels:
  - id: "c1"
    token: "${MAIN_TEST_TOKEN}"
    id_type: phone
    provider: console
`)
	missing := filepath.Join(t.TempDir(), "missing.yaml")
	tests := []struct {
		name       string
		env        map[string]string // BONYCHAT_CONFIG is "" unless set here
		args       []string
		wantCode   int
		wantStdout string   // exact, when not ""
		wantStderr []string // each must appear
	}{
		{name: "valid file via --config", args: []string{"--config", fullConfig},
			wantCode: 0, wantStdout: fullConfig + ": ok\n"},
		{name: "valid file via -config=", args: []string{"-config=" + fullConfig},
			wantCode: 0, wantStdout: fullConfig + ": ok\n"},
		{name: "invalid fixture lists every problem", args: []string{"--config", manyProblemsConfig},
			wantCode: 1, wantStderr: append([]string{"invalid configuration:"}, manyProblemsKeys...)},
		{name: "temp file with three problems lists each", args: []string{"--config", threeProblems},
			wantCode: 1, wantStderr: []string{"listne: unknown key", "log.format: must be json or text",
				"channels[0].token: must be at least 16 characters", "channels[0].id_type: must be phone or custom"}},
		{name: "missing file", args: []string{"--config", missing},
			wantCode: 1, wantStderr: []string{"read config", missing}},
		{name: "no --config and no BONYCHAT_CONFIG", args: nil,
			wantCode: 2, wantStderr: []string{"no configuration"}},
		{name: "BONYCHAT_CONFIG names a valid file", env: map[string]string{"BONYCHAT_CONFIG": fullConfig},
			wantCode: 0, wantStdout: fullConfig + ": ok\n"},
		{name: "BONYCHAT_CONFIG names an invalid file", env: map[string]string{"BONYCHAT_CONFIG": manyProblemsConfig},
			wantCode: 1, wantStderr: manyProblemsKeys},
		{name: "--config wins over BONYCHAT_CONFIG", env: map[string]string{"BONYCHAT_CONFIG": manyProblemsConfig},
			args: []string{"--config", fullConfig}, wantCode: 0, wantStdout: fullConfig + ": ok\n"},
		{name: "variable set in the environment", env: map[string]string{"MAIN_TEST_TOKEN": "main-test-token-0123456789"},
			args: []string{"--config", withEnvToken}, wantCode: 0, wantStdout: withEnvToken + ": ok\n"},
		{name: "variable unset in the environment", args: []string{"--config", withEnvToken},
			wantCode: 1, wantStderr: []string{"channels[0].token: environment variable MAIN_TEST_TOKEN is not set"}},
		{name: "unknown flag", args: []string{"--config", fullConfig, "--strict"},
			wantCode: 2, wantStderr: []string{"flag provided but not defined: -strict"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("BONYCHAT_CONFIG", "")
			t.Setenv("MAIN_TEST_TOKEN", "")
			os.Unsetenv("MAIN_TEST_TOKEN")
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			code, stdout, stderr := runCLI(append([]string{"config", "check"}, tt.args...)...)
			if code != tt.wantCode {
				t.Errorf("exit code = %d, want %d; stderr:\n%s", code, tt.wantCode, stderr)
			}
			if tt.wantStdout != "" && stdout != tt.wantStdout {
				t.Errorf("stdout = %q, want %q", stdout, tt.wantStdout)
			}
			if tt.wantCode != 0 && stdout != "" {
				t.Errorf("stdout = %q on failure, want nothing", stdout)
			}
			requireAll(t, "stderr", stderr, tt.wantStderr)
			requireNone(t, "output", stdout+stderr, append(fixtureTokens, "main-test-token-0123456789"))
		})
	}
}

func TestServeInProcessRefusesABadConfigBeforeListening(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStderr []string
	}{
		{"invalid config exits 1 listing every problem", []string{"--config", manyProblemsConfig}, 1, manyProblemsKeys},
		{"missing config exits 1", []string{"--config", filepath.Join(t.TempDir(), "nope.yaml")}, 1, []string{"read config"}},
		{"no config exits 2", nil, 2, []string{"no configuration"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("BONYCHAT_CONFIG", "")
			code, _, stderr := runCLI(append([]string{"serve"}, tt.args...)...)
			if code != tt.wantCode {
				t.Errorf("exit code = %d, want %d; stderr:\n%s", code, tt.wantCode, stderr)
			}
			requireAll(t, "stderr", stderr, tt.wantStderr)
			requireNone(t, "stderr", stderr, fixtureTokens)
		})
	}
}

// --- the real binary ---

const binaryVersion = "e2e-test-version"

var (
	binaryOnce sync.Once
	binaryDir  string
	binaryPath string
	binaryErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binaryDir != "" {
		os.RemoveAll(binaryDir)
	}
	os.Exit(code)
}

// buildBinary builds the command once per test run.
func buildBinary(t *testing.T) string {
	t.Helper()
	binaryOnce.Do(func() {
		binaryDir, binaryErr = os.MkdirTemp("", "bonychat-adapter-test-")
		if binaryErr != nil {
			return
		}
		wd, err := os.Getwd()
		if err != nil {
			binaryErr = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		binaryPath = filepath.Join(binaryDir, "bonychat-adapter")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", binaryPath, "-ldflags", "-X main.version="+binaryVersion, ".")
		cmd.Dir = wd
		if out, err := cmd.CombinedOutput(); err != nil {
			binaryErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binaryErr != nil {
		t.Fatal(binaryErr)
	}
	return binaryPath
}

// process is a running bonychat-adapter binary.
type process struct {
	cmd            *exec.Cmd
	stdout, stderr testkit.LogBuffer // collects the output while it runs
	done           chan struct{}     // closed once the process has exited
}

// startBinary starts the binary with a clean BONYCHAT_CONFIG plus env, and
// kills it at the end of the test if it is still running.
func startBinary(t *testing.T, env []string, args ...string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(buildBinary(t), args...), done: make(chan struct{})}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "BONYCHAT_CONFIG=") && !strings.HasPrefix(kv, "E2E_CHANNEL_TOKEN=") {
			p.cmd.Env = append(p.cmd.Env, kv)
		}
	}
	p.cmd.Env = append(p.cmd.Env, env...)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", args, err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
				t.Errorf("process %d did not die after SIGKILL", p.cmd.Process.Pid)
			}
		}
	})
	return p
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitExit waits for the process to exit and returns its exit code.
func (p *process) waitExit(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		t.Fatalf("process did not exit within %v; stderr:\n%s", timeout, p.stderr.String())
		return -1
	}
}

// waitFor polls cond until it holds, the process exits, or timeout passes.
func (p *process) waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if p.exited() {
			t.Fatalf("process exited (code %d) while waiting for %s; stderr:\n%s",
				p.cmd.ProcessState.ExitCode(), what, p.stderr.String())
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; stderr:\n%s", timeout, what, p.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freeAddr returns a 127.0.0.1 address nothing listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// localClient talks to 127.0.0.1 only, without proxies, with a deadline.
func localClient(t *testing.T) *http.Client {
	tr := &http.Transport{Proxy: nil, DialContext: (&net.Dialer{Timeout: 2 * time.Second}).DialContext}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 15 * time.Second}
}

// fakePlatform is a BonyChat webhook stand-in on 127.0.0.1 that records the
// Authorization header of every post. While hold is open it blocks each post
// until release is closed.
type fakePlatform struct {
	*httptest.Server
	mu      sync.Mutex
	auths   []string
	arrived chan struct{}
	release chan struct{}
	once    sync.Once
	hold    bool
}

// unblock lets every held post, and every later one, answer.
func (f *fakePlatform) unblock() { f.once.Do(func() { close(f.release) }) }

func newFakePlatform(t *testing.T, hold bool) *fakePlatform {
	f := &fakePlatform{arrived: make(chan struct{}, 16), release: make(chan struct{}), hold: hold}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		f.mu.Lock()
		f.auths = append(f.auths, r.Header.Get("Authorization"))
		f.mu.Unlock()
		f.arrived <- struct{}{}
		if f.hold {
			select {
			case <-f.release:
			case <-time.After(10 * time.Second):
			}
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(f.Close)
	t.Cleanup(f.unblock) // runs before Close, which waits for held posts
	return f
}

func (f *fakePlatform) authorizations() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.auths...)
}

const (
	e2eChannel = "e2e"
	e2eToken   = "e2e-channel-secret-5f2c9a7d41"
	e2eContact = "+60177872890"
)

// serveConfig is a console-channel configuration listening on addr whose
// token comes from E2E_CHANNEL_TOKEN.
func serveConfig(t *testing.T, addr, webhookURL string) string {
	dir := t.TempDir() // each run its own store: no job leaks into another test
	return binaryConfigHead(addr, dir, "info") + fmt.Sprintf(`http:
  shutdown_timeout: 8s
platform:
  webhook_url: %q
  timeout: 5s
  retries: 0
channels:
  - id: %q
    token: "${E2E_CHANNEL_TOKEN}"
    id_type: phone
    provider: console
`, webhookURL, e2eChannel)
}

// startServing starts "serve" (its configuration changed by edits) and
// waits until GET /healthz answers 200.
func startServing(t *testing.T, platform *fakePlatform, edits ...func(string) string) (p *process, base string, client *http.Client) {
	t.Helper()
	addr := freeAddr(t)
	raw := serveConfig(t, addr, platform.URL+"/webhook")
	for _, edit := range edits {
		raw = edit(raw)
	}
	cfg := writeConfig(t, raw)
	p = startBinary(t, []string{"E2E_CHANNEL_TOKEN=" + e2eToken}, "serve", "--config", cfg)
	base, client = "http://"+addr, localClient(t)
	var health struct{ Status, Version string }
	p.waitFor(t, "GET /healthz to answer 200", 10*time.Second, func() bool {
		resp, err := client.Get(base + "/healthz")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		return resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&health) == nil
	})
	if health.Status != "ok" || health.Version != binaryVersion {
		t.Errorf("/healthz = %+v, want status ok and version %q", health, binaryVersion)
	}
	return p, base, client
}

func postJSON(t *testing.T, client *http.Client, url, token, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("POST %s: reading the answer: %v", url, err)
	}
	return resp.StatusCode, b
}

func TestServeBinaryAnswersThenShutsDownCleanlyOnSIGTERM(t *testing.T) {
	platform := newFakePlatform(t, false)
	p, base, client := startServing(t, platform)

	msg := fmt.Sprintf(`{"channelId":%q,"contactId":%q,"message":{"type":"text","text":"hi"}}`, e2eChannel, e2eContact)
	status, body := postJSON(t, client, base+"/message", e2eToken, msg)
	var sent struct {
		MID string `json:"mId"`
	}
	if status != http.StatusOK || json.Unmarshal(body, &sent) != nil || sent.MID == "" {
		t.Fatalf("POST /message = %d %s, want 200 with an mId", status, body)
	}

	// An inbound message makes the server use the token towards BonyChat, so
	// the log check below means something.
	inbound := fmt.Sprintf(`{"from":%q,"text":"hello"}`, e2eContact)
	status, body = postJSON(t, client, base+"/console/"+e2eChannel+"/inbound", e2eToken, inbound)
	if status != http.StatusOK {
		t.Fatalf("POST /console/%s/inbound = %d %s, want 200", e2eChannel, status, body)
	}
	// The events are stored, then posted by the platform worker.
	p.waitFor(t, "BonyChat to receive the event", 10*time.Second, func() bool { return len(platform.authorizations()) > 0 })
	if got := platform.authorizations(); len(got) != 1 || got[0] != "Bearer "+e2eToken {
		t.Errorf("BonyChat received Authorization %q, want one post with the channel token", got)
	}

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	if code := p.waitExit(t, 10*time.Second); code != 0 {
		t.Errorf("exit code after SIGTERM = %d, want 0; stderr:\n%s", code, p.stderr.String())
	}
	stderr := p.stderr.String()
	requireAll(t, "stderr", stderr, []string{"shutting down", sent.MID})
	requireNone(t, "stderr", stderr, []string{e2eToken})
	requireNone(t, "stdout", p.stdout.String(), []string{e2eToken})
}

// TestServeBinaryFinishesInFlightPostBeforeExiting: SIGTERM while a post
// to BonyChat is in flight: the process stops taking requests but waits
// for the post to finish, then exits 0.
func TestServeBinaryFinishesInFlightPostBeforeExiting(t *testing.T) {
	platform := newFakePlatform(t, true)
	p, base, client := startServing(t, platform)

	status, body := postJSON(t, client, base+"/console/"+e2eChannel+"/inbound", e2eToken,
		fmt.Sprintf(`{"from":%q,"text":"slow"}`, e2eContact))
	if status != http.StatusOK {
		t.Fatalf("inbound = %d %s, want 200 once stored", status, body)
	}
	select {
	case <-platform.arrived: // the post is now in flight, held by BonyChat
	case <-time.After(10 * time.Second):
		t.Fatalf("the event never reached BonyChat; stderr:\n%s", p.stderr.String())
	}
	client.CloseIdleConnections()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	p.waitFor(t, `"shutting down" in the log`, 10*time.Second, func() bool {
		return strings.Contains(p.stderr.String(), "shutting down")
	})
	time.Sleep(200 * time.Millisecond)
	if p.exited() {
		t.Fatalf("process exited with a post in flight; stderr:\n%s", p.stderr.String())
	}
	platform.unblock()
	if code := p.waitExit(t, 10*time.Second); code != 0 {
		t.Errorf("exit code after SIGTERM = %d, want 0; stderr:\n%s", code, p.stderr.String())
	}
	requireNone(t, "stderr", p.stderr.String(), []string{e2eToken})
}

// A closed terminal (SIGHUP) stops the server as SIGTERM does; started
// with SIGHUP ignored (nohup; the binary inherits it from this test when
// the tests run so), it stays ignored.
func TestServeBinaryStopsCleanlyOnSIGHUP(t *testing.T) {
	p, _, _ := startServing(t, newFakePlatform(t, false))
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatalf("SIGHUP: %v", err)
	}
	if signal.Ignored(syscall.SIGHUP) {
		time.Sleep(500 * time.Millisecond)
		if p.exited() {
			t.Fatalf("started under nohup, the server stopped on SIGHUP; stderr:\n%s", p.stderr.String())
		}
		return
	}
	if code := p.waitExit(t, 10*time.Second); code != 0 || !strings.Contains(p.stderr.String(), "shutting down") {
		t.Errorf("exit code after SIGHUP = %d, want 0 after a clean stop; stderr:\n%s", code, p.stderr.String())
	}
}

// A request still open when http.shutdown_timeout is up is cut, and the
// stop is still a clean one (exit 0), said in the log.
func TestServeBinaryCutsWhatIsStillOpenAtShutdownTimeout(t *testing.T) {
	p, base, _ := startServing(t, newFakePlatform(t, false), func(raw string) string {
		return strings.Replace(raw, "shutdown_timeout: 8s", "shutdown_timeout: 1s", 1)
	})
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// A request whose body never finishes: the connection stays active.
	if _, err := fmt.Fprintf(conn, "POST /message HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"+
		"Authorization: Bearer %s\r\nContent-Length: 100\r\n\r\n{\"channelId\"", e2eToken); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	if code := p.waitExit(t, 10*time.Second); code != 0 {
		t.Errorf("exit code = %d, want 0; stderr:\n%s", code, p.stderr.String())
	}
	requireAll(t, "stderr", p.stderr.String(), []string{"shutdown_timeout passed with requests still open"})
}

// A second signal during the drain stops the process at once instead of
// after http.shutdown_timeout.
func TestServeBinaryStopsAtOnceOnASecondSignal(t *testing.T) {
	platform := newFakePlatform(t, true) // holds the post: the drain waits for it
	defer platform.unblock()
	p, base, client := startServing(t, platform)
	if status, body := postJSON(t, client, base+"/console/"+e2eChannel+"/inbound", e2eToken,
		fmt.Sprintf(`{"from":%q,"text":"slow"}`, e2eContact)); status != http.StatusOK {
		t.Fatalf("inbound = %d %s", status, body)
	}
	select {
	case <-platform.arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the event never reached BonyChat")
	}
	client.CloseIdleConnections()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	p.waitFor(t, `"shutting down" in the log`, 10*time.Second, func() bool {
		return strings.Contains(p.stderr.String(), "shutting down")
	})
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatalf("SIGINT: %v", err)
	}
	p.waitExit(t, 5*time.Second) // the drain alone would take 8 s (a loaded machine needs the margin)
}

func TestServeBinaryExitsWithAnErrorOnABadStart(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { busy.Close() })
	busyConfig := writeConfig(t, serveConfig(t, busy.Addr().String(), "http://127.0.0.1:1/webhook"))
	tests := []struct {
		name       string
		env        []string
		args       []string
		wantCode   int
		wantStderr []string
	}{
		{"invalid config exits 1 listing every problem", nil, []string{"--config", manyProblemsConfig}, 1,
			append([]string{"invalid configuration:"}, manyProblemsKeys...)},
		{"unset variable exits 1 naming its key", nil,
			[]string{"--config", writeConfig(t, serveConfig(t, freeAddr(t), "http://127.0.0.1:1/webhook"))}, 1,
			[]string{"channels[0].token: environment variable E2E_CHANNEL_TOKEN is not set"}},
		{"missing config exits 1", nil, []string{"--config", filepath.Join(t.TempDir(), "nope.yaml")}, 1,
			[]string{"read config"}},
		{"no config exits 2", nil, nil, 2, []string{"no configuration"}},
		{"address in use exits 1", []string{"E2E_CHANNEL_TOKEN=" + e2eToken}, []string{"--config", busyConfig}, 1,
			[]string{"cannot listen"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := startBinary(t, tt.env, append([]string{"serve"}, tt.args...)...)
			if code := p.waitExit(t, 10*time.Second); code != tt.wantCode {
				t.Errorf("exit code = %d, want %d; stderr:\n%s", code, tt.wantCode, p.stderr.String())
			}
			requireAll(t, "stderr", p.stderr.String(), tt.wantStderr)
			requireNone(t, "output", p.stdout.String()+p.stderr.String(), append(fixtureTokens, e2eToken))
		})
	}
}
