package adapter

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// NewLogger builds the process logger from the log settings.
func NewLogger(cfg LogConfig, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: parseLevel(cfg.Level)}
	if cfg.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func parseLevel(s string) slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return slog.LevelInfo
	}
	return l
}

// redactingHandler replaces every known secret in a log record (message,
// attributes, errors) with "[redacted]": a last line of defence for a
// provider error or panic that quotes a credential.
type redactingHandler struct {
	next    slog.Handler
	secrets []string
}

// Redacting wraps a logger so that none of secrets can reach its output.
func Redacting(log *slog.Logger, secrets []string) *slog.Logger {
	var keep []string
	for _, s := range secrets {
		if len(s) >= 4 { // redacting tiny strings would mangle every line
			keep = append(keep, s)
		}
	}
	return slog.New(&redactingHandler{next: log.Handler(), secrets: keep})
}

func (h *redactingHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h *redactingHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, h.redact(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.attr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

func (h *redactingHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	red := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		red[i] = h.attr(a)
	}
	return &redactingHandler{next: h.next.WithAttrs(red), secrets: h.secrets}
}

func (h *redactingHandler) WithGroup(name string) slog.Handler {
	return &redactingHandler{next: h.next.WithGroup(name), secrets: h.secrets}
}

func (h *redactingHandler) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, h.redact(v.String()))
	case slog.KindGroup:
		group := v.Group()
		red := make([]any, len(group))
		for i, g := range group {
			red[i] = h.attr(g)
		}
		return slog.Group(a.Key, red...)
	case slog.KindAny:
		return h.anyAttr(a.Key, v.Any())
	}
	return a
}

func (h *redactingHandler) anyAttr(key string, v any) slog.Attr {
	switch x := v.(type) {
	case error:
		return slog.String(key, h.redact(x.Error()))
	case json.RawMessage:
		return slog.Any(key, json.RawMessage(h.redact(string(x))))
	case fmt.Stringer:
		return slog.String(key, h.redact(x.String()))
	case string:
		return slog.String(key, h.redact(x))
	}
	return slog.String(key, h.redact(fmt.Sprint(v)))
}

func (h *redactingHandler) redact(s string) string {
	for _, secret := range h.secrets {
		if strings.Contains(s, secret) {
			s = strings.ReplaceAll(s, secret, "[redacted]")
		}
	}
	return s
}
