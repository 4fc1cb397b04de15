package mailgun

// Inbound mail: a Mailgun route's forward() POST, parsed into a Forward
// (ParseForward) and turned into BonyChat events (InboundEvents). Both are
// pure apart from the record and media stores; the HTTP handler (signature,
// token replay, dedupe, thread records) is built on top of them.

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"mime"
	"net/http"
	"net/mail"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/bonychat/bonychat-adapter/providers"
	"github.com/bonychat/bonychat-adapter/schema"
)

// forwardMemory is how much of a multipart forward is held in memory; file
// parts beyond it go to temporary files (removed before ParseForward
// returns). The whole body is capped separately by maxBytes.
const forwardMemory = 8 << 20

// ErrForwardTooLarge: the forward's body is over the cap (the handler
// answers 413; Mailgun retries, so the cap must exceed Mailgun's own limit).
var ErrForwardTooLarge = errors.New("mailgun: forwarded message is larger than the accepted size")

// Forward is one message as a Mailgun route's forward() posts it (the
// "parsed" format, urlencoded or multipart).
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
	// Text is stripped-text, else body-plain, else the text of body-html.
	Text        string
	Attachments []ForwardAttachment
}

// ForwardAttachment is one attachment-N part. ContentID (without angle
// brackets) is set for inline images, from content-id-map.
type ForwardAttachment struct {
	FileName    string
	ContentType string
	Body        []byte
	ContentID   string
}

// ParseForward reads a forward() POST: urlencoded (no attachments) or
// multipart. The body is capped at maxBytes (ErrForwardTooLarge beyond it)
// and only the form's POST body is read, never the URL's query. It checks
// no signature: that is Verify's, on the returned Timestamp, Token and
// Signature.
func ParseForward(r *http.Request, maxBytes int64) (*Forward, error) {
	if r.Body == nil {
		return nil, errors.New("mailgun: forward has no body")
	}
	r.Body = http.MaxBytesReader(nil, r.Body, maxBytes)
	// ParseForm first: ParseMultipartForm drops ParseForm's error (an
	// urlencoded body over the cap) when the body is not multipart.
	err := r.ParseForm()
	if err == nil {
		err = r.ParseMultipartForm(min(maxBytes, forwardMemory))
	}
	if r.MultipartForm != nil {
		defer r.MultipartForm.RemoveAll()
	}
	if err != nil && !errors.Is(err, http.ErrNotMultipart) {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, fmt.Errorf("%w (%d bytes)", ErrForwardTooLarge, maxBytes)
		}
		return nil, fmt.Errorf("mailgun: reading the forwarded message: %w", err)
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
	h, err := parseForwardHeaders(form.Get("message-headers"))
	if err != nil {
		return nil, err
	}
	// Headers come from message-headers; the top-level fields Mailgun has
	// also posted are the fallback.
	header := func(name string) string {
		if v, ok := h.get(name); ok {
			return v
		}
		return form.Get(name)
	}
	if f.From == "" {
		f.From = header("From")
	}
	if f.Subject == "" {
		f.Subject = header("Subject")
	}
	f.To = forwardAddresses(header("To"))
	f.Cc = forwardAddresses(header("Cc"))
	f.MessageID = forwardFirstID(header("Message-Id"))
	f.InReplyTo = forwardFirstID(header("In-Reply-To"))
	f.References = forwardIDs(header("References"))
	f.Text = forwardText(form.Get("stripped-text"), form.Get("body-plain"), form.Get("body-html"))
	if r.MultipartForm != nil {
		f.Attachments, err = forwardAttachments(r, form.Get("content-id-map"))
		if err != nil {
			return nil, err
		}
	}
	return f, nil
}

// forwardHeaders is message-headers: [name, value] pairs in order.
type forwardHeaders [][2]string

func parseForwardHeaders(s string) (forwardHeaders, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var raw [][]string
	if err := json.Unmarshal([]byte(s), &raw); err != nil {
		return nil, fmt.Errorf("mailgun: message-headers is not a JSON array of [name, value] pairs: %w", err)
	}
	out := make(forwardHeaders, 0, len(raw))
	for _, p := range raw {
		if len(p) == 2 {
			out = append(out, [2]string{p[0], p[1]})
		}
	}
	return out, nil
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
	list, err := mail.ParseAddressList(v)
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

// forwardAttachments are the attachment-N file parts in N order, inline images
// (named by content-id-map) included.
func forwardAttachments(r *http.Request, cidMap string) ([]ForwardAttachment, error) {
	cids := map[string]string{} // field name → content id
	if strings.TrimSpace(cidMap) != "" {
		var m map[string]string
		if err := json.Unmarshal([]byte(cidMap), &m); err != nil {
			return nil, fmt.Errorf("mailgun: content-id-map is not a JSON object of strings: %w", err)
		}
		for cid, field := range m {
			cids[field] = strings.Trim(strings.TrimSpace(cid), "<>")
		}
	}
	type numbered struct {
		n     int
		field string
	}
	var fields []numbered
	for name := range r.MultipartForm.File {
		if m := forwardAttachmentField.FindStringSubmatch(name); m != nil {
			n, err := strconv.Atoi(m[1])
			if err == nil {
				fields = append(fields, numbered{n, name})
			}
		}
	}
	sort.Slice(fields, func(i, j int) bool { return fields[i].n < fields[j].n })
	var out []ForwardAttachment
	for _, fd := range fields {
		for _, fh := range r.MultipartForm.File[fd.field] {
			file, err := fh.Open()
			if err != nil {
				return nil, fmt.Errorf("mailgun: opening %s: %w", fd.field, err)
			}
			body, err := io.ReadAll(file)
			file.Close()
			if err != nil {
				return nil, fmt.Errorf("mailgun: reading %s: %w", fd.field, err)
			}
			out = append(out, ForwardAttachment{
				FileName:    fh.Filename,
				ContentType: forwardPartType(fh.Header.Get("Content-Type")),
				Body:        body,
				ContentID:   cids[fd.field],
			})
		}
	}
	return out, nil
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
//     posted as attachment events with this server's URL.
//   - mIds: see MessageMID. The text is mId; the attachments are mId-N
//     numbered after the parts FitEvents may split the text into, so a long
//     text (mId-1, mId-2, …) never collides with an attachment.
//   - DedupeKey is the Message-Id (the token when a mail has none).
//
// An error is this server's (record or media store) or a mail with no
// usable contact address (ErrInvalidAddress): the handler answers 5xx for
// the first and 406 for the second.
func (p *Provider) InboundEvents(ctx context.Context, f *Forward, newThread bool, business []string) (providers.Inbound, error) {
	echo := false
	contact, err := inboundFrom(f.From)
	if err != nil {
		return providers.Inbound{}, err
	}
	if inboundIsBusiness(contact.Address, business) {
		echo = true
		contact = p.inboundEchoContact(f, business)
		if contact == nil {
			return providers.Inbound{}, fmt.Errorf("%w: mail from the business address %q names no contact in To or Cc", ErrInvalidAddress, f.From)
		}
	}
	contactID, err := EncodeContactID(ctx, p.deps.Records, contact.Address)
	if err != nil {
		return providers.Inbound{}, err
	}
	in := providers.Inbound{
		DedupeKey: f.MessageID,
		ContactID: contactID,
		Contact:   inboundContact(contact),
	}
	if in.DedupeKey == "" {
		in.DedupeKey = f.Token
	}
	kind := schema.EventMessage
	if echo {
		kind = schema.EventMessageEcho
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
	next := 1
	if text != "" {
		in.Events = append(in.Events, event(mid, schema.TextMessage(text)))
		if parts := len(schema.SplitText(text, schema.MaxText)); parts > 1 {
			next = parts + 1
		}
	}
	for i, a := range f.Attachments {
		name := inboundFileName(a, i+1)
		link, err := p.deps.Media.Save(ctx, name, a.ContentType, a.Body)
		if err != nil {
			return providers.Inbound{}, fmt.Errorf("mailgun: saving attachment %d: %w", i+1, err)
		}
		in.Events = append(in.Events, event(schema.SuffixID(mid, next), &schema.Message{
			Type: schema.TypeAttachment,
			Attachment: &schema.Attachment{
				Type: inboundAttachmentType(a.ContentType), URL: link, MimeType: a.ContentType, FileName: name},
		}))
		next++
	}
	if len(in.Events) == 0 {
		// Nothing to show (an empty mail): still tell the agent it came.
		in.Events = append(in.Events, event(mid, schema.TextMessage("(empty e-mail)")))
	}
	return in, nil
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

// inboundFrom reads the From header. What net/mail refuses but mail
// programs send anyway ("Jane [Acme] <jane@x.org>", an unclosed "<", a
// name before a bare address) is read leniently: the address in angle
// brackets and the text before it as the name, else the first bare
// address. EncodeContactID checks the address itself.
func inboundFrom(from string) (*mail.Address, error) {
	if a, err := mail.ParseAddress(from); err == nil {
		return a, nil
	}
	if m := angleAddr.FindStringSubmatch(from); m != nil {
		return &mail.Address{Name: strings.Trim(strings.TrimSpace(m[1]), `"`), Address: m[2]}, nil
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
