package adapter

import (
	"context"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/bonychat/bonychat-adapter/store"
)

// handleHealth answers while the process is up.
func (s *Server) handleHealth(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"status": "ok", "version": s.opts.Version})
}

// handleReady answers 200 while the server takes traffic: the store answers
// and it is not shutting down. It also counts pending and dead jobs, so a
// dashboard sees a BonyChat outage building up.
func (s *Server) handleReady(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
	defer cancel()
	body := gin.H{"status": "ready", "version": s.opts.Version, "channels": len(s.channels)}
	code := http.StatusOK
	counts, err := s.st.Count(ctx, store.Pending, store.Leased, store.Dead) // not the many done jobs
	if err == nil {
		err = s.st.Ping(ctx)
	}
	switch {
	case err != nil:
		s.log.Error("store not ready", "error", err.Error())
		body["status"], body["store"], code = "not_ready", "unavailable", http.StatusServiceUnavailable
	default:
		body["store"], body["pendingJobs"], body["deadJobs"] = "ok", counts[store.Pending]+counts[store.Leased], counts[store.Dead]
	}
	if s.draining.Load() {
		body["status"], code = "not_ready", http.StatusServiceUnavailable
	}
	c.JSON(code, body)
}
