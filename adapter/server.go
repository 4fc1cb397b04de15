package adapter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/bonychat/bonychat-adapter/providers"
	"github.com/bonychat/bonychat-adapter/providers/console"
	"github.com/bonychat/bonychat-adapter/providers/mailgun"
	"github.com/bonychat/bonychat-adapter/providers/twilio"
	"github.com/bonychat/bonychat-adapter/store"
)

// Options are what the caller supplies besides the configuration.
type Options struct {
	Version string
	Logger  *slog.Logger
	// Transport carries every outbound HTTP request (BonyChat, providers).
	// Tests pass one that refuses anything but loopback.
	Transport http.RoundTripper
	// Store is the durable state; nil opens the one the configuration names.
	Store store.Store
	// NewProvider builds a channel's provider; nil means the built-in ones.
	NewProvider func(ch ChannelConfig, deps providers.Deps) (providers.Provider, error)
}

// Server is a configured adapter, ready to serve.
type Server struct {
	cfg      *Config
	opts     Options
	log      *slog.Logger
	engine   *gin.Engine
	channels map[string]*channel
	platform PlatformPoster
	st       store.Store
	ownStore bool
	pipe     *pipeline
	media    *mediaStore
	// leftMedia are the media files listed before any request (janitor).
	leftMedia []storedFile
	fetcher   *providers.Fetcher
	demo      *demoPlatform
	draining  atomic.Bool
}

// channel is one configured BonyChat channel with its provider.
type channel struct {
	cfg      ChannelConfig
	tokens   tokenDigests
	provider providers.Provider
	routes   map[string]providers.Route // by method + " " + action
	target   PlatformTarget
	// previousNoted is when a use of previous_token was last logged
	// (Unix nanoseconds).
	previousNoted atomic.Int64
}

// New wires a server from a validated configuration.
func New(cfg *Config, opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	opts.Logger = Redacting(opts.Logger, cfg.secrets())
	if opts.NewProvider == nil {
		opts.NewProvider = builtinProvider
	}
	s := &Server{cfg: cfg, opts: opts, log: opts.Logger, channels: map[string]*channel{}, st: opts.Store}
	if s.st == nil {
		st, err := store.Open(cfg.Store)
		if err != nil {
			return nil, fmt.Errorf("open store %s: %w", cfg.Store, err)
		}
		s.st, s.ownStore = st, true
	}
	s.platform = NewPlatformClient(cfg.Platform, opts.Transport, opts.Logger)
	s.pipe = newPipeline(s, s.st)
	s.media = &mediaStore{cfg: cfg.Media, publicURL: strings.TrimSuffix(cfg.PublicURL, "/"), st: s.st, now: time.Now}
	s.listLeftMedia()
	s.fetcher = providers.NewFetcher(providers.FetchConfig{MaxBytes: cfg.Media.MaxBytes,
		AllowPrivateNetworks: cfg.Media.AllowPrivateNetworks})
	if err := s.buildChannels(); err != nil {
		s.Close()
		return nil, err
	}
	s.pipe.initLimiters()
	s.warnUnreachablePublicURL()
	if cfg.Demo.Platform {
		s.demo = newDemoPlatform(s)
	}
	s.engine = s.routes()
	return s, nil
}

// warnUnreachablePublicURL says so when public_url is a loopback address
// (the default) while a channel's provider must call it back: Twilio's
// status callbacks and the media links BonyChat opens would never arrive.
// A warning, not a refusal: tests and local trials use loopback fakes.
func (s *Server) warnUnreachablePublicURL() {
	u, err := url.Parse(s.cfg.PublicURL)
	if err != nil || !isLoopbackHost(u.Hostname()) {
		return
	}
	for _, ch := range s.cfg.Channels {
		if ch.Provider != console.Kind {
			s.log.Warn("public_url is a loopback address: the provider's callbacks and BonyChat's media downloads cannot reach it; set public_url",
				"public_url", s.cfg.PublicURL, "channel", ch.ID, "provider", ch.Provider)
			return
		}
	}
}

func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func builtinProvider(ch ChannelConfig, deps providers.Deps) (providers.Provider, error) {
	switch ch.Provider {
	case console.Kind:
		return console.New(deps), nil
	case twilio.Kind:
		return twilio.New(*ch.Twilio, deps)
	case mailgun.Kind:
		return mailgun.New(*ch.Mailgun, deps)
	}
	return nil, fmt.Errorf("channel %s: unknown provider %q", ch.ID, ch.Provider)
}

func (s *Server) buildChannels() error {
	for _, cc := range s.cfg.Channels {
		ch := &channel{cfg: cc, tokens: newTokenDigests(cc.Token, cc.PreviousToken, cc.PreviousTokenUntil),
			routes: map[string]providers.Route{},
			target: PlatformTarget{ChannelID: cc.ID, WebhookURL: cc.Webhook(s.cfg.Platform), Token: cc.Token, IDType: cc.IDType}}
		p, err := s.opts.NewProvider(cc, s.providerDeps(ch))
		if err != nil {
			return err
		}
		ch.provider = p
		s.warnOfRotationEnd(cc)
		if wp, ok := p.(providers.WebhookProvider); ok {
			for _, r := range wp.Routes() {
				ch.routes[r.Method+" "+r.Action] = r
			}
		}
		s.channels[cc.ID] = ch
	}
	return nil
}

// providerDeps is what a channel's provider gets from the adapter.
func (s *Server) providerDeps(ch *channel) providers.Deps {
	cc := ch.cfg
	return providers.Deps{
		ChannelID: cc.ID, IDType: cc.IDType, PublicURL: strings.TrimSuffix(s.cfg.PublicURL, "/"),
		Log:       s.log.With("channel", cc.ID, "provider", cc.Provider),
		Ingest:    s.ingester(ch),
		Statuses:  channelStatuses{p: s.pipe, channelID: cc.ID},
		Media:     s.media,
		Fetcher:   s.fetcher,
		Records:   storeRecords{st: s.st},
		Transport: s.opts.Transport,
	}
}

// warnOfRotationEnd says at start-up that a channel's previous_token (or
// its end date, left behind) should go.
func (s *Server) warnOfRotationEnd(cc ChannelConfig) {
	switch {
	case cc.PreviousToken != "" && cc.PreviousTokenUntil.Passed(time.Now()):
		s.log.Warn("previous_token_until has passed: previous_token is no longer accepted; remove it", "channel", cc.ID)
	case cc.PreviousToken == "" && cc.PreviousTokenUntil != "":
		s.log.Warn("previous_token_until is set but previous_token is not; remove it", "channel", cc.ID)
	}
}

// listLeftMedia lists the media files there are before this server can
// save any, for the janitor to remove those a crash left without a record.
// Listed later, a file being saved could be taken for one (a file time
// cannot tell: it lags the clock); so Handler may serve before
// StartWorkers.
func (s *Server) listLeftMedia() {
	files, err := s.media.listStoredFiles()
	if err != nil {
		s.log.Warn("list media files", "error", err.Error())
	}
	s.leftMedia = files
}

// Handler is the server's HTTP handler (for tests and embedding).
func (s *Server) Handler() http.Handler { return s.engine }

// Close releases the store if the server opened it. No send starts from
// then on, and what waits to record an end again gives up (start-up
// settles it).
func (s *Server) Close() {
	if s.pipe != nil {
		s.pipe.stopDispatch()
	}
	if s.ownStore && s.st != nil {
		_ = s.st.Close()
	}
}

// Serve answers requests on ln and runs the delivery workers until ctx
// ends, then shuts down gracefully: it stops accepting, lets in-flight
// requests and then attempts finish, all within one http.shutdown_timeout
// (what an operator sizes the kill grace period by), leaves every
// unfinished job in the store, and returns nil.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	stopLeasing, waitWork, err := s.startWorkers()
	if err != nil {
		return err
	}
	// The drain starts with ctx: from then on no new work is leased and no
	// send starts (one started now might not finish within the timeout).
	leaseUntilStop := context.AfterFunc(ctx, stopLeasing)
	deadline, err := s.serveHTTP(ctx, ln)
	leaseUntilStop()
	stopLeasing()
	waitWork(time.Until(deadline)) // what the requests left of the timeout
	if err == nil {
		s.log.Info("stopped")
	}
	return err
}

// StartWorkers resumes what a previous process left and starts the
// delivery workers. The returned stop makes them finish what they hold
// (within http.shutdown_timeout) and return.
func (s *Server) StartWorkers() (stop func(), err error) {
	stopLeasing, waitWork, err := s.startWorkers()
	if err != nil {
		return nil, err
	}
	return func() {
		stopLeasing()
		waitWork(s.cfg.HTTP.ShutdownTimeout)
	}, nil
}

// startWorkers is StartWorkers in two steps: stopLeasing ends the leasing
// loops and the starting of sends (idempotent), waitWork waits at most the
// time given for the attempts in flight.
func (s *Server) startWorkers() (stopLeasing func(), waitWork func(time.Duration), err error) {
	if err := s.pipe.recover(context.Background()); err != nil {
		return nil, nil, fmt.Errorf("resume jobs: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.pipe.run(ctx)
	stopLeasing = func() {
		s.pipe.stopDispatch()
		cancel()
	}
	return stopLeasing, s.pipe.waitFor, nil
}

// serveHTTP serves until ctx ends, then drains the requests; it returns
// the end of the http.shutdown_timeout the drain started.
func (s *Server) serveHTTP(ctx context.Context, ln net.Listener) (deadline time.Time, err error) {
	h := s.cfg.HTTP
	srv := &http.Server{Handler: s.engine, ReadHeaderTimeout: h.ReadHeaderTimeout, ReadTimeout: h.ReadTimeout,
		WriteTimeout: h.WriteTimeout, IdleTimeout: h.IdleTimeout, ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.log.Info("serving", "addr", ln.Addr().String(), "channels", len(s.channels), "version", s.opts.Version)
	select {
	case err := <-errc:
		return time.Now().Add(h.ShutdownTimeout), err
	case <-ctx.Done():
	}
	// No send starts from here on: ended before draining is set, so that
	// whatever sees the drain (a request's own lease, a worker's) also
	// finds dispatching stopped. (Serve's AfterFunc also stops it, in a
	// goroutine of its own that may run later.)
	s.pipe.stopDispatch()
	s.draining.Store(true)
	s.log.Info("shutting down", "timeout", h.ShutdownTimeout.String())
	deadline = time.Now().Add(h.ShutdownTimeout)
	sctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		// Requests still open when the time is up are cut: what they stored
		// stays, and a caller left without an answer sends again. A stop
		// that took its full time is still a stop, not a failure.
		s.log.Warn("http.shutdown_timeout passed with requests still open; closing them", "error", err.Error())
		_ = srv.Close()
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return deadline, err
	}
	return deadline, nil
}

// channelByID returns the channel or nil.
func (s *Server) channelByID(id string) *channel { return s.channels[id] }
