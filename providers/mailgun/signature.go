package mailgun

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/bonychat/bonychat-adapter/providers"
)

// maxClockSkew is how far in the future a timestamp may be: Mailgun's clock
// and ours differ a little, but a signature from later than that was not
// made by Mailgun for a request arriving now.
const maxClockSkew = 5 * time.Minute

var (
	// ErrBadSignature: the request was not signed with the channel's
	// webhook signing key (forged, or the key is misconfigured: worth an
	// alert, since Mailgun stops retrying on 406 and the mail is lost).
	ErrBadSignature = errors.New("mailgun: webhook signature does not match the signing key")
	// ErrStaleTimestamp: correctly signed, but the timestamp is too old
	// (a replay), too far ahead, or not a Unix time at all.
	ErrStaleTimestamp = errors.New("mailgun: webhook timestamp is not fresh")
)

// Verify checks a Mailgun webhook signature, the same for route forwards
// (form fields) and event webhooks (the JSON "signature" object):
// signature must be hex(HMAC-SHA256(signing key, timestamp+token)),
// compared in constant time, and timestamp (Unix seconds) at most maxAge
// before now and at most 5 minutes after it.
//
// The signature is checked first, so ErrStaleTimestamp only ever describes
// a request Mailgun did sign. maxAge must cover Mailgun's retries, which
// resend the original signature for hours; a maxAge of zero or less
// accepts nothing from the past. An empty signing key verifies nothing:
// it is the webhook signing key, never the API key as a fallback.
//
// A signature covers only the timestamp and token, not the body: replay
// protection (recording tokens) is the caller's.
func Verify(signingKey providers.Secret, timestamp, token, signature string, now time.Time, maxAge time.Duration) error {
	if signingKey.Reveal() == "" {
		return fmt.Errorf("%w: no signing key is configured", ErrBadSignature)
	}
	if timestamp == "" || token == "" || signature == "" {
		return fmt.Errorf("%w: timestamp, token or signature is missing", ErrBadSignature)
	}
	got, err := hex.DecodeString(signature)
	if err != nil || len(got) != sha256.Size {
		return fmt.Errorf("%w: the signature is not %d hex-encoded bytes", ErrBadSignature, sha256.Size)
	}
	if !hmac.Equal(got, sign(signingKey, timestamp, token)) {
		return ErrBadSignature
	}
	return checkFresh(timestamp, now, maxAge)
}

// sign is Mailgun's signature, before hex encoding.
func sign(key providers.Secret, timestamp, token string) []byte {
	mac := hmac.New(sha256.New, []byte(key.Reveal()))
	mac.Write([]byte(timestamp))
	mac.Write([]byte(token))
	return mac.Sum(nil)
}

// checkFresh accepts a timestamp from maxAge before now up to maxClockSkew
// after it. Only plain decimal digits are a timestamp: strconv would also
// take a sign.
func checkFresh(timestamp string, now time.Time, maxAge time.Duration) error {
	for i := 0; i < len(timestamp); i++ {
		if timestamp[i] < '0' || timestamp[i] > '9' {
			return fmt.Errorf("%w: timestamp %q is not Unix seconds", ErrStaleTimestamp, timestamp)
		}
	}
	secs, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: timestamp %q is not Unix seconds", ErrStaleTimestamp, timestamp)
	}
	// Compared in whole seconds before any time.Time is made: a huge
	// timestamp would overflow one.
	if secs > now.Unix()+int64(maxClockSkew/time.Second) {
		return fmt.Errorf("%w: timestamp %s is more than %s ahead of now", ErrStaleTimestamp, timestamp, maxClockSkew)
	}
	if age := now.Sub(time.Unix(secs, 0)); age > max(maxAge, 0) {
		return fmt.Errorf("%w: signed %s ago, more than the accepted %s", ErrStaleTimestamp, age.Truncate(time.Second), maxAge)
	}
	return nil
}
