package adapter

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

// handleHealth answers while the process is up.
func (s *Server) handleHealth(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"status": "ok", "version": s.opts.Version})
}

// handleReady answers 200 while the server takes traffic and 503 once it is
// shutting down, so a load balancer stops sending before connections close.
func (s *Server) handleReady(c *gin.Context) {
	status, code := "ready", http.StatusOK
	if s.draining.Load() {
		status, code = "not_ready", http.StatusServiceUnavailable
	}
	c.JSON(code, gin.H{"status": status, "version": s.opts.Version, "channels": len(s.channels)})
}
