package mailgun

// The message as raw MIME: what forward() posts as body-mime when the
// route's URL ends in "mime", with no body-plain, no stripped-text and no
// attachment-N parts. Also the decoding of RFC 2047 encoded words, which
// message-headers and body-mime carry as the mail has them.

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/http"
	"net/mail"
	"net/textproto"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/htmlindex"
)

// maxMIMEDepth bounds how deeply body-mime's multiparts are followed; a
// multipart below it is kept as an attachment. maxMIMEParts bounds the
// parts read in all (Go's own form reader stops at 1000 too): a mail of
// tiny parts would otherwise cost time and events without end.
const (
	maxMIMEDepth = 16
	maxMIMEParts = 1000
)

// errTooManyParts ends the walk of a body-mime with more than maxMIMEParts.
var errTooManyParts = fmt.Errorf("more than %d MIME parts; the rest is not read", maxMIMEParts)

// rawMessage is what body-mime holds: its headers, its text/plain part,
// its text/html parts, and every other part as an attachment. Its methods
// accept a nil *rawMessage (no body-mime).
type rawMessage struct {
	header      mail.Header
	text, html  string
	attachments []ForwardAttachment
	// texts and htmls collect the inline parts during the walk (joined
	// once at its end: appending to a string per part costs the square
	// of the part count); parts counts them all.
	texts, htmls []string
	parts        int
	// problems are the parts that could not be read whole, for the log.
	problems []string
}

// unreadParts are the problems of the parts that could not be read whole.
func (m *rawMessage) unreadParts() []string {
	if m == nil {
		return nil
	}
	return m.problems
}

func (m *rawMessage) headerValue(name string) string {
	if m == nil {
		return ""
	}
	return m.header.Get(name)
}

func (m *rawMessage) textPart() string {
	if m == nil {
		return ""
	}
	return m.text
}

func (m *rawMessage) htmlParts() string {
	if m == nil {
		return ""
	}
	return m.html
}

func (m *rawMessage) attachmentParts() []ForwardAttachment {
	if m == nil {
		return nil
	}
	return m.attachments
}

// forwardRawMessage is the forward's body-mime, posted as a form value or
// (as some receivers report it) as a file part; nil without one. A part of
// it that cannot be read is a problem; a body-mime whose headers cannot be
// read is an error only when the form has no text of its own to deliver.
func forwardRawMessage(f *Forward, r *http.Request) (*rawMessage, error) {
	raw, err := rawMIMEField(r)
	if err == nil && raw == "" {
		return nil, nil
	}
	var m *rawMessage
	if err == nil {
		m, err = parseRawMIME(raw)
	}
	for _, problem := range m.unreadParts() {
		f.problem("body-mime: %s", problem)
	}
	switch {
	case err == nil:
		return m, nil
	case m != nil:
		f.problem("body-mime is partly unreadable: %v", err)
		return m, nil
	case r.PostForm.Get("body-plain") != "" || r.PostForm.Get("body-html") != "":
		f.problem("body-mime is unreadable: %v", err)
		return nil, nil
	}
	return nil, fmt.Errorf("mailgun: body-mime is not a readable e-mail: %w", err)
}

func rawMIMEField(r *http.Request) (string, error) {
	if v := r.PostForm.Get("body-mime"); v != "" || r.MultipartForm == nil {
		return v, nil
	}
	files := r.MultipartForm.File["body-mime"]
	if len(files) == 0 {
		return "", nil
	}
	file, err := files[0].Open()
	if err != nil {
		return "", err
	}
	defer file.Close()
	b, err := io.ReadAll(file)
	return string(b), err
}

// parseRawMIME reads an RFC 5322 message. Mailgun's body-mime mixes line
// ends (headers folded with a bare LF inside CRLF lines); net/textproto
// takes both. A message whose headers it cannot read is (nil, error); one
// cut short in its body keeps the parts read before.
func parseRawMIME(raw string) (*rawMessage, error) {
	msg, err := mail.ReadMessage(strings.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("reading its headers: %w", err)
	}
	m := &rawMessage{header: msg.Header}
	err = m.walk(textproto.MIMEHeader(msg.Header), msg.Body, 0)
	// Mail programs put text after an attachment as a part of its own.
	m.text = strings.TrimLeft(strings.Join(m.texts, "\n"), "\n")
	m.html = strings.Join(m.htmls, "")
	m.texts, m.htmls = nil, nil
	return m, err
}

// walk adds a part, or each part of a multipart, to m.
func (m *rawMessage) walk(h textproto.MIMEHeader, body io.Reader, depth int) error {
	if m.parts++; m.parts > maxMIMEParts {
		return errTooManyParts
	}
	mediaType, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil && !errors.Is(err, mime.ErrInvalidMediaParameter) {
		mediaType, params = "text/plain", nil // RFC 2045's default
	}
	if strings.HasPrefix(mediaType, "multipart/") && params["boundary"] != "" && depth < maxMIMEDepth {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			// NextPart also undoes quoted-printable (and drops the header).
			part, err := mr.NextPart()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			if err := m.walk(part.Header, part, depth+1); err != nil {
				return err
			}
		}
	}
	data, err := io.ReadAll(transferDecoded(h, body))
	if err != nil {
		// The rest of the mail stays: the next boundary is found again, or
		// the walk ends where the mail does (one cut short, or without its
		// closing boundary, as some mail programs write it).
		m.problems = append(m.problems, fmt.Sprintf("reading a %s part: %v", mediaType, err))
	}
	m.add(h, mediaType, params, data, err != nil)
	return nil
}

// add keeps a leaf part: inline text/plain as the text, inline text/html
// as the HTML, anything else (named, "attachment", or another type) as an
// attachment. Of a part that could not be read whole (broken), a text
// keeps the words read before the fault, an attachment becomes a note for
// the agent instead of a broken file.
func (m *rawMessage) add(h textproto.MIMEHeader, mediaType string, params map[string]string, data []byte, broken bool) {
	disposition, dparams, _ := mime.ParseMediaType(h.Get("Content-Disposition"))
	name := decodeHeader(dparams["filename"])
	if name == "" {
		name = decodeHeader(params["name"])
	}
	inline := disposition != "attachment" && name == ""
	switch {
	case inline && mediaType == "text/plain":
		m.texts = append(m.texts, toUTF8(data, params["charset"]))
	case inline && mediaType == "text/html":
		m.htmls = append(m.htmls, toUTF8(data, params["charset"]))
	default:
		a := ForwardAttachment{FileName: baseName(name), ContentType: mediaType,
			Body: data, ContentID: strings.Trim(strings.TrimSpace(h.Get("Content-Id")), "<>")}
		if broken {
			a.Body, a.Problem = nil, "it could not be read"
		}
		m.attachments = append(m.attachments, a)
	}
}

// transferDecoded undoes a part's Content-Transfer-Encoding (base64, or
// quoted-printable on a message that is not multipart).
func transferDecoded(h textproto.MIMEHeader, body io.Reader) io.Reader {
	switch strings.ToLower(strings.TrimSpace(h.Get("Content-Transfer-Encoding"))) {
	case "base64":
		return base64.NewDecoder(base64.StdEncoding, body) // skips line ends
	case "quoted-printable":
		return quotedprintable.NewReader(body)
	}
	return body
}

// baseName drops a path a mail program left in a file name.
func baseName(name string) string {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	if name == "." || name == ".." {
		return ""
	}
	return name
}

// toUTF8 is a text part's bytes as UTF-8, decoded from the part's charset
// by its WHATWG label (ISO-8859-x and Windows-125x, KOI8, Shift_JIS,
// ISO-2022-JP, EUC-KR, GBK/GB18030, Big5, UTF-16, …; "latin1" is read as
// Windows-1252, as browsers do). A missing or unknown charset is taken as
// UTF-8; bytes that are not valid in it become U+FFFD.
func toUTF8(data []byte, charset string) string {
	if enc := charsetEncoding(charset); enc != nil {
		if out, err := enc.NewDecoder().Bytes(data); err == nil {
			return strings.ToValidUTF8(string(out), "\uFFFD")
		}
	}
	return strings.ToValidUTF8(string(data), "\uFFFD")
}

// charsetEncoding is the encoding of a charset label; nil for UTF-8, US-ASCII
// (a subset of it) and labels it does not know. WHATWG maps a few labels
// (ISO-2022-KR, HZ-GB-2312, ISO-2022-CN) to its "replacement" encoding,
// which turns a whole text into one U+FFFD: those count as unknown, so the
// text is kept, its odd bytes replaced one by one.
func charsetEncoding(label string) encoding.Encoding {
	label = strings.ToLower(strings.TrimSpace(label))
	if isUTF8Label(label) {
		return nil
	}
	enc, err := htmlindex.Get(label)
	if err != nil || enc == encoding.Replacement {
		return nil
	}
	return enc
}

func isUTF8Label(label string) bool {
	switch strings.ToLower(strings.TrimSpace(label)) {
	case "", "utf-8", "utf8", "us-ascii", "ascii":
		return true
	}
	return false
}

// headerWords decodes RFC 2047 encoded words in any charset toUTF8 knows
// (net/mail alone knows UTF-8, ISO-8859-1 and US-ASCII by those names).
var headerWords = &mime.WordDecoder{CharsetReader: func(charset string, input io.Reader) (io.Reader, error) {
	if isUTF8Label(charset) {
		return input, nil // "UTF8", "ascii": the same bytes
	}
	enc := charsetEncoding(charset)
	if enc == nil {
		return nil, fmt.Errorf("unhandled charset %q", charset)
	}
	return enc.NewDecoder().Reader(input), nil
}}

// decodeHeader is a header value with its encoded words decoded; one it
// cannot decode stays as it came.
func decodeHeader(s string) string {
	if !strings.Contains(s, "=?") {
		return s
	}
	d, err := headerWords.DecodeHeader(s)
	if err != nil || !utf8.ValidString(d) {
		return s
	}
	return d
}
