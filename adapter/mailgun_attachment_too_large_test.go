package adapter

import (
	"bytes"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/bonychat/bonychat-adapter/internal/fakemailgun"
	"github.com/bonychat/bonychat-adapter/store"
)

// TestAMailgunAttachmentOverMediaMaxBytesIsANote: an e-mail whose attachment is
// larger than media.max_bytes can never be saved. Twilio turns a media item
// over the limit into a note (the fetcher refuses it); a Mailgun forward
// must do the same, since a 503 makes Mailgun retry the same mail, which
// fails the same way every time until Mailgun gives up: the mail, its text
// included, is lost.
func TestAMailgunAttachmentOverMediaMaxBytesIsANote(t *testing.T) {
	fake := fakemailgun.New(t, "mg.example.com", mailgunKey)
	h := newHarnessOn(t, store.NewMemory(), func(c *Config) {
		c.Channels[3].Mailgun.APIURL = fake.URL
		c.Media.Dir = t.TempDir()
		c.Media.MaxBytes = 1024
	}, nil)
	post := func() int {
		var buf bytes.Buffer
		w := multipart.NewWriter(&buf)
		for k, v := range signedForward("token-too-big-0000000000001", "too-big-1@mail.example.org", "Scan", "the scan you asked for") {
			_ = w.WriteField(k, v[0])
		}
		_ = w.WriteField("attachment-count", "1")
		fw, _ := w.CreateFormFile("attachment-1", "scan.pdf")
		_, _ = fw.Write([]byte("%PDF-1.4\n" + strings.Repeat("x", 4096)))
		_ = w.Close()
		req := httptest.NewRequest(http.MethodPost, specHost+"/mailgun/mail01/inbound", &buf)
		req.Header.Set("Content-Type", w.FormDataContentType())
		return h.doRequest(req, buf.Bytes()).Code
	}
	for attempt := 1; attempt <= 3; attempt++ { // Mailgun's retries
		if code := post(); code != http.StatusOK {
			t.Fatalf("attempt %d: forward with an attachment over media.max_bytes answered %d, want 200 (the mail delivered with a note)", attempt, code)
		}
	}
	waitFor(t, func() bool {
		for _, p := range h.platform.posts() {
			for _, e := range p.Payload.Events {
				if e.Message != nil && e.Message.Text != nil && strings.Contains(*e.Message.Text, "the scan you asked for") {
					return true
				}
			}
		}
		return false
	})
}
