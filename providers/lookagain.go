package providers

import (
	"errors"
	"time"
)

// LookAgainLater is the error of a send that may have reached the provider
// but that its records do not show (yet), or that cannot be looked up
// right now (why says which, in words): retryable, no sooner than wait, and
// the provider must look again before the retry sends anything (its mark).
// err is what the look-up met, if anything.
func LookAgainLater(cause *SendError, why string, err error, wait time.Duration) *SendError {
	return &SendError{Kind: Unreachable, Code: cause.Code, Err: errors.Join(cause, err),
		RetryAfter: max(cause.RetryAfter, wait),
		Reason:     cause.Reason + "; " + why + ", so it is looked up again before it is sent again"}
}

// NotNoted is the error of a send that may have reached the provider but
// could not be marked for a later look: it must never be sent again.
func NotNoted(cause *SendError, err error) *SendError {
	return &SendError{Kind: Ambiguous, Code: cause.Code, Err: errors.Join(cause, err),
		Reason: cause.Reason + "; the attempt could not be noted for a later look, so it is not sent again"}
}
