package mailgun

// Inbound mail: a Mailgun route's forward() POST, parsed into a Forward
// (ParseForward) and turned into BonyChat events (InboundEvents). Both are
// pure apart from the record and media stores; the HTTP handler (signature,
// token replay, dedupe, thread records) is built on top of them.

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"iter"
	"maps"
	"mime"
	"mime/multipart"
	"net/http"
	"net/mail"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/bonychat/bonychat-adapter/providers"
	"github.com/bonychat/bonychat-adapter/schema"
)

// ErrForwardTooLarge: the forward's body is over the cap (the handler
// answers 413; Mailgun retries, so the cap must exceed Mailgun's own limit).
var ErrForwardTooLarge = errors.New("mailgun: forwarded message is larger than the accepted size")

// ErrForwardInterrupted: the forward's body ended before it was complete
// (a dropped connection). Mailgun's retry can deliver it, so the handler
// answers 503, not 406.
var ErrForwardInterrupted = errors.New("mailgun: the forwarded message was cut off")

// Forward is one message as a Mailgun route posts it: forward()'s parsed
// format (urlencoded or multipart), forward() to a URL ending in "mime"
// (the message as body-mime), or a store(notify=…) notification (the
// attachments as a JSON list of URLs).
type Forward struct {
	// Timestamp, Token and Signature are what Verify checks.
	Timestamp, Token, Signature string
	Sender                      string // SMTP MAIL FROM (envelope)
	From                        string // the From header, "Jane Doe <jane@example.com>"
	Recipient                   string // SMTP RCPT TO (the route address)
	To, Cc                      []string
	Subject                     string
	// MessageID, InReplyTo and References are ids without angle brackets.
	MessageID  string
	InReplyTo  string
	References []string
	// Text is stripped-text, else body-plain, else the text of body-html
	// (for body-mime: its text/plain part, else its text/html parts).
	Text        string
	Attachments []ForwardAttachment
	// Problems are what could not be read (message-headers, content-id-map,
	// an attachment): the mail is delivered without it and the handler
	// logs them.
	Problems []string
	// SenderVerified: Mailgun's SPF check passed for the envelope sender,
	// and that is on the From address's domain (see senderVerified).
	SenderVerified bool
}

// ForwardAttachment is one attachment: an attachment-N part, a part of
// body-mime, or an entry of a store() notification's attachments list.
// ContentID (without angle brackets) is set for inline images.
type ForwardAttachment struct {
	FileName    string
	ContentType string
	Body        []byte
	ContentID   string
	// URL is where Mailgun stores a store() notification's attachment; the
	// handler fetches its Body (fetchStored) once the signature is checked.
	URL string
	// Problem says, for the agent, why the attachment could not be read;
	// it is posted as a note instead of the file.
	Problem string
	// Missing, on a placeholder, is how many attachments it stands for
	// (one note for all of them: announced ones that never arrived, or
	// stored ones past the cap), with Problem saying why.
	Missing int
}

// missing is why the attachment cannot be delivered, "" when it can.
func (a ForwardAttachment) missing() string {
	if a.Problem == "" && a.URL != "" && a.Body == nil {
		return "it was not fetched from Mailgun"
	}
	return a.Problem
}

func (f *Forward) problem(format string, args ...any) {
	f.Problems = append(f.Problems, fmt.Sprintf(format, args...))
}

// ParseForward reads a route's POST: urlencoded (no attachments) or
// multipart. The body is capped at maxBytes (ErrForwardTooLarge beyond it;
// ErrForwardInterrupted when it ends early) and only the form's POST body
// is read, never the URL's query. Fields that cannot be read are noted in
// Problems, not refused: only a body that is no form at all, or a
// body-mime without readable headers and nothing else to deliver, is an
// error. It checks no signature: that is Verify's, on the returned
// Timestamp, Token and Signature; and it fetches nothing (fetchStored).
func ParseForward(r *http.Request, maxBytes int64) (*Forward, error) {
	if err := readForwardForm(r, maxBytes); err != nil {
		return nil, err
	}
	if r.MultipartForm != nil {
		defer r.MultipartForm.RemoveAll()
	}
	form := r.PostForm
	f := &Forward{
		Timestamp: form.Get("timestamp"),
		Token:     form.Get("token"),
		Signature: form.Get("signature"),
		Sender:    form.Get("sender"),
		From:      form.Get("from"),
		Recipient: form.Get("recipient"),
		Subject:   form.Get("subject"),
	}
	raw, err := forwardRawMessage(f, r)
	if err != nil {
		return nil, err
	}
	h := f.parseHeaders(form.Get("message-headers"))
	// Headers come from message-headers; the top-level fields Mailgun has
	// also posted, then body-mime's own headers, are the fallbacks.
	header := func(name string) string {
		if v, ok := h.get(name); ok {
			return v
		}
		if v := form.Get(name); v != "" {
			return v
		}
		return raw.headerValue(name)
	}
	f.From = cmp.Or(f.From, header("From"))
	f.SenderVerified = senderVerified(f.Sender, f.From, cmp.Or(h.last("X-Mailgun-Spf"), lastValue(form["X-Mailgun-Spf"])))
	f.Subject = decodeHeader(cmp.Or(f.Subject, header("Subject")))
	f.To = forwardAddresses(header("To"))
	f.Cc = forwardAddresses(header("Cc"))
	f.MessageID = forwardFirstID(header("Message-Id"))
	f.InReplyTo = forwardFirstID(header("In-Reply-To"))
	f.References = forwardIDs(header("References"))
	f.Text = forwardText(form.Get("stripped-text"), cmp.Or(form.Get("body-plain"), raw.textPart()),
		cmp.Or(form.Get("body-html"), raw.htmlParts()))
	cids := f.parseContentIDs(form.Get("content-id-map"))
	f.Attachments = append(forwardAttachments(f, r, cids), raw.attachmentParts()...)
	f.Attachments = append(f.Attachments, f.storedAttachments(form.Get("attachments"), cids)...)
	return f, nil
}

// readForwardForm fills r.PostForm (and r.MultipartForm) from a body capped
// at maxBytes.
func readForwardForm(r *http.Request, maxBytes int64) error {
	if r.Body == nil {
		return errors.New("mailgun: forward has no body")
	}
	body := &readFailure{r: r.Body}
	r.Body = http.MaxBytesReader(nil, body, maxBytes)
	// ParseForm first: ParseMultipartForm drops ParseForm's error (an
	// urlencoded body over the cap) when the body is not multipart.
	err := r.ParseForm()
	if err == nil {
		// All of it in memory (maxBytes bounds it): Go keeps at most
		// maxMemory + 10 MB of non-file fields, and a big mail's body-html
		// and stripped-html alone can pass a smaller bound, which would be
		// refused on every retry.
		err = r.ParseMultipartForm(maxBytes)
	}
	switch {
	case err == nil || errors.Is(err, http.ErrNotMultipart):
		return nil
	case isMaxBytesError(err):
		return fmt.Errorf("%w (%d bytes)", ErrForwardTooLarge, maxBytes)
	case body.err != nil || errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: %v", ErrForwardInterrupted, err)
	}
	return fmt.Errorf("mailgun: reading the forwarded message: %w", err)
}

func isMaxBytesError(err error) bool {
	_, ok := errors.AsType[*http.MaxBytesError](err)
	return ok
}

// readFailure remembers the first error reading the request body returned
// (a connection that broke), to tell it from a body that is malformed.
type readFailure struct {
	r   io.ReadCloser
	err error
}

func (b *readFailure) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF && b.err == nil {
		b.err = err
	}
	return n, err
}

func (b *readFailure) Close() error { return b.r.Close() }

// forwardHeaders is message-headers: [name, value] pairs in order.
type forwardHeaders [][2]string

// parseHeaders reads message-headers. An entry that is not a [name, value]
// pair is skipped, and a field that is not a JSON list at all is noted and
// left to the top-level header fields: neither is worth losing the mail.
func (f *Forward) parseHeaders(s string) forwardHeaders {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	var raw []json.RawMessage
	if err := json.Unmarshal([]byte(s), &raw); err != nil {
		f.problem("message-headers is not a JSON list of [name, value] pairs (%v); the header fields are used instead", err)
		return nil
	}
	out := make(forwardHeaders, 0, len(raw))
	for i, item := range raw {
		pair, ok := headerPair(item)
		if !ok {
			f.problem("message-headers entry %d is not a [name, value] pair", i+1)
			continue
		}
		out = append(out, pair)
	}
	return out
}

// headerPair is one message-headers entry. A value that is not a string
// becomes header text: Mailgun has posted Content-Type as
// ["multipart/alternative", {"boundary": "…"}].
func headerPair(item json.RawMessage) ([2]string, bool) {
	var pair []json.RawMessage
	var name string
	if json.Unmarshal(item, &pair) != nil || len(pair) != 2 || json.Unmarshal(pair[0], &name) != nil {
		return [2]string{}, false
	}
	var value string
	if json.Unmarshal(pair[1], &value) == nil {
		return [2]string{name, value}, true
	}
	var typed []json.RawMessage
	var params map[string]string
	if json.Unmarshal(pair[1], &typed) == nil && len(typed) == 2 &&
		json.Unmarshal(typed[0], &value) == nil && json.Unmarshal(typed[1], &params) == nil {
		if v := mime.FormatMediaType(value, params); v != "" {
			return [2]string{name, v}, true
		}
	}
	return [2]string{name, string(bytes.TrimSpace(pair[1]))}, true
}

// get is the first value of a header (names compare case-insensitively).
func (h forwardHeaders) get(name string) (string, bool) {
	for _, p := range h {
		if strings.EqualFold(p[0], name) {
			return p[1], true
		}
	}
	return "", false
}

// last is the last value of a header: Mailgun appends its own X-Mailgun-*
// fields after the mail's, so a copy the sender wrote comes first.
func (h forwardHeaders) last(name string) string {
	for i := len(h) - 1; i >= 0; i-- {
		if strings.EqualFold(h[i][0], name) {
			return h[i][1]
		}
	}
	return ""
}

func lastValue(vs []string) string {
	if len(vs) == 0 {
		return ""
	}
	return vs[len(vs)-1]
}

// senderVerified: the From address is the sender's own, as far as Mailgun
// can tell. Its SPF check (spf, X-Mailgun-Spf) covers the envelope sender,
// which anyone may choose, so it counts only when the envelope sender is on
// the From address's domain (one may be a subdomain of the other: relaxed
// alignment, as DMARC has it). A From header on its own proves nothing.
func senderVerified(envelope, from, spf string) bool {
	if !strings.EqualFold(strings.TrimSpace(spf), "pass") {
		return false
	}
	fromAddr, err := inboundFrom(from)
	if err != nil {
		return false
	}
	envDomain, fromDomain := addressDomain(envelope), addressDomain(fromAddr.Address)
	return envDomain != "" && fromDomain != "" && (envDomain == fromDomain ||
		strings.HasSuffix(envDomain, "."+fromDomain) || strings.HasSuffix(fromDomain, "."+envDomain))
}

// addressDomain is the lower-case domain of a bare or bracketed address.
func addressDomain(addr string) string {
	addr = strings.Trim(strings.TrimSpace(addr), "<>")
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return ""
	}
	return strings.ToLower(addr[i+1:])
}

// forwardBracketID finds <id> in Message-Id, In-Reply-To and References.
var forwardBracketID = regexp.MustCompile(`<([^<>\s]+)>`)

// forwardIDs are the message ids of a header, without angle brackets. A header
// without any <…> (some clients) counts as ids separated by white space.
func forwardIDs(v string) []string {
	var out []string
	for _, m := range forwardBracketID.FindAllStringSubmatch(v, -1) {
		out = append(out, m[1])
	}
	if out == nil && strings.TrimSpace(v) != "" {
		out = strings.Fields(v)
	}
	return out
}

func forwardFirstID(v string) string {
	if all := forwardIDs(v); len(all) > 0 {
		return all[0]
	}
	return ""
}

// forwardAddresses is the bare addresses of an address header; an unparseable
// header gives none.
func forwardAddresses(v string) []string {
	if strings.TrimSpace(v) == "" {
		return nil
	}
	list, err := addressParser.ParseList(v)
	if err != nil {
		return nil
	}
	out := make([]string, 0, len(list))
	for _, a := range list {
		out = append(out, a.Address)
	}
	return out
}

// forwardText picks the reply's text: stripped-text (without quoted history
// and signature), else body-plain, else the text of body-html.
func forwardText(stripped, plain, htmlBody string) string {
	for _, s := range []string{stripped, plain} {
		if s = strings.TrimSpace(forwardNewlines(s)); s != "" {
			return s
		}
	}
	return htmlToText(htmlBody)
}

func forwardNewlines(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n")
}

var (
	h2tDropped   = regexp.MustCompile(`(?is)<(script|style|head|title)\b[^>]*>.*?</(script|style|head|title)\s*>|<!--.*?-->`)
	h2tBreak     = regexp.MustCompile(`(?i)<br\s*/?>|</?(p|div|tr|li|h[1-6]|blockquote|table|ul|ol)\b[^>]*>`)
	h2tTag       = regexp.MustCompile(`(?s)<[^>]*>`)
	h2tBlankRuns = regexp.MustCompile(`\n{3,}`)
	h2tSpaceRuns = regexp.MustCompile(`[ \t\f\v\x{00a0}]+`)
)

// h2tLink is an http(s) link: <a href="URL">label</a>.
var h2tLink = regexp.MustCompile(`(?is)<a\s[^>]*?href\s*=\s*["']?(https?://[^"'\s>]+)["']?[^>]*>(.*?)</a\s*>`)

// h2tKeepLink writes a link as "label (URL)", or just the URL when the label
// is the URL or empty, so the agent can still follow it.
func h2tKeepLink(a string) string {
	m := h2tLink.FindStringSubmatch(a)
	link := html.UnescapeString(m[1])
	label := strings.TrimSpace(html.UnescapeString(h2tTag.ReplaceAllString(m[2], "")))
	if label == "" || label == link || strings.TrimRight(label, "/") == strings.TrimRight(link, "/") {
		return html.EscapeString(link)
	}
	return m[2] + " (" + html.EscapeString(link) + ")"
}

// htmlToText is the readable text of an HTML body: scripts, styles and
// comments dropped, block ends and <br> as line breaks, other tags
// removed (a link keeps its URL), entities decoded, runs of blanks
// collapsed. It is a fallback for mail with no plain part, not a renderer.
func htmlToText(s string) string {
	s = forwardNewlines(s)
	s = h2tDropped.ReplaceAllString(s, "")
	s = strings.ReplaceAll(s, "\n", " ") // source line breaks are not text breaks in HTML
	s = h2tLink.ReplaceAllStringFunc(s, h2tKeepLink)
	s = h2tBreak.ReplaceAllString(s, "\n")
	s = h2tTag.ReplaceAllString(s, "")
	s = html.UnescapeString(s)
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimSpace(h2tSpaceRuns.ReplaceAllString(l, " "))
	}
	s = strings.Join(lines, "\n")
	return strings.TrimSpace(h2tBlankRuns.ReplaceAllString(s, "\n\n"))
}

var forwardAttachmentField = regexp.MustCompile(`^attachment-([0-9]+)$`)

// forwardAttachments are the attachment-N parts in N order, inline images
// (named by content-id-map, cids: field → content id) included. None is
// dropped unsaid: a part that cannot be read, and each one attachment-count
// announces but the form lacks, is a note that it is missing.
func forwardAttachments(f *Forward, r *http.Request, cids map[string]string) []ForwardAttachment {
	var out []ForwardAttachment
	if mf := r.MultipartForm; mf != nil {
		out = formAttachments(f, mf, cids)
	}
	// One placeholder for all that never came: the count is the sender's
	// word (the signature does not cover it), so it must not size anything.
	count, err := strconv.Atoi(strings.TrimSpace(r.PostForm.Get("attachment-count")))
	if err == nil && count > len(out) {
		f.problem("attachment-count is %d but %d attachment parts arrived", count, len(out))
		why := "Mailgun announced it, but it did not arrive"
		if count-len(out) > 1 {
			why = "Mailgun announced them, but they did not arrive"
		}
		out = append(out, ForwardAttachment{Problem: why, Missing: count - len(out)})
	}
	return out
}

func formAttachments(f *Forward, mf *multipart.Form, cids map[string]string) []ForwardAttachment {
	var out []ForwardAttachment
	for _, field := range attachmentFields(mf) {
		for _, fh := range mf.File[field] {
			out = append(out, fileAttachment(f, field, fh, cids[field]))
		}
		// A part without a file name is a plain value to Go's reader, its
		// Content-Type gone: the type is sniffed from the bytes.
		for _, v := range mf.Value[field] {
			out = append(out, ForwardAttachment{ContentType: forwardPartType(http.DetectContentType([]byte(v))),
				Body: []byte(v), ContentID: cids[field]})
		}
	}
	return out
}

// attachmentFields are the form's attachment-N names, files and values, by N.
func attachmentFields(mf *multipart.Form) []string {
	numbers := map[string]int{}
	for _, names := range []iter.Seq[string]{maps.Keys(mf.File), maps.Keys(mf.Value)} {
		for name := range names {
			if m := forwardAttachmentField.FindStringSubmatch(name); m != nil {
				if n, err := strconv.Atoi(m[1]); err == nil {
					numbers[name] = n
				}
			}
		}
	}
	fields := slices.Collect(maps.Keys(numbers))
	slices.SortFunc(fields, func(a, b string) int { return cmp.Compare(numbers[a], numbers[b]) })
	return fields
}

func fileAttachment(f *Forward, field string, fh *multipart.FileHeader, cid string) ForwardAttachment {
	a := ForwardAttachment{FileName: decodeHeader(fh.Filename), ContentType: forwardPartType(fh.Header.Get("Content-Type")),
		ContentID: cid}
	file, err := fh.Open()
	if err == nil {
		a.Body, err = io.ReadAll(file)
		file.Close()
	}
	if err != nil {
		f.problem("reading %s: %v", field, err)
		a.Body, a.Problem = nil, "it could not be read"
	}
	return a
}

// parseContentIDs reads content-id-map ({"<cid>": "attachment-N"}, or the
// attachment's URL in a store() notification) as field or URL → content
// id. It reads the JSON token by token: Mailgun has posted maps with
// repeated keys, which a Go map would collapse. A map it cannot read only
// costs inline images their content id.
func (f *Forward) parseContentIDs(s string) map[string]string {
	out := map[string]string{}
	if strings.TrimSpace(s) == "" {
		return out
	}
	dec := json.NewDecoder(strings.NewReader(s))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		f.problem("content-id-map is not a JSON object; inline images keep no content id")
		return out
	}
	for dec.More() {
		key, err := dec.Token()
		var target string
		if err == nil {
			err = dec.Decode(&target)
		}
		if err != nil {
			f.problem("content-id-map: %v", err)
			return out
		}
		cid, _ := key.(string)
		out[target] = strings.Trim(strings.TrimSpace(cid), "<>")
	}
	return out
}

// storedAttachments are a store() notification's attachments, JSON
// [{"url", "content-type", "name", "size"}], to be fetched (fetchStored),
// at most maxMIMEParts of them. A list that cannot be read, or the part of
// it past that, becomes one note, so the agent knows something is missing.
func (f *Forward) storedAttachments(s string, cids map[string]string) []ForwardAttachment {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	var list []struct {
		URL         string `json:"url"`
		ContentType string `json:"content-type"`
		Name        string `json:"name"`
		FileName    string `json:"filename"`
	}
	if err := json.Unmarshal([]byte(s), &list); err != nil {
		f.problem("attachments is not a JSON list of stored attachments: %v", err)
		return []ForwardAttachment{{Problem: "the list of attachments Mailgun stored could not be read"}}
	}
	var over int
	if len(list) > maxMIMEParts {
		// Each is fetched with the API key: a signed list is Mailgun's,
		// but it is bounded as a raw-MIME mail's parts are.
		list, over = list[:maxMIMEParts], len(list)-maxMIMEParts
	}
	out := make([]ForwardAttachment, 0, len(list)+1)
	for _, a := range list {
		fa := ForwardAttachment{FileName: cmp.Or(a.Name, a.FileName), ContentType: forwardPartType(a.ContentType),
			URL: a.URL, ContentID: cids[a.URL]}
		if a.URL == "" {
			fa.Problem = "Mailgun gave no address for it"
		}
		out = append(out, fa)
	}
	if over > 0 {
		f.problem("attachments lists %d stored attachments; the last %d were left out", len(list)+over, over)
		out = append(out, ForwardAttachment{Missing: over,
			Problem: fmt.Sprintf("this server takes at most %d attachments of an e-mail", maxMIMEParts)})
	}
	return out
}

// forwardPartType is a part's media type, lower-cased and without parameters.
func forwardPartType(v string) string {
	if mt, _, err := mime.ParseMediaType(v); err == nil && mt != "" {
		return strings.ToLower(mt)
	}
	return "application/octet-stream"
}

// InboundEvents turns a parsed forward into what is posted to BonyChat.
//
//   - Direction: when the From address is one of business (an address, or a
//     domain written "example.com" or "@example.com"; the caller passes the
//     channel's list), the mail is the business writing to a contact from
//     its own mailbox: the events are message_echo and the contact is the
//     first To (then Cc) address that is not a business address and not on
//     the channel's domain. Otherwise the contact is the sender (From) and
//     the events are message.
//   - Contact: contactId from EncodeContactID; email only when it fits in 50
//     characters; firstName/lastName from the display name ("Jane Doe",
//     "Doe, Jane"; a single word is the first name).
//   - Text: the reply's text. When newThread is set (the first message of a
//     thread) it is prefixed "Subject: <subject>" and a blank line, so the
//     agent sees what the thread is about; a subject-only mail posts just
//     that line.
//   - Attachments (inline images included) are saved in the media store and
//     posted as attachment events with this server's URL (listed in Media,
//     for Ingest to remove if it does not store the events); one that could
//     not be read is posted as a text note in its place.
//   - mIds: see MessageMID. The text is mId; the attachments are mId-N
//     numbered after the parts FitEvents may split the text into, so a long
//     text (mId-1, mId-2, …) never collides with an attachment.
//   - DedupeKey is the Message-Id (the token when a mail has none).
//
// An error is this server's (record or media store) or a mail with no
// usable contact address (ErrInvalidAddress): the handler answers 5xx for
// the first and 406 for the second. After an error nothing is left saved.
func (p *Provider) InboundEvents(ctx context.Context, f *Forward, newThread bool, business []string) (providers.Inbound, error) {
	contact, kind, err := p.inboundParty(f, business)
	if err != nil {
		return providers.Inbound{}, err
	}
	unverified := kind == unverifiedBusiness
	if unverified {
		kind = schema.EventMessage
	}
	contactID, err := EncodeContactID(ctx, p.deps.Records, contact.Address)
	if err != nil {
		return providers.Inbound{}, err
	}
	in := providers.Inbound{
		DedupeKey: forwardDedupeKey(f),
		ContactID: contactID,
		Contact:   inboundContact(contact),
	}
	ts := p.inboundTime(f.Timestamp)
	mid := MessageMID(f.MessageID, f.Token)
	event := func(id string, m *schema.Message) schema.Event {
		return schema.Event{Type: kind, MID: id, Timestamp: ts, Message: m}
	}

	text := f.Text
	if newThread && strings.TrimSpace(f.Subject) != "" {
		text = strings.TrimSpace("Subject: " + strings.TrimSpace(f.Subject) + "\n\n" + text)
	}
	if unverified {
		text = strings.TrimSpace(unverifiedBusinessNote + "\n\n" + text)
	}
	next := 1
	if text != "" {
		in.Events = append(in.Events, event(mid, schema.TextMessage(text)))
		if parts := len(schema.SplitText(text, schema.MaxText)); parts > 1 {
			next = parts + 1
		}
	}
	for i, a := range f.Attachments {
		m, err := p.inboundAttachment(ctx, a, i+1)
		if err != nil {
			// Nothing will link the attachments saved before it.
			providers.DiscardMedia(ctx, p.log(), p.deps.Media, in.Media)
			return providers.Inbound{}, err
		}
		if m.Type == schema.TypeAttachment {
			in.Media = append(in.Media, m.Attachment.URL)
		}
		in.Events = append(in.Events, event(schema.SuffixID(mid, next), m))
		next++
	}
	if len(in.Events) == 0 {
		// Nothing to show (an empty mail): still tell the agent it came.
		in.Events = append(in.Events, event(mid, schema.TextMessage("(empty e-mail)")))
	}
	return in, nil
}

// unverifiedBusiness is inboundParty's kind for a mail whose From is a
// business address Mailgun did not vouch for: a message, with a warning.
const unverifiedBusiness = "unverified business"

// inboundParty is who a mail is posted for and as what: the sender, with a
// message; for mail from a business address Mailgun vouched for
// (Forward.SenderVerified), its first outside recipient, with an echo (no
// such recipient: ErrInvalidAddress); for one it did not, the sender again,
// unverifiedBusiness (anyone can write a business address in From). The
// handler and InboundEvents both ask it, so they agree on the contact.
func (p *Provider) inboundParty(f *Forward, business []string) (*mail.Address, string, error) {
	from, err := inboundFrom(f.From)
	switch {
	case err != nil:
		return nil, "", err
	case !inboundIsBusiness(from.Address, business):
		return from, schema.EventMessage, nil
	case !f.SenderVerified:
		return from, unverifiedBusiness, nil
	}
	to := p.inboundEchoContact(f, business)
	if to == nil {
		return nil, "", fmt.Errorf("%w: mail from the business address %q names no contact in To or Cc", ErrInvalidAddress, f.From)
	}
	return to, schema.EventMessageEcho, nil
}

// unverifiedBusinessNote heads a mail whose From is a business address that
// Mailgun could not verify.
const unverifiedBusinessNote = "(Unverified: this e-mail says it is from one of your business addresses, " +
	"but its sender could not be verified, so it is shown as a message from that address, not as your team's.)"

// inboundAttachment is the message for the n-th attachment: the file,
// saved in the media store, or a note when it could not be read, so that
// the agent knows it is missing.
func (p *Provider) inboundAttachment(ctx context.Context, a ForwardAttachment, n int) (*schema.Message, error) {
	if a.Missing > 1 {
		return schema.TextMessage(fmt.Sprintf("(%d attachments of this e-mail are missing: %s)", a.Missing, a.Problem)), nil
	}
	if why := a.missing(); why != "" {
		what := "an attachment"
		if a.FileName != "" {
			what = fmt.Sprintf("attachment %q", a.FileName)
		}
		return schema.TextMessage(fmt.Sprintf("(%s of this e-mail is missing: %s)", what, why)), nil
	}
	name := inboundFileName(a, n)
	link, err := p.deps.Media.Save(ctx, name, a.ContentType, a.Body)
	if errors.Is(err, providers.ErrMediaTooLarge) {
		// A mail may carry up to Mailgun's 64 MiB: one too large for
		// media.max_bytes is a note, never a 503 that every retry repeats.
		return schema.TextMessage(fmt.Sprintf("(attachment %q of this e-mail is missing: it is larger than this server keeps)",
			name)), nil
	}
	if err != nil {
		return nil, fmt.Errorf("mailgun: saving attachment %d: %w", n, err)
	}
	return &schema.Message{Type: schema.TypeAttachment, Attachment: &schema.Attachment{
		Type: inboundAttachmentType(a.ContentType), URL: link, MimeType: a.ContentType, FileName: name}}, nil
}

// forwardDedupeKey is the Message-Id, or the token of a mail without one.
func forwardDedupeKey(f *Forward) string {
	if f.MessageID == "" {
		return f.Token
	}
	return f.MessageID
}

// MessageMID is the mId of an inbound mail: "mg" and 24 characters of the
// base64 (standard alphabet, no padding: only A-Z a-z 0-9 + /) of the
// SHA-256 of its Message-Id, so 26 characters, the same for every
// redelivery of the mail, and room for "-N" suffixes within 50. A
// Message-Id is often far longer than 50 characters, so it cannot be the
// mId itself. A mail without a Message-Id uses the route's token instead.
func MessageMID(messageID, token string) string {
	key := "message-id:" + messageID
	if messageID == "" {
		key = "token:" + token
	}
	sum := sha256.Sum256([]byte(key))
	return "mg" + base64.RawStdEncoding.EncodeToString(sum[:18])
}

var (
	angleAddr = regexp.MustCompile(`^(.*)<([^<>\s]+@[^<>\s]+)>?\s*$`)
	bareAddr  = regexp.MustCompile(`[^<>\s,;]+@[^<>\s,;]+`)
)

// addressParser reads address headers, decoding encoded words in the
// charsets net/mail does not know either (decodeHeader's).
var addressParser = &mail.AddressParser{WordDecoder: headerWords}

// inboundFrom reads the From header. What net/mail refuses but mail
// programs send anyway ("Jane [Acme] <jane@x.org>", an unclosed "<", a
// name before a bare address) is read leniently: the address in angle
// brackets and the text before it as the name, else the first bare
// address. EncodeContactID checks the address itself.
func inboundFrom(from string) (*mail.Address, error) {
	if a, err := addressParser.Parse(from); err == nil {
		return a, nil
	}
	if m := angleAddr.FindStringSubmatch(from); m != nil {
		return &mail.Address{Name: decodeHeader(strings.Trim(strings.TrimSpace(m[1]), `"`)), Address: m[2]}, nil
	}
	if a := bareAddr.FindString(from); a != "" {
		return &mail.Address{Address: a}, nil
	}
	return nil, fmt.Errorf("%w: From %q has no address", ErrInvalidAddress, from)
}

// inboundTime is the forward's signed timestamp in milliseconds (the same
// for Mailgun's retries), else now.
func (p *Provider) inboundTime(timestamp string) int64 {
	if secs, err := strconv.ParseInt(timestamp, 10, 64); err == nil && secs > 0 {
		return secs * 1000
	}
	if p.now != nil {
		return p.now().UnixMilli()
	}
	return 0
}

// inboundEchoContact is the contact of a mail the business sent: the first To,
// then Cc, address that is neither a business address nor on the channel's
// domain (the channel address is in Cc/Bcc).
func (p *Provider) inboundEchoContact(f *Forward, business []string) *mail.Address {
	for _, a := range append(append([]string{}, f.To...), f.Cc...) {
		if inboundIsBusiness(a, business) || inboundOnDomain(a, p.cfg.Domain) {
			continue
		}
		return &mail.Address{Address: a}
	}
	return nil
}

// inboundIsBusiness reports whether addr is one of the business addresses or on
// one of its domains ("example.com" or "@example.com"), case-insensitively.
func inboundIsBusiness(addr string, business []string) bool {
	addr = strings.ToLower(strings.TrimSpace(addr))
	for _, b := range business {
		b = strings.ToLower(strings.TrimSpace(b))
		switch {
		case b == "":
		case strings.HasPrefix(b, "@"):
			if inboundOnDomain(addr, b[1:]) {
				return true
			}
		case strings.Contains(b, "@"):
			if addr == b {
				return true
			}
		default:
			if inboundOnDomain(addr, b) {
				return true
			}
		}
	}
	return false
}

func inboundOnDomain(addr, domain string) bool {
	_, d, ok := strings.Cut(addr, "@")
	return ok && domain != "" && strings.EqualFold(d, domain)
}

// inboundContact is the profile: email when it fits, names from the
// display name.
func inboundContact(a *mail.Address) *schema.Contact {
	c := &schema.Contact{}
	if schema.Length(a.Address) <= schema.MaxEmail {
		c.Email = a.Address
	}
	c.FirstName, c.LastName = inboundSplitName(a.Name)
	return c
}

// inboundSplitName splits a display name: "Last, First" when it has a comma, else
// the first word is the first name and the rest the last name. Quotes are
// dropped; each part is cut to 50 characters.
func inboundSplitName(name string) (first, last string) {
	name = strings.Join(strings.Fields(strings.Trim(strings.TrimSpace(name), `"'`)), " ")
	if name == "" || strings.Contains(name, "@") {
		return "", "" // an address repeated as the name is not a name
	}
	if l, f, ok := strings.Cut(name, ","); ok {
		first, last = strings.TrimSpace(f), strings.TrimSpace(l)
	} else {
		first, last, _ = strings.Cut(name, " ")
	}
	return schema.Truncate(first, schema.MaxName), schema.Truncate(strings.TrimSpace(last), schema.MaxName)
}

// inboundFileName is the part's file name, else "attachment-N" with an
// extension for its type (a fixed table, so a name never depends on the
// host's MIME tables).
// A name without an extension gets one for its type when the type is
// known: BonyChat needs the extension to open the file.
func inboundFileName(a ForwardAttachment, n int) string {
	ext, known := inboundExtensions[a.ContentType]
	name := strings.TrimSpace(a.FileName)
	switch {
	case name == "" && known:
		return fmt.Sprintf("attachment-%d%s", n, ext)
	case name == "":
		return fmt.Sprintf("attachment-%d.bin", n)
	case path.Ext(name) == "" && known:
		return name + ext
	}
	return name
}

var inboundExtensions = map[string]string{
	"image/jpeg": ".jpg", "image/png": ".png", "image/gif": ".gif", "image/webp": ".webp",
	"application/pdf": ".pdf", "text/plain": ".txt", "text/html": ".html", "text/calendar": ".ics",
	"audio/mpeg": ".mp3", "video/mp4": ".mp4", "application/zip": ".zip",
	"message/rfc822": ".eml",
}

// inboundAttachmentType is BonyChat's attachment type for a media type.
func inboundAttachmentType(ctype string) string {
	major, _, _ := strings.Cut(ctype, "/")
	switch major {
	case "image", "video", "audio":
		return major
	}
	return "file"
}
