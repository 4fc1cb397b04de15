package adapter

import (
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/bonychat/bonychat-adapter/providers"
)

func init() { gin.SetMode(gin.ReleaseMode) }

func (s *Server) routes() *gin.Engine {
	e := gin.New()
	e.HandleMethodNotAllowed = true
	e.RedirectTrailingSlash = false
	e.RedirectFixedPath = false
	e.ContextWithFallback = true
	e.Use(s.requestLog, s.recovery, s.limitBody)
	e.NoRoute(func(c *gin.Context) { providers.WriteError(c.Writer, http.StatusNotFound, "no such endpoint") })
	e.NoMethod(func(c *gin.Context) {
		providers.WriteError(c.Writer, http.StatusMethodNotAllowed, "method not allowed on this endpoint")
	})
	e.POST(s.cfg.BasePath+"/message", s.handleMessage)
	e.GET("/healthz", s.handleHealth)
	e.GET("/readyz", s.handleReady)
	e.GET("/media/:id/:fileName", s.media.handleMedia)
	s.mountProviderRoutes(e)
	if s.demo != nil {
		e.POST("/_demo/platform", s.demo.receive)
		e.GET("/_demo/platform", s.demo.list)
	}
	return e
}

// mountProviderRoutes registers /{kind}/:channelId/{action} once per
// provider kind and action, dispatching to the channel's own handler.
func (s *Server) mountProviderRoutes(e *gin.Engine) {
	seen := map[string]bool{}
	for _, ch := range s.channels {
		for key, r := range ch.routes {
			path := "/" + ch.provider.Kind() + "/:channelId/" + r.Action
			if seen[r.Method+" "+path] {
				continue
			}
			seen[r.Method+" "+path] = true
			e.Handle(r.Method, path, s.dispatch(ch.provider.Kind(), key, r.BearerAuth))
		}
	}
}

func (s *Server) dispatch(kind, key string, bearer bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		ch := s.channelByID(c.Param("channelId"))
		if ch != nil && ch.provider.Kind() != kind {
			ch = nil
		}
		if bearer && !s.authorize(c.Request, ch) {
			writeUnauthorized(c.Writer)
			return
		}
		if ch == nil {
			providers.WriteError(c.Writer, http.StatusNotFound, "unknown channel")
			return
		}
		route := ch.routes[key]
		routeBodyLimit(c, route.MaxBodyBytes)
		route.Handler(c.Writer, c.Request)
	}
}

var requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// requestLog gives every request an ID and logs one line for it: route,
// status and latency; never headers or bodies, which may carry secrets.
func (s *Server) requestLog(c *gin.Context) {
	start := time.Now()
	id := c.GetHeader("X-Request-ID")
	if !requestIDPattern.MatchString(id) {
		id = newRequestID()
	}
	c.Header("X-Request-ID", id)
	c.Set("request_id", id)
	c.Next()
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	level := slog.LevelInfo
	if c.Writer.Status() >= 500 {
		level = slog.LevelError
	}
	s.log.Log(c.Request.Context(), level, "request", "request_id", id, "method", c.Request.Method, "route", route,
		"status", c.Writer.Status(), "latency_ms", time.Since(start).Milliseconds(), "bytes_out", c.Writer.Size())
}

// recovery turns a panic into a 500 that reveals nothing; the log has it.
func (s *Server) recovery(c *gin.Context) {
	defer func() {
		if rec := recover(); rec != nil {
			if rec == http.ErrAbortHandler {
				panic(rec)
			}
			s.log.Error("panic while handling request", "request_id", c.GetString("request_id"), "panic", rec)
			providers.WriteError(c.Writer, http.StatusInternalServerError, "internal error")
			c.Abort()
		}
	}()
	c.Next()
}

func (s *Server) limitBody(c *gin.Context) {
	c.Set(rawBodyKey, c.Request.Body) // a provider route may allow more
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, s.cfg.HTTP.MaxBodyBytes)
	c.Next()
}

const rawBodyKey = "raw_body"

// routeBodyLimit applies a provider route's own, larger body limit.
func routeBodyLimit(c *gin.Context, limit int64) {
	raw, ok := c.Get(rawBodyKey)
	if body, isBody := raw.(io.ReadCloser); ok && isBody && limit > 0 {
		c.Request.Body = http.MaxBytesReader(c.Writer, body, limit)
	}
}

func newRequestID() string { return providers.NewMID() }
