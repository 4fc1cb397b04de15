package twilio

// Helpers of the outbound tests. Every name starts with "out": other test
// files of this package declare their own helpers.

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/bonychat/bonychat-adapter/internal/faketwilio"
	"github.com/bonychat/bonychat-adapter/internal/testkit"
	"github.com/bonychat/bonychat-adapter/providers"
	"github.com/bonychat/bonychat-adapter/schema"
)

// Alphanumeric credentials: twilio-go refuses anything else before sending.
const (
	outAccount   = "AC0123456789abcdef0123456789abcdef"
	outToken     = "outSecretToken0123456789abcdefAB"
	outFrom      = "+15550001111"
	outContact   = "+15551230000"
	outService   = "MG0123456789abcdef0123456789abcdef"
	outPublicURL = "https://adapter.example.com"
	outChannel   = "sms01"
)

// outCounting counts the round trips the provider makes (dial failures
// included, which no server sees).
type outCounting struct {
	n    atomic.Int64
	next http.RoundTripper
}

func (c *outCounting) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.next.RoundTrip(r)
}

// outEnv is one provider wired to one fake Twilio.
type outEnv struct {
	p       *Provider
	fake    *faketwilio.Server
	records *testkit.Records
	trips   *outCounting
	logs    *testkit.LogBuffer
}

type outOption func(*Config, *providers.Deps)

func outWithConfig(f func(*Config)) outOption { return func(c *Config, _ *providers.Deps) { f(c) } }

// outWithTransport replaces the loopback transport under the counter.
func outWithTransport(rt http.RoundTripper) outOption {
	return func(_ *Config, d *providers.Deps) { d.Transport.(*outCounting).next = rt }
}

// outNew builds the provider against a new fake. The provider's logs must
// never carry the auth token.
func outNew(t *testing.T, opts ...outOption) *outEnv {
	t.Helper()
	fake := faketwilio.New(t, outAccount, outToken)
	log, buf := testkit.NewLogger()
	e := &outEnv{fake: fake, records: testkit.NewRecords(), trips: &outCounting{next: testkit.NewLocalOnlyTransport()}, logs: buf}
	cfg := Config{AccountSID: outAccount, AuthToken: outToken, From: outFrom, APIURL: fake.URL}
	deps := providers.Deps{
		ChannelID: outChannel, IDType: schema.IDTypePhone, PublicURL: outPublicURL, Log: log,
		Records: e.records, Transport: e.trips,
	}
	for _, o := range opts {
		o(&cfg, &deps)
	}
	if probs := cfg.Problems(); len(probs) > 0 {
		t.Fatalf("test config invalid: %v", probs)
	}
	p, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	e.p = p
	t.Cleanup(func() {
		if strings.Contains(buf.String(), outToken) {
			t.Errorf("the auth token was logged: %s", buf.String())
		}
	})
	return e
}

func (e *outEnv) send(t *testing.T, m schema.Message, mID string) (providers.Sent, error) {
	t.Helper()
	sent, err := e.p.Send(context.Background(), providers.Recipient{ChannelID: outChannel, ContactID: outContact}, m, mID)
	if err != nil && strings.Contains(err.Error(), outToken) {
		t.Fatalf("the auth token is in the error: %v", err)
	}
	return sent, err
}

// outSendError asserts err is a *providers.SendError.
func outSendError(t *testing.T, err error) *providers.SendError {
	t.Helper()
	var se *providers.SendError
	if !errors.As(err, &se) {
		t.Fatalf("error %v (%T) is not a *providers.SendError", err, err)
	}
	return se
}

func outText(s string) schema.Message { return schema.Message{Type: schema.TypeText, Text: &s} }

func outStr(s string) *string { return &s }

func outF64(f float64) *float64 { return &f }

// outClosedURL is an http URL on a loopback port nobody listens on.
func outClosedURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return "http://" + addr
}
