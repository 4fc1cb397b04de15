package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bonychat/bonychat-adapter/adapter"
	"github.com/bonychat/bonychat-adapter/store"
)

const (
	jobsChannel = "ops"
	jobsToken   = "ops-channel-token-3b9f6a01e24c"
)

var jobsHeader = []string{"ID", "QUEUE", "STATE", "CHANNEL", "CONTACT", "MID", "ATTEMPTS", "NEXT", "LAST", "ERROR"}

// jobsConfig is a console channel whose store and media live in dir.
func jobsConfig(listen, dir, webhookURL string) string {
	return storeConfig(listen, dir, webhookURL, "info", jobsChannel, jobsToken)
}

// writeJobsConfig writes jobsConfig into a fresh directory and returns the
// config path and the directory.
func writeJobsConfig(t *testing.T, listen, webhookURL string) (cfgPath, dir string) {
	t.Helper()
	dir = t.TempDir()
	cfgPath = filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfgPath, []byte(jobsConfig(listen, dir, webhookURL)), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfgPath, dir
}

// listedJob is one row of "jobs list".
type listedJob struct {
	ID                             int64
	Queue, State, Channel, Contact string
	MID                            string
	Attempts                       int
	Next, LastError                string
}

// parseJobList checks the header of "jobs list" output and parses its rows.
func parseJobList(t *testing.T, out string) []listedJob {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) == 0 || strings.Join(strings.Fields(lines[0]), " ") != strings.Join(jobsHeader, " ") {
		t.Fatalf("jobs list output does not start with the header %v:\n%s", jobsHeader, out)
	}
	var jobs []listedJob
	for _, line := range lines[1:] {
		f := strings.Fields(line)
		if len(f) < 8 {
			t.Fatalf("jobs list row %q has %d columns, want at least 8:\n%s", line, len(f), out)
		}
		id, err1 := strconv.ParseInt(f[0], 10, 64)
		attempts, err2 := strconv.Atoi(f[6])
		_, err3 := time.Parse(time.RFC3339, f[7])
		if err1 != nil || err2 != nil || err3 != nil {
			t.Fatalf("jobs list row %q: bad ID, ATTEMPTS or NEXT (%v, %v, %v)", line, err1, err2, err3)
		}
		jobs = append(jobs, listedJob{ID: id, Queue: f[1], State: f[2], Channel: f[3], Contact: f[4], MID: f[5],
			Attempts: attempts, Next: f[7], LastError: strings.Join(f[8:], " ")})
	}
	return jobs
}

// jobsCLI runs "jobs ..." in-process with BONYCHAT_CONFIG unset and checks
// no output quotes the channel token.
func jobsCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	t.Setenv("BONYCHAT_CONFIG", "")
	code, stdout, stderr = runCLI(append([]string{"jobs"}, args...)...)
	requireNone(t, "jobs "+strings.Join(args, " ")+" output", stdout+stderr, []string{jobsToken})
	return code, stdout, stderr
}

func TestJobsCLIRefusesBadUsageWithExit2AndTouchesNothing(t *testing.T) {
	cfg, dir := writeJobsConfig(t, "127.0.0.1:1", "http://127.0.0.1:1/webhook")
	db := filepath.Join(dir, "adapter.db")
	tests := []struct {
		name       string
		args       []string
		wantStderr string
	}{
		{"jobs alone", nil, "usage:"},
		{"unknown jobs subcommand", []string{"purge", "--config", cfg}, "usage:"},
		{"list without --config", []string{"list"}, "usage: bonychat-adapter jobs list"},
		{"list with an unknown flag", []string{"list", "--config", cfg, "--bogus"}, "flag provided but not defined: -bogus"},
		{"list with a bad --limit", []string{"list", "--config", cfg, "--limit", "many"}, "invalid value"},
		{"list with a stray argument", []string{"list", "--config", cfg, "dead"}, "usage: bonychat-adapter jobs list"},
		{"list with --config but no value", []string{"list", "--config"}, "flag needs an argument"},
		{"retry without --config", []string{"retry", "--dead"}, "usage: bonychat-adapter jobs retry"},
		{"retry with neither IDs nor --dead", []string{"retry", "--config", cfg}, "usage: bonychat-adapter jobs retry"},
		{"retry with both IDs and --dead", []string{"retry", "--config", cfg, "--dead", "3"}, "usage: bonychat-adapter jobs retry"},
		{"retry with --dead=true and an ID", []string{"retry", "--config", cfg, "--dead=true", "3"}, "usage: bonychat-adapter jobs retry"},
		{"retry with a non-numeric ID", []string{"retry", "--config", cfg, "abc"}, `not a job ID: "abc"`},
		{"retry with a non-numeric ID after a good one", []string{"retry", "--config", cfg, "3", "4x"}, `not a job ID: "4x"`},
		{"retry with ID 0", []string{"retry", "--config", cfg, "0"}, `not a job ID: "0"`},
		{"retry with an ID too large", []string{"retry", "--config", cfg, "99999999999999999999"}, "not a job ID"},
		{"retry with a negative ID", []string{"retry", "--config", cfg, "-3"}, "flag provided but not defined: -3"},
		{"retry with an unknown flag", []string{"retry", "--config", cfg, "--all"}, "flag provided but not defined: -all"},
		{"retry with the ID before --config", []string{"retry", "3", "--config", cfg}, "usage: bonychat-adapter jobs retry"},
		{"drop without --config", []string{"drop", "--dead"}, "usage: bonychat-adapter jobs drop"},
		{"drop with neither IDs nor --dead", []string{"drop", "--config", cfg}, "usage: bonychat-adapter jobs drop"},
		{"drop with both IDs and --dead", []string{"drop", "--config", cfg, "--dead", "3"}, "usage: bonychat-adapter jobs drop"},
		{"drop with a non-numeric ID", []string{"drop", "--config", cfg, "3", "x"}, `not a job ID: "x"`},
		{"drop with --channel but not --dead", []string{"drop", "--config", cfg, "--channel", "ops", "3"}, "usage: bonychat-adapter jobs drop"},
		{"retry with --channel alone", []string{"retry", "--config", cfg, "--channel", "ops"}, "usage: bonychat-adapter jobs retry"},
		{"drop with an empty --channel", []string{"drop", "--config", cfg, "--dead", "--channel", ""}, "usage: bonychat-adapter jobs drop"},
		{"retry with an empty --channel=", []string{"retry", "--config", cfg, "--dead", "--channel="}, "usage: bonychat-adapter jobs retry"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := jobsCLI(t, tt.args...)
			if code != 2 {
				t.Errorf("exit code = %d, want 2; stdout %q, stderr:\n%s", code, stdout, stderr)
			}
			if stdout != "" {
				t.Errorf("stdout = %q, want nothing", stdout)
			}
			if !strings.Contains(stderr, tt.wantStderr) {
				t.Errorf("stderr does not contain %q:\n%s", tt.wantStderr, stderr)
			}
			if _, err := os.Stat(db); !os.IsNotExist(err) {
				t.Errorf("a usage error opened the store: %s exists (%v)", db, err)
			}
		})
	}
}

func TestJobsCLIFailsWithExit1OnABadConfig(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.yaml")
	broken := filepath.Join(dir, "broken.yaml")
	unset := filepath.Join(dir, "unset.yaml")
	writeFile(t, broken, "store: [unclosed\n")
	writeFile(t, unset, "store: \"sqlite:${JOBS_TEST_UNSET_STORE}\"\n")
	for _, args := range [][]string{
		{"list", "--config", missing},
		{"retry", "--config", missing, "--dead"},
		{"retry", "--config", missing, "7"},
		{"list", "--config", broken},
		{"list", "--config", unset},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			code, stdout, stderr := jobsCLI(t, args...)
			if code != 1 || stdout != "" {
				t.Errorf("exit code = %d, stdout %q; want 1 and nothing", code, stdout)
			}
			if !strings.Contains(stderr, "read config") && !strings.Contains(stderr, "invalid configuration") {
				t.Errorf("stderr does not say what is wrong with the config:\n%s", stderr)
			}
			requireNone(t, "stderr", stderr, fixtureTokens)
		})
	}
}

// The jobs commands work on the server's store only: run from another
// folder (a relative store path then names another file), or before the
// server ever ran, they say where they looked and exit 1, and create
// nothing; an empty list would look like "nothing is dead".
func TestJobsCLIOpensOnlyAnExistingStore(t *testing.T) {
	serverDir := t.TempDir()
	cfg := filepath.Join(serverDir, "config.yaml")
	writeFile(t, cfg, "store: \"sqlite:data/adapter.db\"\n")
	elsewhere := t.TempDir()
	t.Chdir(elsewhere)
	for _, args := range [][]string{{"list", "--config", cfg}, {"retry", "--config", cfg, "--dead"}} {
		code, stdout, stderr := jobsCLI(t, args...)
		want := filepath.Join(elsewhere, "data", "adapter.db")
		if code != 1 || stdout != "" || !strings.Contains(stderr, "no store at "+want) {
			t.Errorf("jobs %v = %d, stdout %q, stderr %q; want 1 naming %s", args, code, stdout, stderr, want)
		}
		if _, err := os.Stat(filepath.Join(elsewhere, "data")); !os.IsNotExist(err) {
			t.Fatalf("jobs %v created %s", args, filepath.Join(elsewhere, "data"))
		}
	}
}

// Only the store setting is read: the operator's shell need not hold the
// channels' secrets, and problems elsewhere in the file do not stop an
// operator from looking at the jobs.
func TestJobsCLINeedsOnlyTheStoreSetting(t *testing.T) {
	dir := t.TempDir()
	serverStore(t, dir)
	cfg := filepath.Join(dir, "config.yaml")
	writeFile(t, cfg, "store: \"sqlite:"+filepath.Join(dir, "adapter.db")+"\"\nchannels:\n  - id: sms01\n    token: \"${JOBS_TEST_UNSET_TOKEN}\"\n")
	code, stdout, stderr := jobsCLI(t, "list", "--config", cfg)
	if code != 0 || stderr != "" || len(parseJobList(t, stdout)) != 0 {
		t.Fatalf("jobs list = %d, stdout %q, stderr %q; want 0, only the header", code, stdout, stderr)
	}
}

// A filter that names nothing that exists is a usage error, not an empty
// list.
func TestJobsListRefusesAnUnknownFilter(t *testing.T) {
	cfg, dir := writeJobsConfig(t, "127.0.0.1:1", "http://127.0.0.1:1/webhook")
	serverStore(t, dir)
	for _, args := range [][]string{{"--state", "failed"}, {"--state", "Dead"}, {"--queue", "inbound"}, {"--limit", "0"}} {
		code, stdout, stderr := jobsCLI(t, append([]string{"list", "--config", cfg}, args...)...)
		if code != 2 || stdout != "" || !strings.Contains(stderr, args[0]) {
			t.Errorf("jobs list %v = %d, stdout %q, stderr %q; want 2 naming %s", args, code, stdout, stderr, args[0])
		}
	}
}

// serverStore creates the store in dir as the server would at start-up.
func serverStore(t *testing.T, dir string) {
	t.Helper()
	st, err := store.Open("sqlite:" + filepath.Join(dir, "adapter.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestJobsCLIOnAnEmptyStore(t *testing.T) {
	cfg, dir := writeJobsConfig(t, "127.0.0.1:1", "http://127.0.0.1:1/webhook")
	serverStore(t, dir)

	code, stdout, stderr := jobsCLI(t, "list", "--config", cfg)
	if code != 0 || stderr != "" {
		t.Fatalf("jobs list = %d, stderr %q; want 0 and nothing", code, stderr)
	}
	if jobs := parseJobList(t, stdout); len(jobs) != 0 || strings.Count(stdout, "\n") != 1 {
		t.Errorf("jobs list on an empty store printed %q, want only the header", stdout)
	}

	for _, args := range [][]string{
		{"list", "--config", cfg, "--state", "dead", "--channel", jobsChannel, "--queue", "platform", "--limit", "5"},
		{"list", "-config=" + cfg, "-state=pending"},
	} {
		code, stdout, stderr = jobsCLI(t, args...)
		if code != 0 || stderr != "" || len(parseJobList(t, stdout)) != 0 {
			t.Errorf("jobs %v = %d, stdout %q, stderr %q; want 0, only the header", args, code, stdout, stderr)
		}
	}

	t.Setenv("BONYCHAT_CONFIG", cfg) // the config may come from the environment
	code, stdout, stderr = runCLI("jobs", "list")
	if code != 0 || stderr != "" || len(parseJobList(t, stdout)) != 0 {
		t.Errorf("BONYCHAT_CONFIG=F jobs list = %d, stdout %q, stderr %q; want 0, only the header", code, stdout, stderr)
	}
}

// On an empty store, retry and drop of every dead job touch nothing and
// succeed; of a job given by ID they fail, saying only dead jobs qualify.
func TestJobsRetryAndDropOnAnEmptyStoreTouchNothing(t *testing.T) {
	cfg, dir := writeJobsConfig(t, "127.0.0.1:1", "http://127.0.0.1:1/webhook")
	serverStore(t, dir)
	for _, tc := range []struct{ command, done, refusal string }{
		{"retry", "0 job(s) queued again\n", "only dead jobs can be retried"},
		{"drop", "0 job(s) deleted\n", "only dead jobs can be deleted"},
	} {
		code, stdout, stderr := jobsCLI(t, tc.command, "--config", cfg, "--dead")
		if code != 0 || stdout != tc.done || stderr != "" {
			t.Errorf("jobs %s --dead = %d, stdout %q, stderr %q; want 0, %q", tc.command, code, stdout, stderr, tc.done)
		}
		code, stdout, stderr = jobsCLI(t, tc.command, "--config", cfg, "42")
		if code != 1 || stdout != tc.done || !strings.Contains(stderr, tc.refusal) {
			t.Errorf("jobs %s 42 = %d, stdout %q, stderr %q; want 1 saying %q", tc.command, code, stdout, stderr, tc.refusal)
		}
	}
}

// --dead --channel takes only that channel's dead jobs, in chunks, and a
// channel with none touches nothing (not every dead job).
func TestJobsRetryAndDropOfOneChannelsDeadJobs(t *testing.T) {
	cfg, dir := writeJobsConfig(t, "127.0.0.1:1", "http://127.0.0.1:1/webhook")
	st, err := store.Open("sqlite:" + filepath.Join(dir, "adapter.db"))
	if err != nil {
		t.Fatal(err)
	}
	perChannel := map[string]int{"a": deadChunk + 5, "b": 3} // a: more than one chunk
	for ch, n := range perChannel {
		killJobs(t, st, ch, n)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	run := func(want string, args ...string) {
		t.Helper()
		code, stdout, stderr := jobsCLI(t, append(args[:1:1], append([]string{"--config", cfg}, args[1:]...)...)...)
		if code != 0 || stdout != want {
			t.Fatalf("jobs %v = %d, stdout %q, stderr %q; want 0, %q", args, code, stdout, stderr, want)
		}
	}
	code, stdout, stderr := jobsCLI(t, "drop", "--config", cfg, "--dead", "--channel", "none")
	if code != 0 || stdout != "0 job(s) deleted\n" || !strings.Contains(stderr, `channel "none" has no dead jobs`) {
		t.Fatalf("jobs drop --dead --channel none = %d, stdout %q, stderr %q; want 0, nothing deleted, and a word", code, stdout, stderr)
	}
	run(fmt.Sprintf("%d job(s) deleted\n", perChannel["a"]), "drop", "--dead", "--channel", "a")
	run("3 job(s) queued again\n", "retry", "--dead", "--channel", "b")
	run("0 job(s) queued again\n", "retry", "--dead", "--channel", "a")

	st, err = store.OpenExisting("sqlite:" + filepath.Join(dir, "adapter.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	counts, err := st.Count(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if counts[store.Dead] != 0 || counts[store.Pending] != 3 {
		t.Errorf("after dropping a's and retrying b's dead jobs: %v; want none dead, b's 3 pending", counts)
	}
}

// killJobs stores n platform jobs of channel ch and lets each die.
func killJobs(t *testing.T, st store.Store, ch string, n int) {
	t.Helper()
	ctx := context.Background()
	jobs := make([]store.NewJob, n)
	for i := range jobs {
		jobs[i] = store.NewJob{Queue: store.Platform, ChannelID: ch, ContactID: fmt.Sprint("c", i), MID: fmt.Sprint(ch, i)}
	}
	if _, err := st.Enqueue(ctx, jobs, nil); err != nil {
		t.Fatal(err)
	}
	for {
		leases, err := st.Lease(ctx, store.LeaseRequest{Queue: store.Platform, ChannelID: ch, Now: time.Now(), For: time.Minute, Lanes: 500})
		if err != nil {
			t.Fatal(err)
		}
		if len(leases) == 0 {
			return
		}
		for _, l := range leases {
			if err := st.Kill(ctx, l.Token, "refused"); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// readyz is what GET /readyz reports.
type readyz struct {
	Status      string `json:"status"`
	Store       string `json:"store"`
	PendingJobs *int   `json:"pendingJobs"`
	DeadJobs    *int   `json:"deadJobs"`
}

func getReadyz(client *http.Client, base string) (readyz, error) {
	var r readyz
	resp, err := client.Get(base + "/readyz")
	if err != nil {
		return r, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return r, err
	}
	if resp.StatusCode != http.StatusOK || r.DeadJobs == nil || r.PendingJobs == nil {
		return r, fmt.Errorf("/readyz answered %d %+v", resp.StatusCode, r)
	}
	return r, nil
}

// waitJobCounts waits until /readyz reports these pending and dead counts.
func waitJobCounts(t *testing.T, p *process, client *http.Client, base string, pending, dead int) {
	t.Helper()
	var last readyz
	var lastErr error
	p.waitFor(t, fmt.Sprintf(`/readyz with "pendingJobs":%d,"deadJobs":%d`, pending, dead), 15*time.Second, func() bool {
		last, lastErr = getReadyz(client, base)
		return lastErr == nil && *last.PendingJobs == pending && *last.DeadJobs == dead
	})
}

// jobsServer is the binary serving the jobs channel, with a BonyChat
// stand-in that refuses every post for good (422: the jobs die) until the
// test says otherwise.
type jobsServer struct {
	platform *standIn
	p        *process
	cfg      string
	base     string
	client   *http.Client
}

func startJobsServer(t *testing.T) jobsServer {
	t.Helper()
	platform := newStandIn(jobsToken)
	platform.status.Store(http.StatusUnprocessableEntity)
	bony := httptest.NewServer(platform)
	t.Cleanup(bony.Close)
	addr := freeAddr(t)
	cfg, _ := writeJobsConfig(t, addr, bony.URL+"/webhook")
	s := jobsServer{platform: platform, p: startBinary(t, nil, "serve", "--config", cfg), cfg: cfg,
		base: "http://" + addr, client: localClient(t)}
	waitHealthy(t, s.p, s.client, s.base)
	return s
}

func TestJobsListAndRetryWhileTheServerRuns(t *testing.T) {
	srv := startJobsServer(t) // BonyChat refuses for good: the jobs die
	platform, p, cfg, base, client := srv.platform, srv.p, srv.cfg, srv.base, srv.client
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server stderr (tail):\n%s", tail(p.stderr.String(), 40))
		}
	})

	contacts := map[string]string{"ops-m1": "+60170000101", "ops-m2": "+60170000102", "ops-m3": "+60170000103"}
	inbound := func(mid string) {
		t.Helper()
		body := fmt.Sprintf(`{"from":%q,"id":%q,"text":"hello %s"}`, contacts[mid], mid, mid)
		status, answer := postJSON(t, client, base+"/console/"+jobsChannel+"/inbound", jobsToken, body)
		if status != http.StatusOK || !strings.Contains(string(answer), mid) {
			t.Fatalf("inbound %s = %d %s, want 200 with its mId", mid, status, answer)
		}
	}
	list := func(args ...string) []listedJob {
		t.Helper()
		code, stdout, stderr := jobsCLI(t, append([]string{"list", "--config", cfg}, args...)...)
		if code != 0 || stderr != "" {
			t.Fatalf("jobs list %v = %d, stderr %q; want 0", args, code, stderr)
		}
		return parseJobList(t, stdout)
	}
	byMID := func(jobs []listedJob) map[string]listedJob {
		m := map[string]listedJob{}
		for _, j := range jobs {
			m[j.MID] = j
		}
		return m
	}

	// Two messages; BonyChat answers 422, so both end dead.
	inbound("ops-m1")
	inbound("ops-m2")
	waitJobCounts(t, p, client, base, 0, 2)

	dead := list("--state", "dead")
	if len(dead) != 2 {
		t.Fatalf("jobs list --state dead lists %d jobs, want 2: %+v", len(dead), dead)
	}
	for _, mid := range []string{"ops-m1", "ops-m2"} {
		j, ok := byMID(dead)[mid]
		switch {
		case !ok:
			t.Errorf("jobs list --state dead does not list %s: %+v", mid, dead)
		case j.Queue != "platform" || j.State != "dead" || j.Channel != jobsChannel || j.Contact != contacts[mid]:
			t.Errorf("dead job of %s = %+v, want queue platform, state dead, channel %s, contact %s",
				mid, j, jobsChannel, contacts[mid])
		case !strings.Contains(j.LastError, "422"):
			t.Errorf("dead job of %s: the reason %q does not mention 422", mid, j.LastError)
		}
	}
	if got := list("--state", "dead", "--queue", "platform", "--channel", jobsChannel); len(got) != 2 {
		t.Errorf("jobs list --state dead --queue platform --channel %s lists %d jobs, want 2", jobsChannel, len(got))
	}
	if got := list("--channel", "other"); len(got) != 0 {
		t.Errorf("jobs list --channel other lists %+v, want none", got)
	}
	if got := list("--queue", "outbound"); len(got) != 0 {
		t.Errorf("jobs list --queue outbound lists %+v, want none", got)
	}
	if got := list("--state", "pending"); len(got) != 0 {
		t.Errorf("jobs list --state pending lists %+v, want none", got)
	}
	// A list cut at --limit says so (on stderr, the table stays clean).
	code, stdout, stderr := jobsCLI(t, "list", "--config", cfg, "--limit", "1")
	if got := parseJobList(t, stdout); code != 0 || len(got) != 1 || !strings.Contains(stderr, "more may match (raise --limit)") {
		t.Errorf("jobs list --limit 1 = %d, %d jobs, stderr %q; want 0, 1 job and a note", code, len(got), stderr)
	}
	if n := platform.distinct(); n != 0 {
		t.Fatalf("BonyChat accepted %d events while it answered 422", n)
	}

	// BonyChat takes them now; the operator replays every dead job.
	platform.status.Store(http.StatusOK)
	code, stdout, stderr = jobsCLI(t, "retry", "--config", cfg, "--dead")
	if code != 0 || stdout != "2 job(s) queued again\n" || stderr != "" {
		t.Fatalf("jobs retry --dead = %d, stdout %q, stderr %q; want 0 and %q", code, stdout, stderr, "2 job(s) queued again\n")
	}
	p.waitFor(t, "BonyChat to receive both replayed events", 10*time.Second, func() bool {
		return platform.times("ops-m1") > 0 && platform.times("ops-m2") > 0
	})
	waitJobCounts(t, p, client, base, 0, 0)
	done := byMID(list("--state", "done"))
	for _, mid := range []string{"ops-m1", "ops-m2"} {
		if _, ok := done[mid]; !ok {
			t.Errorf("the replayed job of %s is not done: %+v", mid, done)
		}
	}

	// A single dead job, replayed by its ID.
	platform.status.Store(http.StatusUnprocessableEntity)
	inbound("ops-m3")
	waitJobCounts(t, p, client, base, 0, 1)
	dead = list("--state", "dead")
	if len(dead) != 1 || dead[0].MID != "ops-m3" {
		t.Fatalf("jobs list --state dead = %+v, want only ops-m3", dead)
	}
	platform.status.Store(http.StatusOK)
	code, stdout, stderr = jobsCLI(t, "retry", "--config", cfg, strconv.FormatInt(dead[0].ID, 10))
	if code != 0 || stdout != "1 job(s) queued again\n" || stderr != "" {
		t.Fatalf("jobs retry %d = %d, stdout %q, stderr %q; want 0 and %q", dead[0].ID, code, stdout, stderr,
			"1 job(s) queued again\n")
	}
	p.waitFor(t, "BonyChat to receive the replayed ops-m3", 10*time.Second, func() bool {
		return platform.times("ops-m3") > 0
	})
	waitJobCounts(t, p, client, base, 0, 0)

	// A done job cannot be retried, and is left as it is.
	doneM1 := byMID(list("--state", "done"))["ops-m1"]
	if doneM1.ID == 0 {
		t.Fatal("jobs list --state done does not list ops-m1")
	}
	code, stdout, stderr = jobsCLI(t, "retry", "--config", cfg, strconv.FormatInt(doneM1.ID, 10))
	if code != 1 || stdout != "0 job(s) queued again\n" || !strings.Contains(stderr, "only dead jobs can be retried") {
		t.Errorf("jobs retry %d (a done job) = %d, stdout %q, stderr %q; want 1 saying only dead jobs can be retried",
			doneM1.ID, code, stdout, stderr)
	}
	if j := byMID(list())["ops-m1"]; j.State != "done" {
		t.Errorf("after retrying a done job it is %+v, want it left done", j)
	}
	time.Sleep(1500 * time.Millisecond) // longer than the workers' poll: a wrongly revived job would be posted now

	// Every event reached BonyChat exactly once.
	posts, accepted, _ := platform.snapshot()
	for _, mid := range []string{"ops-m1", "ops-m2", "ops-m3"} {
		if accepted[mid] != 1 {
			t.Errorf("BonyChat accepted %s %d times, want once", mid, accepted[mid])
		}
	}
	if len(accepted) != 3 {
		t.Errorf("BonyChat accepted %v, want exactly ops-m1, ops-m2 and ops-m3", accepted)
	}
	for i, post := range posts {
		if post.Problem != "" {
			t.Errorf("post %d to BonyChat: %s", i, post.Problem)
		}
		for _, e := range post.Payload.Events {
			if post.Payload.ChannelID != jobsChannel || post.Payload.ContactID != contacts[e.MID] {
				t.Errorf("post %d: event %s for channel %q contact %q, want %q %q", i, e.MID,
					post.Payload.ChannelID, post.Payload.ContactID, jobsChannel, contacts[e.MID])
			}
		}
	}

	client.CloseIdleConnections()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	if code := p.waitExit(t, 15*time.Second); code != 0 {
		t.Errorf("exit code after SIGTERM = %d, want 0", code)
	}
	serverOut := p.stderr.String() + p.stdout.String()
	requireNone(t, "server output", serverOut, []string{jobsToken})
	if !strings.Contains(serverOut, "events dead") {
		t.Errorf("the server never logged the dead events")
	}
}

// jobs drop deletes dead jobs for good while the server runs: they leave
// the list and the /readyz count, and are never posted; a job that is not
// dead is left as it is.
func TestJobsDropDeletesDeadJobsWhileTheServerRuns(t *testing.T) {
	srv := startJobsServer(t)
	platform, p, cfg, base, client := srv.platform, srv.p, srv.cfg, srv.base, srv.client
	inbound := func(mid, from string) {
		t.Helper()
		body := fmt.Sprintf(`{"from":%q,"id":%q,"text":"hello"}`, from, mid)
		if status, answer := postJSON(t, client, base+"/console/"+jobsChannel+"/inbound", jobsToken, body); status != http.StatusOK {
			t.Fatalf("inbound %s = %d %s, want 200", mid, status, answer)
		}
	}
	drop := func(wantCode int, wantOut string, args ...string) {
		t.Helper()
		code, stdout, stderr := jobsCLI(t, append([]string{"drop", "--config", cfg}, args...)...)
		if code != wantCode || stdout != wantOut {
			t.Fatalf("jobs drop %v = %d, stdout %q, stderr %q; want %d, %q", args, code, stdout, stderr, wantCode, wantOut)
		}
	}
	listed := func(state string) map[string]int64 {
		t.Helper()
		code, stdout, stderr := jobsCLI(t, "list", "--config", cfg, "--state", state)
		if code != 0 {
			t.Fatalf("jobs list = %d, stderr %q", code, stderr)
		}
		ids := map[string]int64{}
		for _, j := range parseJobList(t, stdout) {
			ids[j.MID] = j.ID
		}
		return ids
	}

	inbound("drop-m1", "+60170000201")
	inbound("drop-m2", "+60170000202")
	inbound("drop-m3", "+60170000203")
	waitJobCounts(t, p, client, base, 0, 3)
	dead := listed("dead")
	drop(0, "1 job(s) deleted\n", strconv.FormatInt(dead["drop-m1"], 10))
	waitJobCounts(t, p, client, base, 0, 2)
	if _, ok := listed("dead")["drop-m1"]; ok {
		t.Errorf("jobs list --state dead still lists the dropped drop-m1")
	}

	platform.status.Store(http.StatusOK)
	inbound("drop-m4", "+60170000204")
	p.waitFor(t, "BonyChat to take drop-m4", 10*time.Second, func() bool { return platform.times("drop-m4") > 0 })
	doneID := listed("done")["drop-m4"]
	drop(1, "0 job(s) deleted\n", strconv.FormatInt(doneID, 10))
	if listed("done")["drop-m4"] != doneID {
		t.Errorf("dropping a done job changed it; want it left done")
	}

	drop(0, "2 job(s) deleted\n", "--dead")
	waitJobCounts(t, p, client, base, 0, 0)
	code, _, _ := jobsCLI(t, "retry", "--config", cfg, "--dead")
	time.Sleep(1500 * time.Millisecond) // longer than the workers' poll: a dropped job posted would show now
	_, accepted, _ := platform.snapshot()
	for _, mid := range []string{"drop-m1", "drop-m2", "drop-m3"} {
		if accepted[mid] != 0 {
			t.Errorf("BonyChat accepted the dropped %s", mid)
		}
	}
	if code != 0 || accepted["drop-m4"] != 1 {
		t.Errorf("retry --dead after the drop = %d, drop-m4 accepted %d times; want 0 and once", code, accepted["drop-m4"])
	}
}

// A dead platform job's last error quotes what the webhook host answered
// (up to 512 bytes of anything): "jobs list" shows its escape sequences
// (a clipboard write, a screen clear, colours) as '?', never sends them to
// the operator's terminal.
func TestJobsListShowsControlCharactersOfALastErrorAsQuestionMarks(t *testing.T) {
	cfg, dir := writeJobsConfig(t, "127.0.0.1:1", "http://127.0.0.1:1/webhook")
	st, err := store.Open("sqlite:" + filepath.Join(dir, "adapter.db"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := st.Enqueue(ctx, []store.NewJob{{Queue: store.Platform, ChannelID: jobsChannel, ContactID: "+60177872890",
		MID: "m1", Payload: []byte(`{}`)}}, nil); err != nil {
		t.Fatal(err)
	}
	leases, err := st.Lease(ctx, store.LeaseRequest{Queue: store.Platform, Now: time.Now(), For: time.Minute, Lanes: 1, PerLane: 1})
	if err != nil || len(leases) != 1 {
		t.Fatalf("lease: %v %v", leases, err)
	}
	answer := &adapter.PlatformError{Status: 400, Body: "\x1b]52;c;ZWNobyBwd25lZA==\x07\x1b[2J\x1b[1;31mrefused\x1b[0m\u202e"}
	if err := st.Kill(ctx, leases[0].Token, answer.Error()); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	code, stdout, _ := jobsCLI(t, "list", "--config", cfg)
	jobs := parseJobList(t, stdout)
	if code != 0 || len(jobs) != 1 {
		t.Fatalf("jobs list = %d with %d jobs, want 0 with 1:\n%s", code, len(jobs), stdout)
	}
	if strings.ContainsAny(stdout, "\x1b\x07\u202e") {
		t.Errorf("jobs list printed terminal control characters: %q", stdout)
	}
	if !strings.Contains(stdout, "?]52;c;ZWNobyBwd25lZA==??[2J?[1;31mrefused?[0m?") {
		t.Errorf("jobs list does not show the refusal with its controls as '?': %q", stdout)
	}
}
