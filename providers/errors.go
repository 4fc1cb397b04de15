package providers

import (
	"errors"
	"fmt"
	"time"
)

// ErrorKind says what a failed send means for retrying it (after Courier's
// send-error taxonomy).
type ErrorKind int

const (
	// Permanent: the message or recipient is the problem (bad number, opted
	// out, content refused). Never retried; the agent sees the reason.
	Permanent ErrorKind = iota + 1
	// Throttled: the provider asked us to slow down; retry after RetryAfter.
	Throttled
	// Unreachable: the request never reached the provider; safe to retry.
	Unreachable
	// Ambiguous: the request may have been processed (5xx or timeout after it
	// was written). Never re-sent blindly: reconcile first.
	Ambiguous
	// Config: this channel's credentials or settings are wrong. Alert; do not
	// hammer the provider.
	Config
)

func (k ErrorKind) String() string {
	switch k {
	case Permanent:
		return "permanent"
	case Throttled:
		return "throttled"
	case Unreachable:
		return "unreachable"
	case Ambiguous:
		return "ambiguous"
	case Config:
		return "config"
	}
	return fmt.Sprintf("ErrorKind(%d)", int(k))
}

// Retryable reports whether a send that failed this way may simply be tried again.
func (k ErrorKind) Retryable() bool { return k == Throttled || k == Unreachable }

// SendError is a failed send with its policy. Reason is written for the
// agent who sees it in BonyChat and never carries a secret; Err is the cause
// for logs.
type SendError struct {
	Kind       ErrorKind
	Reason     string
	Code       string        // the provider's error code, when it gave one
	RetryAfter time.Duration // for Throttled: the provider's requested delay
	Err        error
}

func (e *SendError) Error() string {
	msg := e.Kind.String() + ": " + e.Reason
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *SendError) Unwrap() error { return e.Err }

// SettingsRefusal is how a failure of the channel's own settings reads
// (a Config error), the same in the /message answer and in a failed
// status: reason says which setting.
func SettingsRefusal(channelID, reason string) string {
	return "channel " + channelID + ": the provider refused this channel's settings: " + reason
}

// NewSendError builds a SendError.
func NewSendError(kind ErrorKind, reason string, cause error) *SendError {
	return &SendError{Kind: kind, Reason: reason, Err: cause}
}

// AsSendError finds the SendError in err's chain. Any other error is taken as
// Ambiguous: when we cannot tell whether the provider acted, we must not
// assume it did not.
func AsSendError(err error) *SendError {
	var se *SendError
	if errors.As(err, &se) {
		return se
	}
	return &SendError{Kind: Ambiguous, Reason: "the provider's answer was not understood; the message may have been sent", Err: err}
}
