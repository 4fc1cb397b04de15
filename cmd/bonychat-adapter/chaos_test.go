package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bonychat/bonychat-adapter/internal/faketwilio"
	"github.com/bonychat/bonychat-adapter/schema"
	"github.com/bonychat/bonychat-adapter/store"
)

// The chaos soak runs the real binary on a SQLite store with a Twilio
// channel (the fake Twilio, behind a proxy that can kill the adapter
// mid-send) and a console channel, posting to a flaky BonyChat stand-in,
// while traffic flows and the adapter is stopped (SIGKILL or SIGTERM) and
// started again, over and over. It then checks what the crash tests check
// one case at a time: no SMS part is sent twice, nothing answered 200 is
// lost, inbound messages reach BonyChat in order per contact and once each
// (again only after a kill cut off the delivery), and nothing is left
// pending.
//
// By default the run is short (chaosShortTraffic of traffic), with
// Twilio's reconcile_wait at 2 s so that a send in doubt settles within
// seconds. CHAOS_SECONDS=n soaks for n seconds (`make soak`) with more
// contacts and the default 30 s wait. Each run draws a new seed, logged; CHAOS_SEED=n
// replays a run's choices of fault (not its timing).

const (
	chaosShortTraffic = 13 * time.Second
	chaosSMS          = "sms" // the Twilio channel: outbound, inbound and status callbacks
	chaosSMSToken     = "chaos-sms-token-0123456789abcdef"
	chaosConsole      = "con" // the console channel: inbound only
	chaosConsoleToken = "chaos-con-token-0123456789abcdef"
	chaosInbound      = 6 // contacts writing in, alternately by SMS and console
	// chaosPlatformDelay is the longest BonyChat takes to answer.
	chaosPlatformDelay = 1500 * time.Millisecond
	// chaosShutdown is http.shutdown_timeout: ample for the drains, whose
	// longest attempt is a send (send_timeout 2s) or a BonyChat post, so
	// that a SIGTERM cuts nothing.
	chaosShutdown = 10 * time.Second
)

func TestChaosRestartsLoseAndDuplicateNothing(t *testing.T) {
	settings := chaosSettingsFromEnv(t)
	t.Logf("CHAOS_SEED=%d, %v of traffic, soak %v", settings.seed, settings.traffic, settings.soak)
	run := newChaosRun(t, settings)
	run.servers.start()
	end := time.Now().Add(settings.traffic)
	run.startTraffic(end)
	run.stopAndRestartUntil(end)
	run.settle()
	run.check()
}

// chaosSettings are the run's parameters, from the environment.
type chaosSettings struct {
	seed    int64
	traffic time.Duration
	soak    bool // every fault, for as long as CHAOS_SECONDS says
}

func chaosSettingsFromEnv(t *testing.T) chaosSettings {
	s := chaosSettings{seed: time.Now().UnixNano(), traffic: chaosShortTraffic}
	if v := os.Getenv("CHAOS_SEED"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatalf("CHAOS_SEED=%q: want an integer", v)
		}
		s.seed = n
	}
	if v := os.Getenv("CHAOS_SECONDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("CHAOS_SECONDS=%q: want a positive number of seconds", v)
		}
		s.traffic, s.soak = time.Duration(n)*time.Second, true
	}
	return s
}

// --- the faults ---

// stopKind is how the adapter is stopped.
type stopKind string

const (
	stopTerm             stopKind = "SIGTERM"
	stopKill             stopKind = "SIGKILL"
	stopKillAfterCreate  stopKind = "SIGKILL once Twilio made a message"
	stopKillBeforeCreate stopKind = "SIGKILL as a create leaves"
)

func (k stopKind) kills() bool { return k != "" && k != stopTerm }

type weighted[T any] struct {
	weight int
	value  T
}

func pick[T any](rng *rand.Rand, choices []weighted[T]) T {
	total := 0
	for _, c := range choices {
		total += c.weight
	}
	n := rng.Intn(total)
	for _, c := range choices {
		if n < c.weight {
			return c.value
		}
		n -= c.weight
	}
	panic("unreachable")
}

// chaosFaults is what goes wrong in a run, and how often.
type chaosFaults struct {
	outboundContacts int
	reconcileWait    time.Duration                      // Twilio's; 0: the default
	creates          []weighted[faketwilio.Behaviour]   // Twilio's answer to a create
	lists            []weighted[[]faketwilio.Behaviour] // and to look-ups in its message list, in a row
	stops            []stopKind                         // each once per round, the first a kill
	gapMin, gapMax   time.Duration                      // from one start of the adapter to its stop
}

// faultsFor picks the faults of a run. A message that Twilio may or may
// not have (a create dropped or stalled before Twilio made it, a kill at
// any moment of a send) is looked up again only after reconcile_wait: the
// short run sets it to 2 s, which is safe against the fake Twilio, which
// makes a message at once or never (a create the proxy passes on after a
// kill is on its way for milliseconds).
func faultsFor(soak bool) chaosFaults {
	faults := chaosFaults{
		outboundContacts: 4,
		creates: []weighted[faketwilio.Behaviour]{
			{72, faketwilio.OK()}, {6, faketwilio.Throttled()}, {5, faketwilio.RecordThenDrop()},
			{4, faketwilio.Drop()}, {3, faketwilio.RecordThenStall(5 * time.Second)},
			{4, faketwilio.ServiceUnavailableHTML()}, {3, faketwilio.Code(21211)}, {3, faketwilio.Stall(5 * time.Second)},
		},
		lists:  listFaults(80, 12, 8),
		stops:  []stopKind{stopKill, stopKillAfterCreate, stopKillBeforeCreate, stopTerm},
		gapMin: 3 * time.Second,
		gapMax: 9 * time.Second,
	}
	if !soak {
		faults.outboundContacts, faults.reconcileWait = 2, 2*time.Second
		faults.lists = listFaults(70, 10, 20)
		faults.gapMin, faults.gapMax = 1500*time.Millisecond, 3500*time.Millisecond
	}
	return faults
}

// listFaults are Twilio's answers to look-ups, weighted: an answer, a 503
// that the client's own retries get past, or an outage that outlasts them
// (the look-up fails, and the part in doubt waits for the next one).
func listFaults(ok, blip, outage int) []weighted[[]faketwilio.Behaviour] {
	down := faketwilio.ServiceUnavailableHTML()
	return []weighted[[]faketwilio.Behaviour]{
		{ok, []faketwilio.Behaviour{faketwilio.OK()}},
		{blip, []faketwilio.Behaviour{down}},
		{outage, []faketwilio.Behaviour{down, down, down, down}}, // the client tries 4 times
	}
}

// --- the run ---

type chaosRun struct {
	t        *testing.T
	settings chaosSettings
	faults   chaosFaults
	fork     func() *rand.Rand // a source of its own for each goroutine, all from the seed
	twilio   *faketwilio.Server
	platform *chaosPlatform
	proxy    *twilioProxy
	servers  *chaosServers
	traffic  *chaosTraffic
	problems *chaosViolations
	stops    []string // what stopped each process, for the log
}

func newChaosRun(t *testing.T, settings chaosSettings) *chaosRun {
	seeds := rand.New(rand.NewSource(settings.seed))
	run := &chaosRun{t: t, settings: settings, faults: faultsFor(settings.soak), problems: &chaosViolations{},
		fork: func() *rand.Rand { return rand.New(rand.NewSource(seeds.Int63())) }}
	buildBinary(t)
	dir := t.TempDir()
	client := localClient(t)
	run.platform = newChaosPlatform(run.fork())
	platformAddr := freeAddr(t)
	serveStandInAt(t, platformAddr, run.platform)
	run.twilio = faketwilio.New(t, twilioAccount, twilioAuthToken)
	addr, proxyAddr := freeAddr(t), freeAddr(t)
	run.servers = &chaosServers{t: t, dir: dir, addr: addr, base: "http://" + addr, client: client,
		webhookBase: "http://" + platformAddr + "/webhook/", twilioURL: "http://" + proxyAddr,
		reconcileWait: run.faults.reconcileWait}
	run.proxy = &twilioProxy{twilio: run.twilio, servers: run.servers, forward: localClient(t), fired: make(chan struct{}, 1)}
	serveStandInAt(t, proxyAddr, run.proxy)
	return run
}

// stopAndRestartUntil stops the adapter and starts it again, every gap,
// until a gap would end too close to end.
func (run *chaosRun) stopAndRestartUntil(end time.Time) {
	rng := run.fork()
	var round []stopKind
	for {
		gap := run.faults.gapMin + time.Duration(rng.Int63n(int64(run.faults.gapMax-run.faults.gapMin)))
		if time.Now().Add(gap).After(end.Add(-time.Second)) {
			return
		}
		time.Sleep(gap)
		if len(round) == 0 {
			round = slices.Clone(run.faults.stops)
			rng.Shuffle(len(round), func(i, j int) { round[i], round[j] = round[j], round[i] })
			if len(run.stops) == 0 { // the run's first stop is a kill
				k := slices.IndexFunc(round, stopKind.kills)
				round[0], round[k] = round[k], round[0]
			}
		}
		kind := round[0]
		round = round[1:]
		run.stops = append(run.stops, string(run.stop(kind)))
		time.Sleep(time.Duration(rng.Intn(800)) * time.Millisecond) // clients meet a closed port
		run.servers.start()
	}
}

// stop stops the running adapter as kind says and returns how it stopped:
// a kill at a create falls back to a plain SIGKILL when no create comes.
func (run *chaosRun) stop(kind stopKind) stopKind {
	g := run.servers.current()
	if g.exited() {
		run.t.Fatalf("the adapter exited by itself (code %d); stderr:\n%s", g.cmd.ProcessState.ExitCode(), tail(g.stderr.String(), 40))
	}
	switch kind {
	case stopTerm:
		run.servers.terminate(g)
		return kind
	case stopKillAfterCreate, stopKillBeforeCreate:
		run.proxy.arm(kind)
		select {
		case <-run.proxy.fired:
		case <-time.After(10 * time.Second):
			if run.proxy.disarm() {
				kind = stopKill
				run.servers.kill(g, kind)
			} else {
				<-run.proxy.fired
			}
		}
	default:
		run.servers.kill(g, kind)
	}
	g.waitExit(run.t, 30*time.Second)
	return kind
}

// settle ends the faults, lets the drivers finish what they started, and
// stops the adapter once it has nothing pending. A job stored after the
// last look at /readyz (a status written apart from its outcome) would be
// left pending in the store: the adapter is then started again to send it.
func (run *chaosRun) settle() {
	run.platform.flaky.Store(false)
	run.twilio.Always(faketwilio.Create, faketwilio.OK())
	run.twilio.Always(faketwilio.List, faketwilio.OK())
	run.traffic.wait(2 * time.Minute)
	for round := 1; ; round++ {
		g := run.servers.current()
		run.servers.waitNothingPending(g, 3*time.Minute)
		run.servers.terminate(g)
		pending, dead := run.unfinishedJobs()
		for _, j := range dead {
			run.problems.add("job left dead: %s", j)
		}
		if len(pending) == 0 {
			return
		}
		if round == 3 {
			run.problems.add("jobs still pending after %d rounds of settling: %v", round, pending)
			return
		}
		run.t.Logf("pending after the adapter had none: %v; starting it again", pending)
		run.servers.start()
	}
}

// unfinishedJobs lists the jobs in the stopped adapter's store that are
// not done.
func (run *chaosRun) unfinishedJobs() (pending, dead []string) {
	st, err := store.Open("sqlite:" + filepath.Join(run.servers.dir, "adapter.db"))
	if err != nil {
		run.t.Fatalf("open the store after the run: %v", err)
	}
	defer st.Close()
	jobs, err := st.Jobs(context.Background(), store.JobFilter{})
	if err != nil {
		run.t.Fatalf("list the jobs after the run: %v", err)
	}
	for _, j := range jobs {
		desc := fmt.Sprintf("%d %s %s %s %s (%s)", j.ID, j.Queue, j.ChannelID, j.MID, j.State, j.LastError)
		switch j.State {
		case store.Done:
		case store.Dead:
			dead = append(dead, desc)
		default:
			pending = append(pending, desc)
		}
	}
	return pending, dead
}

// --- the adapter's processes ---

// chaosServers runs the adapter one process after another on one store.
// Each process (a generation) posts to BonyChat under a path of its own,
// webhookBase+generation, so that every delivery names the process that
// made it.
type chaosServers struct {
	t                      *testing.T
	dir, addr, base        string
	webhookBase, twilioURL string
	reconcileWait          time.Duration // Twilio's; 0: the default
	client                 *http.Client
	mu                     sync.Mutex
	gens                   []*chaosGen
}

// chaosGen is one process of the adapter.
type chaosGen struct {
	*process
	stoppedBy stopKind // "" while it runs
}

func (s *chaosServers) start() *chaosGen {
	s.mu.Lock()
	n := len(s.gens)
	s.mu.Unlock()
	cfgPath := filepath.Join(s.dir, "config.yaml")
	cfg := chaosConfig(s.addr, s.dir, s.webhookBase+strconv.Itoa(n), s.twilioURL, s.reconcileWait)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		s.t.Fatal(err)
	}
	g := &chaosGen{process: startBinary(s.t, nil, "serve", "--config", cfgPath)}
	s.mu.Lock()
	s.gens = append(s.gens, g)
	s.mu.Unlock()
	waitHealthy(s.t, g.process, s.client, s.base)
	return g
}

func (s *chaosServers) current() *chaosGen {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gens[len(s.gens)-1]
}

func (s *chaosServers) generations() []*chaosGen {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.gens)
}

// kill SIGKILLs g; it may run on any goroutine.
func (s *chaosServers) kill(g *chaosGen, kind stopKind) {
	s.mu.Lock()
	g.stoppedBy = kind
	s.mu.Unlock()
	_ = g.cmd.Process.Signal(syscall.SIGKILL)
}

// terminate stops g with SIGTERM: it must drain and exit 0.
func (s *chaosServers) terminate(g *chaosGen) {
	s.mu.Lock()
	g.stoppedBy = stopTerm
	s.mu.Unlock()
	// Idle connections count as busy in http.Server.Shutdown for a while.
	s.client.CloseIdleConnections()
	if err := g.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		s.t.Fatalf("SIGTERM: %v", err)
	}
	if code := g.waitExit(s.t, chaosShutdown+30*time.Second); code != 0 {
		s.t.Errorf("exit code %d after SIGTERM, want 0; stderr:\n%s", code, tail(g.stderr.String(), 30))
	}
}

func (s *chaosServers) stoppedBy(g *chaosGen) stopKind {
	s.mu.Lock()
	defer s.mu.Unlock()
	return g.stoppedBy
}

// cutOff: g stopped without recording all it had done, so what it last
// posted to BonyChat may come again from the next process: it was killed,
// or its drain ran out of time.
func (s *chaosServers) cutOff(g *chaosGen) bool {
	return s.stoppedBy(g).kills() || strings.Contains(g.stderr.String(), "stopping with attempts still in flight")
}

// waitNothingPending waits until /readyz counts no pending job.
func (s *chaosServers) waitNothingPending(g *chaosGen, timeout time.Duration) {
	g.waitFor(s.t, "/readyz to count no pending job", timeout, func() bool {
		r, err := getReadyz(s.client, s.base)
		return err == nil && *r.PendingJobs == 0
	})
}

// chaosConfig is the two channels on one store, with quick retries, a
// 1 s /message wait (throttled sends are answered before they end), and a
// BonyChat timeout far above the stand-in's slowest answer: a timed-out
// post that BonyChat took would come again, and count as a duplicate.
// reconcileWait is Twilio's (0: the default).
func chaosConfig(listen, dir, webhookURL, twilioURL string, reconcileWait time.Duration) string {
	sms := twilioChannelYAML(chaosSMS, chaosSMSToken, twilioURL)
	if reconcileWait > 0 {
		sms += fmt.Sprintf("      reconcile_wait: %s\n", reconcileWait)
	}
	return binaryConfigHead(listen, dir, "info") + fmt.Sprintf(`http:
  shutdown_timeout: %s
outbound:
  wait: 1s
  retry_min: 100ms
  retry_max: 2s
  send_timeout: 2s
platform:
  webhook_url: %q
  timeout: 10s
  retries: 1
  retry_min: 50ms
  retry_max: 500ms
  rate_limit: 1000
channels:
%s  - id: %q
    token: %q
    id_type: phone
    provider: console
`, chaosShutdown, webhookURL, sms, chaosConsole,
		chaosConsoleToken)
}

// --- BonyChat ---

// chaosPlatform is a flaky BonyChat: while flaky it refuses (500, 429) or
// delays some posts; it records every event it accepted, with the
// generation of the process that posted it.
type chaosPlatform struct {
	flaky atomic.Bool

	mu         sync.Mutex
	rng        *rand.Rand
	deliveries []chaosDelivery
	problems   []string
}

type chaosDelivery struct {
	gen              int
	channel, contact string
	event            standInEvent
}

// key names the event: an event repeated has the same key.
func (d chaosDelivery) key() string {
	key := d.event.Type + " " + d.event.MID
	if d.event.Status != nil {
		key += " " + d.event.Status.Value
	}
	return key
}

func newChaosPlatform(rng *rand.Rand) *chaosPlatform {
	p := &chaosPlatform{rng: rng}
	p.flaky.Store(true)
	return p
}

var chaosTokens = map[string]string{chaosSMS: chaosSMSToken, chaosConsole: chaosConsoleToken}

func (p *chaosPlatform) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	post, authorized := readStandInPost(r, func(channelID string) string { return chaosTokens[channelID] })
	gen, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/webhook/"))
	if post.Problem == "" && err != nil {
		post.Problem = "path " + r.URL.Path
	}
	if post.Problem != "" {
		p.mu.Lock()
		p.problems = append(p.problems, post.Problem)
		p.mu.Unlock()
		if authorized {
			w.WriteHeader(http.StatusBadRequest)
		} else {
			w.WriteHeader(http.StatusUnauthorized)
		}
		return
	}
	status, delay := p.fault()
	select {
	case <-time.After(delay):
	case <-r.Context().Done():
		return // the post was given up: nothing accepted
	}
	if status == http.StatusOK {
		p.accept(gen, post.Payload)
	}
	if status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "1")
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, `{}`)
}

// fault is how the next post is answered, and after how long.
func (p *chaosPlatform) fault() (status int, delay time.Duration) {
	if !p.flaky.Load() {
		return http.StatusOK, 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch x := p.rng.Intn(100); {
	case x < 10:
		return http.StatusInternalServerError, 0
	case x < 20:
		return http.StatusTooManyRequests, 0
	case x < 35:
		return http.StatusOK, time.Duration(p.rng.Int63n(int64(chaosPlatformDelay)))
	}
	return http.StatusOK, 0
}

func (p *chaosPlatform) accept(gen int, payload standInPayload) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range payload.Events {
		p.deliveries = append(p.deliveries, chaosDelivery{gen: gen, channel: payload.ChannelID, contact: payload.ContactID, event: e})
	}
}

func (p *chaosPlatform) snapshot() (deliveries []chaosDelivery, problems []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.deliveries), slices.Clone(p.problems)
}

// --- Twilio ---

// twilioProxy passes the adapter's requests on to the fake Twilio. Armed,
// it SIGKILLs the adapter at the next create: once Twilio made the message
// (the adapter never hears of it), or before the create reaches Twilio.
type twilioProxy struct {
	twilio  *faketwilio.Server
	servers *chaosServers
	forward *http.Client
	fired   chan struct{} // the armed kill happened

	mu    sync.Mutex
	armed stopKind
}

func (p *twilioProxy) arm(kind stopKind) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.armed = kind
}

// disarm reports whether the proxy was still armed (had not fired).
func (p *twilioProxy) disarm() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	was := p.armed != ""
	p.armed = ""
	return was
}

func (p *twilioProxy) armedFor(kind stopKind) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.armed == kind
}

// take disarms the proxy if it is armed for kind, and reports whether it was.
func (p *twilioProxy) take(kind stopKind) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.armed != kind {
		return false
	}
	p.armed = ""
	return true
}

func (p *twilioProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	create := r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/Messages.json")
	if create && p.take(stopKillBeforeCreate) {
		p.killAdapter(stopKillBeforeCreate)
	}
	resp, err := p.pass(r, body)
	if create && p.armedFor(stopKillAfterCreate) && p.twilioMade(body) && p.take(stopKillAfterCreate) {
		if err == nil {
			resp.Body.Close()
		}
		p.killAdapter(stopKillAfterCreate)
	}
	if err != nil {
		panic(http.ErrAbortHandler) // Twilio did not answer: neither does the proxy
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

func (p *twilioProxy) pass(r *http.Request, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(r.Context(), r.Method, p.twilio.URL+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header = r.Header.Clone()
	return p.forward.Do(req)
}

// twilioMade reports whether Twilio has the message the create form asked
// for (its status callback names the mId and part).
func (p *twilioProxy) twilioMade(body []byte) bool {
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return false
	}
	return slices.ContainsFunc(p.twilio.Messages(), func(m faketwilio.Message) bool {
		return m.StatusCallback == form.Get("StatusCallback")
	})
}

// killAdapter SIGKILLs the adapter and, once it is dead, drops the
// connection it would have read the answer from.
func (p *twilioProxy) killAdapter(kind stopKind) {
	g := p.servers.current()
	p.servers.kill(g, kind)
	select {
	case <-g.done:
	case <-time.After(30 * time.Second): // the killer's waitExit reports it
	}
	p.fired <- struct{}{}
	panic(http.ErrAbortHandler)
}

// postSigned posts a form to the adapter as Twilio does, signed.
func postSigned(ctx context.Context, client *http.Client, u string, form url.Values) (int, []byte, error) {
	req, err := faketwilio.NewSignedClientRequest(twilioAuthToken, u, u, form)
	if err != nil {
		return 0, nil, err
	}
	resp, err := client.Do(req.WithContext(ctx))
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, b, err
}

// --- the traffic ---

// chaosTraffic sends the adapter what BonyChat, contacts and Twilio send
// it, and records how each was answered.
type chaosTraffic struct {
	ctx      context.Context // ends only when the drivers overrun their time
	cancel   context.CancelFunc
	until    time.Time // no new message starts after it
	seed     int64
	base     string
	client   *http.Client
	twilio   *faketwilio.Server
	problems *chaosViolations
	wg       sync.WaitGroup

	mu              sync.Mutex
	outbound        []*outboundRecord
	posted          map[string]inboundMessage // every inbound message posted, by mId
	acked           []inboundMessage          // in the order they were acknowledged
	receipts        map[string][]string       // mId -> receipts of whole messages answered 200, in order
	failedByReceipt map[string]bool           // mIds a failed receipt was posted for, for any part
}

func (run *chaosRun) startTraffic(until time.Time) {
	ctx, cancel := context.WithCancel(context.Background())
	tr := &chaosTraffic{ctx: ctx, cancel: cancel, until: until, seed: run.settings.seed, base: run.servers.base,
		client: run.servers.client, twilio: run.twilio, problems: run.problems,
		posted: map[string]inboundMessage{}, receipts: map[string][]string{}, failedByReceipt: map[string]bool{}}
	run.traffic = tr
	run.t.Cleanup(func() { cancel(); tr.wg.Wait() }) // no driver outlives the test
	drive := func(rng *rand.Rand, f func(*rand.Rand)) {
		tr.wg.Add(1)
		go func() {
			defer tr.wg.Done()
			f(rng)
		}()
	}
	drive(run.fork(), func(rng *rand.Rand) { tr.scriptTwilio(rng, run.faults) })
	for c := range run.faults.outboundContacts {
		drive(run.fork(), func(rng *rand.Rand) { tr.sendOutbound(rng, c) })
	}
	for c := range chaosInbound {
		drive(run.fork(), func(rng *rand.Rand) { tr.sendInbound(rng, c) })
	}
	drive(run.fork(), tr.sendReceipts)
}

// open: new messages may start.
func (tr *chaosTraffic) open() bool { return time.Now().Before(tr.until) && tr.ctx.Err() == nil }

// wait waits for the drivers to finish what they started; past timeout it
// stops them, and the run fails.
func (tr *chaosTraffic) wait(timeout time.Duration) {
	done := make(chan struct{})
	go func() {
		tr.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(timeout):
		tr.problems.add("the drivers still waited for answers %v after the traffic ended", timeout)
		tr.cancel()
		<-done
	}
}

func pause(rng *rand.Rand, shortest, longest time.Duration) {
	time.Sleep(shortest + time.Duration(rng.Int63n(int64(longest-shortest)+1)))
}

// scriptTwilio keeps a few of the run's faults queued for Twilio's creates
// and look-ups while the traffic lasts.
func (tr *chaosTraffic) scriptTwilio(rng *rand.Rand, faults chaosFaults) {
	for tr.open() {
		for tr.twilio.Pending(faketwilio.Create) < 4 {
			tr.twilio.Script(faketwilio.Create, pick(rng, faults.creates))
		}
		for tr.twilio.Pending(faketwilio.List) < 2 {
			tr.twilio.Script(faketwilio.List, pick(rng, faults.lists)...)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// outboundRecord is one message BonyChat sent, and what it was answered.
type outboundRecord struct {
	contact, text, key string
	mid                string
	okAt               time.Time // when the first 200 answer came
	attempts           int
	answered           bool     // some attempt got an answer
	answers            []string // each attempt's, for the report
}

// sendOutbound sends contact c message after message, a quarter of them
// long enough for several SMS parts, half with an Idempotency-Key.
func (tr *chaosTraffic) sendOutbound(rng *rand.Rand, c int) {
	contact := fmt.Sprintf("+1555010%04d", c)
	for n := 0; tr.open(); n++ {
		rec := &outboundRecord{contact: contact, text: fmt.Sprintf("seed %d out c%d n%d", tr.seed, c, n)}
		if rng.Intn(4) == 0 {
			var b strings.Builder
			b.WriteString(rec.text)
			for i := range 300 + rng.Intn(400) {
				fmt.Fprintf(&b, " w%d", i)
			}
			rec.text = b.String()
		}
		if rng.Intn(2) == 0 {
			rec.key = fmt.Sprintf("k-%d-%d-%d", tr.seed, c, n)
		}
		tr.mu.Lock()
		tr.outbound = append(tr.outbound, rec)
		tr.mu.Unlock()
		tr.postOutbound(rng, rec)
		pause(rng, 0, 300*time.Millisecond)
	}
}

// postOutbound posts rec to /message. A keyed message is posted again with
// its key, as BonyChat would, after a failure or a 5xx (a 502, which says
// the send is in doubt, at most twice); a fifth of its tries give up early.
func (tr *chaosTraffic) postOutbound(rng *rand.Rand, rec *outboundRecord) {
	body := fmt.Sprintf(`{"channelId":%q,"contactId":%q,"message":{"type":"text","text":%q}}`, chaosSMS, rec.contact, rec.text)
	for doubts := 0; ; {
		var giveUpAfter time.Duration
		if rec.key != "" && rng.Intn(5) == 0 {
			giveUpAfter = time.Duration(200+rng.Intn(1200)) * time.Millisecond
		}
		status, answer, err := tr.postMessage(giveUpAfter, rec.key, body)
		tr.noteAnswer(rec, status, answer, err)
		switch {
		case rec.key == "" || tr.ctx.Err() != nil || err == nil && status < 500:
			return
		case status == http.StatusBadGateway:
			if doubts++; doubts == 2 {
				return
			}
		}
		pause(rng, 50*time.Millisecond, 250*time.Millisecond)
	}
}

func (tr *chaosTraffic) postMessage(giveUpAfter time.Duration, key, body string) (int, []byte, error) {
	ctx, cancel := tr.ctx, context.CancelFunc(func() {})
	if giveUpAfter > 0 {
		ctx, cancel = context.WithTimeout(tr.ctx, giveUpAfter)
	}
	defer cancel()
	return postWithKey(ctx, tr.client, tr.base+"/message", chaosSMSToken, key, body)
}

func (tr *chaosTraffic) noteAnswer(rec *outboundRecord, status int, answer []byte, err error) {
	rec.attempts++
	if err != nil {
		rec.answers = append(rec.answers, "error")
		return
	}
	rec.answered = true
	rec.answers = append(rec.answers, fmt.Sprintf("%d %s", status, strings.TrimSpace(string(answer))))
	if status != http.StatusOK {
		return
	}
	var got struct {
		MID string `json:"mId"`
	}
	switch {
	case json.Unmarshal(answer, &got) != nil || got.MID == "":
		tr.problems.add("/message answered 200 %s, want an mId", answer)
	case rec.mid == "":
		rec.mid, rec.okAt = got.MID, time.Now()
	case rec.mid != got.MID:
		tr.problems.add("Idempotency-Key %s was answered mId %s, then %s", rec.key, rec.mid, got.MID)
	}
}

// inboundMessage is one message a contact writes in.
type inboundMessage struct {
	channel, contact, mid, text string
}

// sendInbound has contact c write message after message, each only once
// the one before it was acknowledged; some are posted twice at once, some
// again later, as providers redeliver.
func (tr *chaosTraffic) sendInbound(rng *rand.Rand, c int) {
	channel := []string{chaosSMS, chaosConsole}[c%2]
	contact := fmt.Sprintf("+1555020%04d", c)
	for n := 0; tr.open(); n++ {
		m := inboundMessage{channel: channel, contact: contact, text: fmt.Sprintf("hello seed %d c%d n%d", tr.seed, c, n)}
		post, wrongAck := tr.inboundPost(&m, c, n)
		tr.mu.Lock()
		tr.posted[m.mid] = m
		tr.mu.Unlock()
		if rng.Intn(10) == 0 {
			tr.wg.Add(1)
			go func() {
				defer tr.wg.Done()
				_, _, _ = post(tr.ctx)
			}()
		}
		res := redeliverUntilAcked(tr.ctx, post, wrongAck)
		if !res.acked {
			tr.problems.add("inbound %s not acknowledged after %d posts: %s %q", m.mid, res.attempts, res.fatal, res.errs)
			return // the contact's later messages must not overtake it
		}
		tr.mu.Lock()
		tr.acked = append(tr.acked, m)
		tr.mu.Unlock()
		if rng.Intn(100) < 15 {
			pause(rng, 0, 200*time.Millisecond)
			if status, answer, err := post(tr.ctx); err == nil && refusedForGood(status) {
				tr.problems.add("inbound %s posted again: answered %d %s", m.mid, status, answer)
			}
		}
		pause(rng, 0, 250*time.Millisecond)
	}
}

// inboundPost gives m its mId and returns how to post it to its channel,
// and how to check the acknowledgement.
func (tr *chaosTraffic) inboundPost(m *inboundMessage, c, n int) (post func(context.Context) (int, []byte, error), wrongAck func([]byte) string) {
	if m.channel == chaosConsole {
		m.mid = fmt.Sprintf("CN%d-%d-%d", tr.seed, c, n)
		body := fmt.Sprintf(`{"from":%q,"id":%q,"text":%q}`, m.contact, m.mid, m.text)
		endpoint := tr.base + "/console/" + chaosConsole + "/inbound"
		return func(ctx context.Context) (int, []byte, error) {
			return postOnce(ctx, tr.client, endpoint, chaosConsoleToken, body)
		}, answerNames(m.mid)
	}
	m.mid = fmt.Sprintf("SM%016x%08x%08x", uint64(tr.seed), c, n)
	form := tr.twilio.InboundForm(faketwilio.Inbound{MessageSID: m.mid, From: m.contact, To: twilioFrom, Body: m.text})
	endpoint := tr.base + "/twilio/" + chaosSMS + "/inbound"
	return func(ctx context.Context) (int, []byte, error) {
		return postSigned(ctx, tr.client, endpoint, form)
	}, func([]byte) string { return "" }
}

// sendReceipts posts Twilio status callbacks for messages Twilio has, in
// any order, some twice, as Twilio may.
func (tr *chaosTraffic) sendReceipts(rng *rand.Rand) {
	values := []string{"queued", "sent", "sent", "delivered", "delivered", "delivered", "read", "undelivered", "failed"}
	var lastURL string
	var lastForm url.Values
	for tr.open() {
		pause(rng, 30*time.Millisecond, 130*time.Millisecond)
		if lastURL != "" && rng.Intn(5) == 0 {
			tr.postReceipt(lastURL, lastForm)
			continue
		}
		msgs := tr.twilio.Messages()
		if len(msgs) == 0 {
			continue
		}
		m := msgs[rng.Intn(len(msgs))]
		value, code := values[rng.Intn(len(values))], ""
		if value == "failed" || value == "undelivered" {
			code = "30003"
			tr.mu.Lock()
			tr.failedByReceipt[callbackQuery(m.StatusCallback).Get("mid")] = true
			tr.mu.Unlock()
		}
		lastURL, lastForm = m.StatusCallback, tr.twilio.StatusFor(m, value, code)
		tr.postReceipt(lastURL, lastForm)
	}
}

// postReceipt posts one status callback and notes a whole message's
// receipt that the adapter took (answered 200).
func (tr *chaosTraffic) postReceipt(callback string, form url.Values) {
	status, _, err := postSigned(tr.ctx, tr.client, callback, form)
	q, value := callbackQuery(callback), form.Get("MessageStatus")
	if err != nil || status != http.StatusOK || q.Has("part") || value == "queued" {
		return
	}
	if value == "undelivered" {
		value = "failed"
	}
	tr.mu.Lock()
	tr.receipts[q.Get("mid")] = append(tr.receipts[q.Get("mid")], value)
	tr.mu.Unlock()
}

// callbackQuery is the query of a status callback URL: mid, and part for
// a message sent in parts.
func callbackQuery(callback string) url.Values {
	u, err := url.Parse(callback)
	if err != nil {
		return url.Values{}
	}
	return u.Query()
}

// --- the checks ---

// chaosViolations collects what the run found wrong, from any goroutine.
type chaosViolations struct {
	mu   sync.Mutex
	list []string
}

func (v *chaosViolations) add(format string, args ...any) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.list = append(v.list, fmt.Sprintf(format, args...))
}

func (v *chaosViolations) all() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return slices.Clone(v.list)
}

func (run *chaosRun) check() {
	deliveries, bad := run.platform.snapshot()
	for _, p := range bad {
		run.problems.add("BonyChat got a bad post: %s", p)
	}
	first := run.checkRepeats(deliveries)
	run.checkInbound(first)
	statuses := statusesByMID(first)
	run.checkStatusesMoveForward(statuses)
	run.checkReceiptsArrive(statuses)
	sent := run.checkOutbound(statuses)
	kills := 0
	for _, g := range run.servers.generations() {
		if run.servers.stoppedBy(g).kills() {
			kills++
		}
	}
	if kills == 0 || len(run.traffic.acked) == 0 || sent == 0 {
		run.problems.add("the run proves little: %d kills, %d inbound messages acknowledged, %d outbound sent",
			kills, len(run.traffic.acked), sent)
	}
	run.t.Logf("stops: %q", run.stops)
	run.t.Logf("%d outbound messages (%d sent); %d inbound acknowledged; BonyChat took %d events (%d distinct); Twilio made %d messages",
		len(run.traffic.outbound), sent, len(run.traffic.acked), len(deliveries), len(first), len(run.twilio.Messages()))
	run.report()
}

func (run *chaosRun) report() {
	problems := run.problems.all()
	if len(problems) == 0 {
		return
	}
	sort.Strings(problems)
	if len(problems) > 40 {
		problems = append(problems[:40], fmt.Sprintf("... and %d more", len(problems)-40))
	}
	var b strings.Builder
	for i, g := range run.servers.generations() {
		fmt.Fprintf(&b, "--- process %d (stopped by %s), stderr tail ---\n%s\n", i, run.servers.stoppedBy(g), tail(g.stderr.String(), 25))
	}
	run.t.Errorf("CHAOS_SEED=%d: %d problems:\n%s\n%s", run.settings.seed, len(problems), strings.Join(problems, "\n"), b.String())
}

// checkRepeats lets an event reach BonyChat again only from a later
// process, after the one that delivered it was cut off before it could
// record that (killed, or its drain ran out of time), or from a process
// that logged that it could not record a delivery. It returns each
// event's first delivery, in the order they came.
func (run *chaosRun) checkRepeats(deliveries []chaosDelivery) []chaosDelivery {
	gens := run.servers.generations()
	var first []chaosDelivery
	last := map[string]chaosDelivery{}
	for _, d := range deliveries {
		if d.gen < 0 || d.gen >= len(gens) {
			run.problems.add("%s was posted to a webhook of process %d, which never ran", d.key(), d.gen)
			continue
		}
		prev, seen := last[d.key()]
		last[d.key()] = d
		if !seen {
			first = append(first, d)
			continue
		}
		g := gens[prev.gen]
		cutOff := d.gen > prev.gen && run.servers.cutOff(g)
		if !cutOff && !strings.Contains(g.stderr.String(), "BonyChat may get these events again") {
			run.problems.add("%s reached BonyChat again, from process %d, after process %d (stopped by %q) had delivered it",
				d.key(), d.gen, prev.gen, run.servers.stoppedBy(g))
		}
	}
	return first
}

// checkInbound: every acknowledged inbound message reached BonyChat as it
// was written, in the order its contact wrote them, and nothing else did.
func (run *chaosRun) checkInbound(first []chaosDelivery) {
	tr := run.traffic
	got := map[string][]string{} // channel and contact -> mIds, in order
	for _, d := range first {
		if d.event.Type != "message" {
			continue
		}
		got[d.channel+" "+d.contact] = append(got[d.channel+" "+d.contact], d.event.MID)
		m, ok := tr.posted[d.event.MID]
		if !ok || d.channel != m.channel || d.contact != m.contact || d.event.Message == nil ||
			d.event.Message.Type != "text" || d.event.Message.Text == nil || *d.event.Message.Text != m.text {
			run.problems.add("BonyChat got %+v from %s %s, which no contact wrote (%+v)", d.event, d.channel, d.contact, m)
		}
	}
	want := map[string][]string{}
	for _, m := range tr.acked {
		want[m.channel+" "+m.contact] = append(want[m.channel+" "+m.contact], m.mid)
	}
	for contact, mids := range want {
		if !slices.Equal(got[contact], mids) {
			run.problems.add("contact %s: %s", contact, sequenceDiff(got[contact], mids))
		}
	}
}

// sequenceDiff says how got differs from want: what is missing, what is
// extra, or else where the order first differs.
func sequenceDiff(got, want []string) string {
	missing := slices.DeleteFunc(slices.Clone(want), func(s string) bool { return slices.Contains(got, s) })
	extra := slices.DeleteFunc(slices.Clone(got), func(s string) bool { return slices.Contains(want, s) })
	if len(missing) > 0 || len(extra) > 0 {
		return fmt.Sprintf("acknowledged but never delivered %v; delivered but never acknowledged %v", missing, extra)
	}
	for i := range want {
		if got[i] != want[i] {
			return fmt.Sprintf("delivered out of order from #%d: got %v, want %v", i, got[i:min(i+5, len(got))], want[i:min(i+5, len(want))])
		}
	}
	return "differs"
}

// statusEvent is one message_status BonyChat got.
type statusEvent struct{ value, reason string }

func statusesByMID(first []chaosDelivery) map[string][]statusEvent {
	byMID := map[string][]statusEvent{}
	for _, d := range first {
		if d.event.Type == "message_status" && d.event.Status != nil {
			byMID[d.event.MID] = append(byMID[d.event.MID], statusEvent{d.event.Status.Value, d.event.Status.Message})
		}
	}
	return byMID
}

var statusRank = map[string]int{"sent": 1, "delivered": 2, "read": 3, "failed": 4}

// movesForward: after prev, the adapter posts next (a delivered or read
// message cannot fail any more).
func movesForward(prev, next string) bool {
	return statusRank[next] > statusRank[prev] && (next != "failed" || statusRank[prev] < statusRank["delivered"])
}

func (run *chaosRun) checkStatusesMoveForward(statuses map[string][]statusEvent) {
	for mid, events := range statuses {
		for i, e := range events {
			if statusRank[e.value] == 0 || i > 0 && !movesForward(events[i-1].value, e.value) {
				run.problems.add("the statuses of %s went %v: not forward only", mid, events)
				break
			}
		}
	}
}

// checkReceiptsArrive: a receipt the adapter took reached BonyChat, unless
// a status the adapter posted made it late.
func (run *chaosRun) checkReceiptsArrive(statuses map[string][]statusEvent) {
	for mid, taken := range run.traffic.receipts {
		for _, value := range taken {
			if !slices.ContainsFunc(statuses[mid], func(e statusEvent) bool { return !movesForward(e.value, value) }) {
				run.problems.add("receipt %s of %s was taken, but BonyChat got only %v", value, mid, statuses[mid])
			}
		}
	}
}

// twilioPart names one SMS of a message: its mId and part ("" when whole).
type twilioPart struct{ mid, part string }

// checkOutbound: Twilio made no part of a message twice; a message
// answered 200 was sent whole or reported failed (never "may have been
// sent": the adapter can always look it up here); one answered before its
// send ended has its end posted as a status. It returns how many were sent.
func (run *chaosRun) checkOutbound(statuses map[string][]statusEvent) (sent int) {
	made := map[twilioPart][]faketwilio.Message{}
	for _, m := range run.twilio.Messages() {
		q := callbackQuery(m.StatusCallback)
		made[twilioPart{q.Get("mid"), q.Get("part")}] = append(made[twilioPart{q.Get("mid"), q.Get("part")}], m)
	}
	for p, ms := range made {
		if len(ms) > 1 {
			run.problems.add("Twilio made part %q of %s %d times", p.part, p.mid, len(ms))
		}
	}
	for _, rec := range run.traffic.outbound {
		if run.checkOutboundMessage(rec, made, statuses[rec.mid]) {
			sent++
		}
	}
	return sent
}

func (run *chaosRun) checkOutboundMessage(rec *outboundRecord, made map[twilioPart][]faketwilio.Message, statuses []statusEvent) (sent bool) {
	if rec.mid == "" {
		if rec.key != "" && !rec.answered {
			run.problems.add("message with Idempotency-Key %s never answered: %v", rec.key, rec.answers)
		}
		return false
	}
	parts := len(schema.SplitText(rec.text, 1600))
	atTwilio, lastMade := 0, time.Time{}
	for i := range parts {
		p := twilioPart{rec.mid, ""}
		if parts > 1 {
			p.part = strconv.Itoa(i)
		}
		if ms := made[p]; len(ms) > 0 {
			atTwilio++
			if ms[0].DateCreated.After(lastMade) {
				lastMade = ms[0].DateCreated
			}
		}
	}
	i := slices.IndexFunc(statuses, func(e statusEvent) bool { return e.value == "failed" })
	switch {
	case atTwilio == parts && i >= 0 && !run.traffic.failedByReceipt[rec.mid]:
		run.problems.add("%s was sent whole (%d parts) but reported failed: %q", rec.mid, parts, statuses[i].reason)
	case atTwilio == parts && rec.attempts == 1 && rec.okAt.Before(lastMade) && len(statuses) == 0:
		run.problems.add("%s was answered 200 before its send ended, but BonyChat never got its end", rec.mid)
	case atTwilio == parts:
	case i < 0:
		run.problems.add("%s was answered 200, but Twilio has %d of its %d parts and BonyChat no failed status (statuses %v; answers %q)",
			rec.mid, atTwilio, parts, statuses, rec.answers)
	case strings.Contains(statuses[i].reason, "may have been sent"):
		run.problems.add("%s failed in doubt (%q) with %d of %d parts at Twilio, which it could have looked up",
			rec.mid, statuses[i].reason, atTwilio, parts)
	}
	return atTwilio == parts
}
