package twilio

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/bonychat/bonychat-adapter/providers"
)

// SignatureHeader is the header Twilio signs every webhook with.
const SignatureHeader = "X-Twilio-Signature"

// readSignedForm parses a webhook's form body (already capped by the
// adapter) and checks its signature. On failure it has written the answer:
// 413 or 400 for a body that cannot be read, 403 for a missing or wrong
// signature, before anything is looked at or stored.
func (p *Provider) readSignedForm(w http.ResponseWriter, r *http.Request) (url.Values, bool) {
	if err := r.ParseForm(); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			providers.WriteError(w, http.StatusRequestEntityTooLarge, "request body is larger than the limit")
		} else {
			providers.WriteError(w, http.StatusBadRequest, "the body is not a valid form")
		}
		return nil, false
	}
	if !p.validSignature(r, r.PostForm) {
		p.deps.Log.Warn("twilio webhook refused: missing or wrong signature",
			"channel", p.deps.ChannelID, "path", r.URL.Path, "signed", r.Header.Get(SignatureHeader) != "")
		providers.WriteError(w, http.StatusForbidden, "missing or invalid "+SignatureHeader)
		return nil, false
	}
	return r.PostForm, true
}

// validSignature checks X-Twilio-Signature: base64(HMAC-SHA1(auth token,
// full URL + every posted name and value)), with the names in byte order.
//
// The full URL is the configured public URL + the request's path and raw
// query, never rebuilt from Host or X-Forwarded-* headers, which a caller
// chooses. The query is part of the signed URL (status callbacks carry the
// mId there). form must be r.PostForm: r.Form would mix the query in.
//
// Both auth_token and previous_auth_token are tried (token rotation, until
// previous_auth_token_until), and,
// like twilio-go, the URL with and without the scheme's default port, since
// Twilio is not consistent about it. A non-default port is never dropped.
// Each comparison is constant-time; an empty token never validates anything.
func (p *Provider) validSignature(r *http.Request, form url.Values) bool {
	got := r.Header.Get(SignatureHeader)
	if got == "" {
		return false
	}
	payload := signedParams(form)
	ok := false
	for _, token := range p.signingTokens() {
		for _, base := range publicURLVariants(p.deps.PublicURL) {
			want := signature(token, base+r.URL.RequestURI()+payload)
			// No early return: every candidate costs the same.
			ok = hmac.Equal([]byte(want), []byte(got)) || ok
		}
	}
	return ok
}

// signingTokens are the tokens a valid signature may be made with now.
func (p *Provider) signingTokens() []string {
	tokens := []string{p.cfg.AuthToken.Reveal()}
	if p.cfg.PreviousAuthToken != "" && !p.cfg.PreviousAuthTokenUntil.Passed(p.now()) {
		tokens = append(tokens, p.cfg.PreviousAuthToken.Reveal())
	}
	return slices.DeleteFunc(tokens, func(t string) bool { return t == "" })
}

// signedParams concatenates name+value of every posted field, sorted by
// name and, for a name posted more than once, each distinct value once,
// sorted: as Twilio's own validators sign (twilio-python: `for value in
// sorted(set(values))`; twilio-node: `Array.from(new Set(values)).sort()`;
// twilio-go only ever sees one value).
func signedParams(form url.Values) string {
	names := make([]string, 0, len(form))
	for name := range form {
		names = append(names, name)
	}
	slices.Sort(names)
	var b strings.Builder
	for _, name := range names {
		values := slices.Clone(form[name])
		slices.Sort(values)
		for _, v := range slices.Compact(values) {
			b.WriteString(name)
			b.WriteString(v)
		}
	}
	return b.String()
}

func signature(token, data string) string {
	mac := hmac.New(sha1.New, []byte(token))
	mac.Write([]byte(data))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// publicURLVariants is the public URL as configured, then the same with the
// scheme's default port added (or removed, when it is there). Only the host
// part changes; the rest stays byte for byte as configured.
func publicURLVariants(public string) []string {
	out := []string{public}
	u, err := url.Parse(public)
	if err != nil || u.Host == "" {
		return out
	}
	defaultPort := map[string]string{"https": "443", "http": "80"}[u.Scheme]
	prefix := u.Scheme + "://" + u.Host
	if defaultPort == "" || !strings.HasPrefix(public, prefix) {
		return out
	}
	rest := public[len(prefix):]
	switch u.Port() {
	case "":
		return append(out, prefix+":"+defaultPort+rest)
	case defaultPort:
		return append(out, strings.TrimSuffix(prefix, ":"+defaultPort)+rest)
	}
	return out
}
