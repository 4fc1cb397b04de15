package mailgun

import (
	"sync"
	"time"

	mailgungo "github.com/mailgun/mailgun-go/v4"

	"github.com/bonychat/bonychat-adapter/providers"
)

// Provider is one Mailgun channel.
type Provider struct {
	cfg    Config
	deps   providers.Deps
	sender *mailgungo.MailgunImpl
	now    func() time.Time

	threadMu sync.Mutex // serializes thread record updates

	// Reconciliation of an ambiguous send: how many events API queries,
	// and the wait before each one after the first (Mailgun's events
	// appear with a short delay).
	reconcileTries int
	reconcilePause time.Duration
	// forwardMemory bounds what the route forwards being read hold, and
	// forwardWait is how long a read waits for some of it (forwardmemory.go).
	forwardMemory *byteBudget
	forwardWait   time.Duration
	// maxMessage is the largest e-mail Mailgun takes (maxMessageBytes): a
	// file that would make one larger is linked, not attached.
	maxMessage int
	// arrivals: per contact, forwards are stored in the order they came in.
	arrivals providers.ArrivalOrder
}

// New builds the provider for one channel from a validated Config.
func New(cfg Config, deps providers.Deps) (*Provider, error) {
	return &Provider{cfg: cfg, deps: deps, sender: newSender(cfg, deps.Transport), now: time.Now,
		reconcileTries: defaultReconcileTries, reconcilePause: defaultReconcilePause,
		forwardMemory: forwardMemory, forwardWait: forwardWaitDefault, maxMessage: maxMessageBytes}, nil
}

// Kind implements providers.Provider.
func (p *Provider) Kind() string { return Kind }
