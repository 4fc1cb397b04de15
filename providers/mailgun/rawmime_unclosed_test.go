package mailgun

import (
	"net/url"
	"strings"
	"testing"
)

// A raw-MIME mail whose multipart lacks its closing boundary (a mail
// program that never wrote it, or a message cut short at the sender) still
// carries its text: what was read of the last part is the mail. (Dropping
// that part whole made a one-part mail "(empty e-mail)", answered 200 to
// Mailgun: the contact's words acknowledged and lost.)
func TestRawMIMEWithoutClosingBoundaryKeepsItsText(t *testing.T) {
	mime := "From: Jane <jane@example.test>\r\nMessage-ID: <unclosed@example.test>\r\nSubject: Order 42\r\n" +
		"Content-Type: multipart/alternative; boundary=b1\r\n\r\n" +
		"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nWhere is my order 42?\r\n"
	f := inParseForm(t, url.Values{"body-mime": {mime}})
	if !strings.Contains(f.Text, "Where is my order 42?") {
		t.Errorf("text %q, want the mail's text (problems: %q)", f.Text, f.Problems)
	}
}
