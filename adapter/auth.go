package adapter

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
	"time"

	"github.com/bonychat/bonychat-adapter/providers"
	"github.com/bonychat/bonychat-adapter/schema"
)

// bearerToken extracts the token of an "Authorization: Bearer <token>"
// header; the scheme is case-insensitive (RFC 9110 §11.1).
func bearerToken(header string) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != "" && !strings.ContainsAny(token, " \t")
}

// tokenDigests holds hashes of a channel's accepted tokens, so that the
// comparison takes the same time whatever the length of the offered token.
type tokenDigests struct {
	current  [sha256.Size]byte
	previous [sha256.Size]byte
	hasPrev  bool
	// prevUntil ends the rotation window: previous is refused from then on.
	prevUntil providers.Until
}

func newTokenDigests(current, previous Secret, prevUntil providers.Until) tokenDigests {
	d := tokenDigests{current: sha256.Sum256([]byte(current.Reveal())), prevUntil: prevUntil}
	if previous != "" {
		d.previous, d.hasPrev = sha256.Sum256([]byte(previous.Reveal())), true
	}
	return d
}

// unknownChannel is compared against when the channel does not exist, so an
// unknown channel costs the same time as a wrong token.
var unknownChannel = newTokenDigests(Secret("\x00unknown channel"), Secret("\x00unknown channel"), "")

// tokenMatch says which of a channel's tokens a request carries.
type tokenMatch int

const (
	noToken tokenMatch = iota
	currentToken
	previousToken
	// expiredToken is the previous token after previous_token_until:
	// refused, and logged so that BonyChat's 401s can be explained.
	expiredToken
)

// match compares in constant time against both tokens; the previous one
// counts until previous_token_until.
func (d tokenDigests) match(token string, now time.Time) tokenMatch {
	offered := sha256.Sum256([]byte(token))
	cur := subtle.ConstantTimeCompare(offered[:], d.current[:])
	prev := subtle.ConstantTimeCompare(offered[:], d.previous[:])
	switch {
	case cur == 1:
		return currentToken
	case prev == 1 && d.hasPrev && d.prevUntil.Passed(now):
		return expiredToken
	case prev == 1 && d.hasPrev:
		return previousToken
	}
	return noToken
}

// authorize reports whether r carries a valid bearer token for ch (which
// may be nil for an unknown channel).
func (s *Server) authorize(r *http.Request, ch *channel) bool {
	token, ok := bearerToken(r.Header.Get("Authorization"))
	digests := unknownChannel
	if ch != nil {
		digests = ch.tokens
	}
	match := digests.match(token, time.Now())
	if ok && ch != nil && (match == previousToken || match == expiredToken) {
		s.notePreviousToken(ch, match == expiredToken)
	}
	return ok && ch != nil && (match == currentToken || match == previousToken)
}

// previousTokenNoteEvery spaces the log lines about a channel's
// previous_token still being used.
const previousTokenNoteEvery = 10 * time.Minute

// notePreviousToken logs that a request came in with the channel's
// previous_token (at most every previousTokenNoteEvery): the operator can
// tell whether BonyChat has moved to the new token before removing the old,
// and why BonyChat's requests fail once the old one is refused (expired).
func (s *Server) notePreviousToken(ch *channel, expired bool) {
	now := time.Now().UnixNano()
	last := ch.previousNoted.Load()
	if last != 0 && now-last < int64(previousTokenNoteEvery) {
		return
	}
	if !ch.previousNoted.CompareAndSwap(last, now) {
		return
	}
	if expired {
		s.log.Warn("a request used this channel's previous_token after previous_token_until; refused: "+
			"set the new token in BonyChat", "channel", ch.cfg.ID)
		return
	}
	s.log.Warn("a request used this channel's previous_token; set the new token in BonyChat, then remove previous_token",
		"channel", ch.cfg.ID)
}

// writeUnauthorized answers 401 the same way for a missing token, a wrong
// token and an unknown channel, so none can be told apart.
func writeUnauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="bonychat-adapter"`)
	providers.WriteError(w, http.StatusUnauthorized, "missing or invalid bearer token for this channel")
}

// authenticatedJSON runs the common start of a bearer-authenticated JSON
// endpoint: refuse a request whose token no channel has before reading its
// body (so a caller without one learns nothing of the body's rules), read
// the (capped) JSON body, find the channel it names and check the token
// against that one. It writes the refusal itself and reports ok=false.
func (s *Server) authenticatedJSON(w http.ResponseWriter, r *http.Request) (*channel, []byte, bool) {
	if s.channelByToken(r) == nil {
		writeUnauthorized(w)
		return nil, nil, false
	}
	body, ok := providers.ReadJSONBody(w, r)
	if !ok {
		return nil, nil, false
	}
	channelID, err := schema.PeekChannelID(body)
	if err != nil {
		providers.WriteError(w, http.StatusBadRequest, err.Error())
		return nil, nil, false
	}
	ch := s.channelByID(channelID)
	if !s.authorize(r, ch) {
		writeUnauthorized(w)
		return nil, nil, false
	}
	return ch, body, true
}

// channelByToken finds the channel whose token the request carries (for
// endpoints that name no channel), comparing against every channel.
func (s *Server) channelByToken(r *http.Request) *channel {
	var found *channel
	for _, ch := range s.channels {
		if s.authorize(r, ch) {
			found = ch
		}
	}
	return found
}
