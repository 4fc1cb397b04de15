package testkit

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"slices"
	"sync"
)

// StatusCall is one PostStatus call a Statuses took.
type StatusCall struct{ Contact, MID, Value, Reason string }

// Statuses is a providers.StatusSink that records every call as made (the
// adapter's sink drops late and duplicate receipts; here a provider's own
// decisions are visible). While Fail has set an error it refuses every
// call and records none, like a store that is down.
type Statuses struct {
	mu    sync.Mutex
	calls []StatusCall
	err   error
}

// PostStatus implements providers.StatusSink.
func (s *Statuses) PostStatus(_ context.Context, contact, mID, value, reason string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	s.calls = append(s.calls, StatusCall{contact, mID, value, reason})
	return nil
}

// Fail makes every later call fail with err (nil: succeed again).
func (s *Statuses) Fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err = err
}

// Calls are the calls taken so far, in order.
func (s *Statuses) Calls() []StatusCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// SavedMedia is one file a Media sink took.
type SavedMedia struct {
	Name, ContentType string
	Body              []byte
}

// Media is a providers.MediaSink (and MediaDiscarder) that keeps files in
// memory and links them as BaseURL/media/N/name, as the adapter does.
// While Fail has set an error it refuses every file (FailAfter: once that
// many more were taken). Discard records the links it is given.
type Media struct {
	BaseURL   string
	mu        sync.Mutex
	saved     []SavedMedia
	err       error
	failAfter int // Saves still taken before err applies
	discarded []string
}

// Save implements providers.MediaSink.
func (m *Media) Save(_ context.Context, name, contentType string, body []byte) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		if m.failAfter <= 0 {
			return "", m.err
		}
		m.failAfter--
	}
	m.saved = append(m.saved, SavedMedia{name, contentType, bytes.Clone(body)})
	return fmt.Sprintf("%s/media/%d/%s", m.BaseURL, len(m.saved), url.PathEscape(name)), nil
}

// Discard implements providers.MediaDiscarder: it records urls.
func (m *Media) Discard(_ context.Context, urls []string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.discarded = append(m.discarded, urls...)
	return nil
}

// Fail makes every later Save fail with err (nil: succeed again).
func (m *Media) Fail(err error) { m.FailAfter(0, err) }

// FailAfter lets n more Saves succeed, then makes every later one fail
// with err (nil: succeed again).
func (m *Media) FailAfter(n int, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.err, m.failAfter = err, n
}

// Saved are the files taken so far, in order.
func (m *Media) Saved() []SavedMedia {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.saved)
}

// Discarded are the links Discard was given so far, in order.
func (m *Media) Discarded() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.discarded)
}
