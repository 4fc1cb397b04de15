package adapter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"

	"github.com/gin-gonic/gin"

	"github.com/bonychat/bonychat-adapter/providers"
	"github.com/bonychat/bonychat-adapter/providers/console"
)

// Options are what the caller supplies besides the configuration.
type Options struct {
	Version string
	Logger  *slog.Logger
	// Transport carries every outbound HTTP request (BonyChat, providers).
	// Tests pass one that refuses anything but loopback.
	Transport http.RoundTripper
	// NewProvider builds a channel's provider; nil means the built-in ones.
	NewProvider func(ch ChannelConfig, ingest providers.Ingester, log *slog.Logger) (providers.Provider, error)
}

// Server is a configured adapter, ready to serve.
type Server struct {
	cfg      *Config
	opts     Options
	log      *slog.Logger
	engine   *gin.Engine
	channels map[string]*channel
	platform PlatformPoster
	demo     *demoPlatform
	draining atomic.Bool
}

// channel is one configured BonyChat channel with its provider.
type channel struct {
	cfg      ChannelConfig
	tokens   tokenDigests
	provider providers.Provider
	routes   map[string]providers.Route // by method + " " + action
	target   PlatformTarget
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
	s := &Server{cfg: cfg, opts: opts, log: opts.Logger, channels: map[string]*channel{}}
	s.platform = NewPlatformClient(cfg.Platform, opts.Transport, opts.Logger)
	if err := s.buildChannels(); err != nil {
		return nil, err
	}
	if cfg.Demo.Platform {
		s.demo = newDemoPlatform(s)
	}
	s.engine = s.routes()
	return s, nil
}

func builtinProvider(ch ChannelConfig, ingest providers.Ingester, log *slog.Logger) (providers.Provider, error) {
	switch ch.Provider {
	case console.Kind:
		return console.New(ch.ID, ch.IDType, log, ingest), nil
	}
	return nil, fmt.Errorf("channel %s: unknown provider %q", ch.ID, ch.Provider)
}

func (s *Server) buildChannels() error {
	for _, cc := range s.cfg.Channels {
		ch := &channel{cfg: cc, tokens: newTokenDigests(cc.Token, cc.PreviousToken), routes: map[string]providers.Route{},
			target: PlatformTarget{ChannelID: cc.ID, WebhookURL: cc.Webhook(s.cfg.Platform), Token: cc.Token, IDType: cc.IDType}}
		p, err := s.opts.NewProvider(cc, s.ingester(ch), s.log.With("channel", cc.ID, "provider", cc.Provider))
		if err != nil {
			return err
		}
		ch.provider = p
		if wp, ok := p.(providers.WebhookProvider); ok {
			for _, r := range wp.Routes() {
				ch.routes[r.Method+" "+r.Action] = r
			}
		}
		s.channels[cc.ID] = ch
	}
	return nil
}

// Handler is the server's HTTP handler (for tests and embedding).
func (s *Server) Handler() http.Handler { return s.engine }

// Serve answers requests on ln until ctx ends, then shuts down gracefully:
// it stops accepting, lets in-flight requests finish within
// http.shutdown_timeout, and returns nil.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	h := s.cfg.HTTP
	srv := &http.Server{Handler: s.engine, ReadHeaderTimeout: h.ReadHeaderTimeout, ReadTimeout: h.ReadTimeout,
		WriteTimeout: h.WriteTimeout, IdleTimeout: h.IdleTimeout, ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.log.Info("serving", "addr", ln.Addr().String(), "channels", len(s.channels), "version", s.opts.Version)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.draining.Store(true)
	s.log.Info("shutting down", "timeout", h.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), h.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	s.log.Info("stopped")
	return nil
}

// channelByID returns the channel or nil.
func (s *Server) channelByID(id string) *channel { return s.channels[id] }
