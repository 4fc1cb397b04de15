package mailgun

import (
	"context"
	"net/url"
	"strings"
	"testing"
)

// README: "a part that cannot be read (an attachment, …) does not hold the
// mail back: the text is delivered, the agent gets a note naming what is
// missing". So in a raw-MIME forward, an attachment whose base64 cannot be
// decoded becomes that note, and the parts after it (here a good PDF)
// still arrive.
func TestRawMIMEUnreadableAttachmentIsANoteAndLaterPartsStay(t *testing.T) {
	env := hdSetup(t)
	mime := "From: Jane <jane@example.test>\r\nMessage-ID: <b64bad@example.test>\r\n" +
		"Content-Type: multipart/mixed; boundary=b1\r\n\r\n" +
		"--b1\r\nContent-Type: text/plain\r\n\r\nSee the two files.\r\n" +
		"--b1\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=a.pdf\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0x*LjQ=\r\n" +
		"--b1\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=b.pdf\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQ=\r\n--b1--\r\n"
	f := inParseForm(t, url.Values{"body-mime": {mime}})
	in, err := env.p.InboundEvents(context.Background(), f, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	var gotB, noteA bool
	for _, e := range in.Events {
		switch m := e.Message; {
		case m.Attachment != nil && m.Attachment.FileName == "b.pdf":
			gotB = true
		case m.Text != nil && strings.Contains(*m.Text, "missing") && strings.Contains(*m.Text, "a.pdf"):
			noteA = true
		}
	}
	if !gotB || !noteA {
		t.Errorf("b.pdf posted %v, note about a.pdf %v (attachments %d, problems %q)", gotB, noteA, len(f.Attachments), f.Problems)
	}
}
