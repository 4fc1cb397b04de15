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
//
// Its Reason is the cause's, which an agent may read (at outbound.max_age);
// why, the retry's bookkeeping, goes to Err, for the log.
func LookAgainLater(cause *SendError, why string, err error, wait time.Duration) *SendError {
	return &SendError{Kind: Unreachable, Code: cause.Code, RetryAfter: max(cause.RetryAfter, wait), Reason: cause.Reason,
		Err: errors.Join(cause, errors.New(why+", so it is looked up again before it is sent again"), err)}
}

// NotNoted is the error of a send that may have reached the provider but
// could not be marked for a later look: it must never be sent again. Its
// Reason is the cause's (which says the message may have been sent).
func NotNoted(cause *SendError, err error) *SendError {
	return &SendError{Kind: Ambiguous, Code: cause.Code, Reason: cause.Reason,
		Err: errors.Join(cause, errors.New("the attempt could not be noted for a later look, so it is not sent again"), err)}
}
