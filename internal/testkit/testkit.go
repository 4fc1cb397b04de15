// Package testkit holds helpers shared by tests: a transport that can only
// reach loopback addresses, so no test can ever touch the internet, a log
// capture for asserting on what was logged, Records, an in-memory record
// store that fails on demand, with its Expiries, and the Statuses and Media
// sinks a provider is given.
package testkit

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// LocalOnlyTransport refuses every request whose host is not a loopback
// address (127.0.0.0/8, ::1 or "localhost"), before any connection is tried.
type LocalOnlyTransport struct {
	Base http.RoundTripper
}

// NewLocalOnlyTransport returns a loopback-only transport with short timeouts.
func NewLocalOnlyTransport() *LocalOnlyTransport {
	return &LocalOnlyTransport{Base: &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		ResponseHeaderTimeout: 10 * time.Second,
		MaxIdleConnsPerHost:   16,
	}}
}

// RoundTrip implements http.RoundTripper.
func (t *LocalOnlyTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if !IsLoopbackHost(r.URL.Hostname()) {
		return nil, fmt.Errorf("testkit: refusing non-loopback request to %q", r.URL.Host)
	}
	return t.Base.RoundTrip(r)
}

// IsLoopbackHost reports whether host names this machine's loopback.
func IsLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// LockDefaultTransport makes http.DefaultTransport loopback-only, for code
// that builds its own clients. Call it from TestMain.
func LockDefaultTransport() {
	http.DefaultTransport = NewLocalOnlyTransport()
}

// LogBuffer is a concurrency-safe buffer for a test logger.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything logged so far.
func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// NewLogger returns a debug-level JSON logger writing into a new LogBuffer.
func NewLogger() (*slog.Logger, *LogBuffer) {
	buf := &LogBuffer{}
	return slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}
