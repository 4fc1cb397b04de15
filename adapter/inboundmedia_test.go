package adapter

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bonychat/bonychat-adapter/internal/fakemailgun"
	"github.com/bonychat/bonychat-adapter/internal/faketwilio"
	"github.com/bonychat/bonychat-adapter/providers"
	"github.com/bonychat/bonychat-adapter/schema"
	"github.com/bonychat/bonychat-adapter/store"
)

// Media saved for an inbound message (Inbound.Media) are removed, file and
// record, when the message is certainly not stored, and kept whenever the
// store cannot tell: see pipeline.dropMedia. These tests run each case on
// both stores.

// testStores are the stores the media tests run on: name and an opener of
// an empty one (closed when the test ends).
var testStores = []struct {
	name string
	open func(t *testing.T) store.Store
}{
	{"memory", func(*testing.T) store.Store { return store.NewMemory() }},
	{"sqlite", func(t *testing.T) store.Store { return openTestSQLite(t, filepath.Join(t.TempDir(), "adapter.db")) }},
}

func openTestSQLite(t *testing.T, path string) *store.SQLite {
	t.Helper()
	st, err := store.OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// failsLeft counts down the Enqueues a wrapper below still fails; nil
// fails them all.
type failsLeft struct{ n *atomic.Int32 }

func failFirst(n int32) failsLeft {
	c := new(atomic.Int32)
	c.Store(n)
	return failsLeft{c}
}

func (f failsLeft) fail() bool { return f.n == nil || f.n.Add(-1) >= 0 }

// givenUpEnqueue fails Enqueue as the store itself does when the
// webhook's caller gave up (its context ended) before the store took the
// write: nothing stored, and the store says so (store.NotStored).
type givenUpEnqueue struct {
	store.Store
	failsLeft
}

func (s givenUpEnqueue) Enqueue(ctx context.Context, jobs []store.NewJob, keys []store.Key) ([]int64, error) {
	if !s.fail() {
		return s.Store.Enqueue(ctx, jobs, keys)
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	return s.Store.Enqueue(done, jobs, keys)
}

// unknownEnqueue stores the events and then fails, as a COMMIT whose
// answer was lost although the transaction is on disk: an error no store
// vouches for.
type unknownEnqueue struct {
	store.Store
	failsLeft
}

func (s unknownEnqueue) Enqueue(ctx context.Context, jobs []store.NewJob, keys []store.Key) ([]int64, error) {
	ids, err := s.Store.Enqueue(ctx, jobs, keys)
	if err != nil || !s.fail() {
		return ids, err
	}
	return nil, errors.New("store: sqlite: commit: disk I/O error")
}

// takenUnknown cannot read the inbound dedupe keys Taken asks for (a
// store error), so a redelivery goes the full way, its media saved again,
// and meets the dedupe of Ingest itself.
type takenUnknown struct{ store.Store }

func (s takenUnknown) LookupKey(ctx context.Context, name string, now time.Time) (store.Key, error) {
	if strings.HasPrefix(name, "inbound:") {
		return store.Key{}, errors.New("disk I/O error")
	}
	return s.Store.LookupKey(ctx, name, now)
}

// lockedOnEnqueue holds the SQLite database's write lock from another
// connection (as the jobs CLI or a backup may) while an Enqueue runs: the
// writer's BEGIN waits out the busy timeout (5 s) and fails. The lock is
// released before Enqueue returns, so that what follows may write.
type lockedOnEnqueue struct {
	*store.SQLite
	t    *testing.T
	path string
}

func (s lockedOnEnqueue) Enqueue(ctx context.Context, jobs []store.NewJob, keys []store.Key) ([]int64, error) {
	db, err := sql.Open("sqlite", "file:"+filepath.ToSlash(s.path)+"?_pragma=busy_timeout(5000)")
	if err != nil {
		s.t.Error(err)
		return nil, err
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err == nil {
		_, err = conn.ExecContext(ctx, `BEGIN IMMEDIATE`)
	}
	if err != nil {
		s.t.Error(err)
		return nil, err
	}
	defer func() {
		_, _ = conn.ExecContext(context.Background(), `ROLLBACK`)
		conn.Close()
	}()
	return s.SQLite.Enqueue(ctx, jobs, keys)
}

// mediaKept reports whether the media of a /media URL Save returned are
// still there: file and record (and both gone when not; one without the
// other fails the test).
func mediaKept(t *testing.T, h *harness, link string) bool {
	t.Helper()
	_, id, _ := mediaParts(t, h, link)
	_, ferr := os.Stat(filepath.Join(h.cfg.Media.Dir, id[:2], id))
	_, merr := h.st.GetMedia(context.Background(), id)
	switch {
	case ferr == nil && merr == nil:
		return true
	case errors.Is(ferr, os.ErrNotExist) && errors.Is(merr, store.ErrNotFound):
		return false
	}
	t.Fatalf("media %s: file %v, record %v: want both or neither", id, ferr, merr)
	return false
}

// mediaServed checks that a stored event's media link answers the file.
func mediaServed(t *testing.T, h *harness, link string) {
	t.Helper()
	path, _, _ := mediaParts(t, h, link)
	if rec := mediaGet(h, http.MethodGet, path, nil); rec.Code != http.StatusOK {
		t.Fatalf("GET %s: %d, want the file: a stored event links it", path, rec.Code)
	}
}

// photoInbound is a contact's photo, saved through the server's media
// store as a provider does, with its /media link in the event and in Media.
func photoInbound(t *testing.T, h *harness, id string) (providers.Inbound, string) {
	t.Helper()
	link := mediaSave(t, h, id+".jpg", "image/jpeg", []byte("\xff\xd8\xff photo of "+id))
	return providers.Inbound{DedupeKey: id, ContactID: phoneContact, Media: []string{link},
		Events: []schema.Event{{Type: schema.EventMessage, MID: id, Timestamp: 1, Message: &schema.Message{
			Type: schema.TypeAttachment, Attachment: &schema.Attachment{Type: "image", URL: link, FileName: id + ".jpg"}}}}}, link
}

func mediaHarnessOn(t *testing.T, st store.Store) *harness {
	t.Helper()
	dir := t.TempDir()
	return newHarnessOn(t, st, func(c *Config) { c.Media.Dir = dir }, nil)
}

// What Ingest does with the media of an inbound message, by what the store
// answered: removed exactly when none of its events can be stored.
func TestIngestRemovesTheMediaOfWhatItCertainlyDidNotStore(t *testing.T) {
	cases := []struct {
		name   string
		wrap   func(store.Store) store.Store
		status int  // Ingest's error status; 0: acknowledged
		stored bool // the events are in the store (and reach BonyChat)
		kept   bool
	}{
		{"stored", nil, 0, true, true},
		{"the caller gave up before the store took it", func(s store.Store) store.Store { return givenUpEnqueue{Store: s} },
			http.StatusServiceUnavailable, false, false},
		{"stored, but the store's answer is an error it does not vouch for",
			func(s store.Store) store.Store { return unknownEnqueue{Store: s} }, http.StatusServiceUnavailable, true, true},
		{"an unknown store error", func(s store.Store) store.Store { return &failingStore{Store: s} },
			http.StatusServiceUnavailable, false, true},
	}
	for _, sk := range testStores {
		for _, tc := range cases {
			t.Run(sk.name+"/"+tc.name, func(t *testing.T) {
				st := sk.open(t)
				if tc.wrap != nil {
					st = tc.wrap(st)
				}
				h := mediaHarnessOn(t, st)
				in, link := photoInbound(t, h, "SM-photo-1")
				_, err := h.srv.ingester(h.srv.channels["demo"]).Ingest(t.Context(), in)
				if status, _ := providers.IngestStatus(err); (err == nil) != (tc.status == 0) || (err != nil && status != tc.status) {
					t.Fatalf("Ingest: %v (status %d), want status %d", err, status, tc.status)
				}
				if kept := mediaKept(t, h, link); kept != tc.kept {
					t.Fatalf("media kept = %v, want %v", kept, tc.kept)
				}
				if tc.stored {
					// BonyChat gets the event with its link, and the link works.
					waitFor(t, func() bool { return len(h.eventsOf("SM-photo-1")) == 1 })
					mediaServed(t, h, link)
				}
			})
		}
	}
}

// A redelivery that reaches Ingest's dedupe (the provider could not ask
// Taken, or two deliveries raced) saved its own copies of the media: they
// are removed, and the first delivery's, which its stored events link, are
// kept and served.
func TestIngestRemovesTheMediaOfADuplicateAndKeepsTheFirstCopy(t *testing.T) {
	for _, sk := range testStores {
		t.Run(sk.name, func(t *testing.T) {
			h := mediaHarnessOn(t, sk.open(t))
			ingest := h.srv.ingester(h.srv.channels["demo"])
			first, firstLink := photoInbound(t, h, "SM-dup-1")
			if _, err := ingest.Ingest(t.Context(), first); err != nil {
				t.Fatal(err)
			}
			again, againLink := photoInbound(t, h, "SM-dup-1")
			if _, err := ingest.Ingest(t.Context(), again); err != nil {
				t.Fatalf("a redelivery is acknowledged: %v", err)
			}
			if mediaKept(t, h, againLink) {
				t.Fatal("the duplicate's own copy of the media is kept: linked from nothing for media.retention")
			}
			if !mediaKept(t, h, firstLink) {
				t.Fatal("the first delivery's media were removed: its stored event links them")
			}
			waitFor(t, func() bool { return len(h.eventsOf("SM-dup-1")) == 1 })
			if got := h.eventsOf("SM-dup-1")[0].Message.Attachment.URL; got != firstLink {
				t.Fatalf("BonyChat got %s, want the first copy %s", got, firstLink)
			}
			mediaServed(t, h, firstLink)
		})
	}
}

// Events refused for their content are never stored: their media go.
func TestIngestRemovesTheMediaOfRefusedEvents(t *testing.T) {
	h := mediaHarnessOn(t, store.NewMemory())
	in, link := photoInbound(t, h, "SM-refused-1")
	in.Events = append(in.Events, schema.Event{Type: schema.EventMessage, MID: "SM-refused-1-text", Timestamp: 1,
		Message: schema.TextMessage("")})
	_, err := h.srv.ingester(h.srv.channels["demo"]).Ingest(t.Context(), in)
	if status, _ := providers.IngestStatus(err); status != http.StatusBadRequest {
		t.Fatalf("Ingest of an empty text: %v, want 400", err)
	}
	if mediaKept(t, h, link) {
		t.Fatal("the media of refused events are kept")
	}
}

// Ingest removes only what Media names, and only this server's media
// links: a URL from elsewhere (a console sender's attachment pointing at
// someone else's media, say) is never followed, even on a duplicate.
func TestIngestNeverRemovesMediaOutsideItsOwnLinks(t *testing.T) {
	h := mediaHarnessOn(t, store.NewMemory())
	ingest := h.srv.ingester(h.srv.channels["demo"])
	first, link := photoInbound(t, h, "SM-foreign-1")
	if _, err := ingest.Ingest(t.Context(), first); err != nil {
		t.Fatal(err)
	}
	path, _, _ := mediaParts(t, h, link)
	again := first
	again.Media = []string{"https://elsewhere.example" + path}
	if _, err := ingest.Ingest(t.Context(), again); err != nil {
		t.Fatal(err)
	}
	if !mediaKept(t, h, link) {
		t.Fatal("a media link of another host removed this server's media")
	}
	if !strings.Contains(h.logs.String(), "could not all be removed") {
		t.Errorf("the refused link was not logged:\n%s", h.logs.String())
	}
}

// mediaLeft lists what media remain: the files under media.dir and the
// records in the store (read destructively: call it last).
func mediaLeft(t *testing.T, h *harness) (files []string, records []store.Media) {
	t.Helper()
	records, err := h.st.ExpiredMedia(context.Background(), time.Now().Add(100*365*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return mediaFiles(t, h.cfg.Media.Dir), records
}

// wantOneCopy checks that exactly the media BonyChat got a link to remain:
// one file, one record, served.
func wantOneCopy(t *testing.T, h *harness, link string) {
	t.Helper()
	mediaServed(t, h, link)
	_, id, _ := mediaParts(t, h, link)
	files, records := mediaLeft(t, h)
	if len(files) != 1 || len(records) != 1 || records[0].ID != id {
		t.Fatalf("media left: files %v, records %+v; want only the posted link's (%s)", files, records, id)
	}
}

// twilioMMS is a server on st with a Twilio channel (sms01), and a media
// host serving the photo Twilio's MediaUrl0 points at; post delivers the
// MMS webhook for sid and returns its status.
func twilioMMS(t *testing.T, st store.Store) (h *harness, post func(sid string) int) {
	t.Helper()
	photos := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/jpeg")
		_, _ = w.Write([]byte("\xff\xd8\xff\xe0 jpeg of " + r.URL.Path))
	}))
	t.Cleanup(photos.Close)
	fake := faketwilio.New(t, twilioSID, twilioToken)
	dir := t.TempDir()
	h = newHarnessOn(t, st, func(c *Config) {
		c.Channels[2].Twilio.APIURL = fake.URL
		c.Media.Dir = dir
		c.Media.AllowPrivateNetworks = true
	}, nil)
	return h, func(sid string) int {
		code, _ := h.postSigned("/twilio/sms01/inbound", url.Values{"MessageSid": {sid}, "AccountSid": {twilioSID},
			"From": {phoneContact}, "To": {"+15550001111"}, "Body": {"the damaged box"}, "NumMedia": {"1"},
			"MediaUrl0": {photos.URL + "/photo.jpg"}, "MediaContentType0": {"image/jpeg"}})
		return code
	}
}

// postedLink is the media link of the event BonyChat got with this mId.
func postedLink(t *testing.T, h *harness, mID string) string {
	t.Helper()
	waitFor(t, func() bool { return len(h.eventsOf(mID)) == 1 })
	a := h.eventsOf(mID)[0].Message.Attachment
	if a == nil {
		t.Fatalf("event %s has no attachment", mID)
	}
	return a.URL
}

// An MMS the store does not take (its webhook's caller gave up first) is
// answered 503 and leaves no media behind; Twilio's redelivery (its
// fallback URL) is stored with its own copy: one copy in all, not one per
// attempt.
func TestTwilioInboundNotStoredLeavesNoMediaAndTheRedeliveryOneCopy(t *testing.T) {
	for _, sk := range testStores {
		t.Run(sk.name, func(t *testing.T) {
			h, post := twilioMMS(t, givenUpEnqueue{Store: sk.open(t), failsLeft: failFirst(2)})
			const sid = "MM00000000000000000000000000000001"
			for attempt := 1; attempt <= 2; attempt++ {
				if code := post(sid); code != http.StatusServiceUnavailable {
					t.Fatalf("attempt %d with the store refusing: %d, want 503", attempt, code)
				}
				if files := mediaFiles(t, h.cfg.Media.Dir); len(files) != 0 {
					t.Fatalf("attempt %d not stored left media files %v", attempt, files)
				}
			}
			if code := post(sid); code != http.StatusOK {
				t.Fatalf("the redelivery: %d", code)
			}
			wantOneCopy(t, h, postedLink(t, h, sid+"-1"))
		})
	}
}

// The same with the store really unavailable: the SQLite database locked
// by another process past the busy timeout. The lock is held only for the
// Enqueue (lockedOnEnqueue), so the media record can be removed after it;
// a lock that outlasts it leaves the record to expire (README).
func TestTwilioInboundRefusedByALockedDatabaseLeavesNoMedia(t *testing.T) {
	t.Parallel() // waits out the 5 s busy timeout
	path := filepath.Join(t.TempDir(), "adapter.db")
	h, post := twilioMMS(t, lockedOnEnqueue{SQLite: openTestSQLite(t, path), t: t, path: path})
	if code := post("MM00000000000000000000000000000002"); code != http.StatusServiceUnavailable {
		t.Fatalf("MMS while the database is locked: %d, want 503", code)
	}
	if files, records := mediaLeft(t, h); len(files) != 0 || len(records) != 0 {
		t.Fatalf("an MMS not stored left media: files %v, records %+v", files, records)
	}
}

// A redelivery that gets past the early "already taken" check (the store
// could not answer it) saves its own copy of the media and is dropped by
// Ingest's dedupe: that copy is removed; the first one, which BonyChat got,
// stays.
func TestTwilioInboundDuplicateLeavesOnlyTheFirstCopy(t *testing.T) {
	for _, sk := range testStores {
		t.Run(sk.name, func(t *testing.T) {
			h, post := twilioMMS(t, takenUnknown{sk.open(t)})
			const sid = "MM00000000000000000000000000000003"
			for attempt := 1; attempt <= 3; attempt++ {
				if code := post(sid); code != http.StatusOK {
					t.Fatalf("delivery %d: %d", attempt, code)
				}
			}
			link := postedLink(t, h, sid+"-1")
			if n := len(h.eventsOf(sid + "-1")); n != 1 {
				t.Fatalf("BonyChat got the photo %d times", n)
			}
			wantOneCopy(t, h, link)
		})
	}
}

// When the store cannot tell whether it stored the MMS (here it did, and
// answered an error it does not vouch for), the media are kept: BonyChat
// gets the event, and its link works. Twilio's redelivery is then
// answered as taken, without another copy.
func TestTwilioInboundMaybeStoredKeepsItsMedia(t *testing.T) {
	for _, sk := range testStores {
		t.Run(sk.name, func(t *testing.T) {
			h, post := twilioMMS(t, unknownEnqueue{Store: sk.open(t), failsLeft: failFirst(1)})
			const sid = "MM00000000000000000000000000000004"
			if code := post(sid); code != http.StatusServiceUnavailable {
				t.Fatalf("MMS whose store answered an unknown error: %d, want 503", code)
			}
			if code := post(sid); code != http.StatusOK {
				t.Fatalf("the redelivery: %d", code)
			}
			wantOneCopy(t, h, postedLink(t, h, sid+"-1"))
		})
	}
}

// mailgunAttachment is a server on st with a Mailgun channel (mail01);
// post delivers a route forward of msgID with one PDF attached, under
// token (Mailgun's retry resends the token, another route's copy has its
// own), and returns its status.
func mailgunAttachment(t *testing.T, st store.Store) (h *harness, post func(token, msgID string) int) {
	t.Helper()
	fake := fakemailgun.New(t, "mg.example.com", mailgunKey)
	dir := t.TempDir()
	h = newHarnessOn(t, st, func(c *Config) {
		c.Channels[3].Mailgun.APIURL = fake.URL
		c.Media.Dir = dir
	}, nil)
	return h, func(token, msgID string) int {
		var buf bytes.Buffer
		w := multipart.NewWriter(&buf)
		for k, v := range signedForward(token, msgID, "Invoice", "see attached") {
			_ = w.WriteField(k, v[0])
		}
		_ = w.WriteField("attachment-count", "1")
		fw, _ := w.CreateFormFile("attachment-1", "invoice.pdf")
		_, _ = fw.Write([]byte("%PDF-1.4\n" + msgID))
		_ = w.Close()
		req := httptest.NewRequest(http.MethodPost, specHost+"/mailgun/mail01/inbound", &buf)
		req.Header.Set("Content-Type", w.FormDataContentType())
		return h.doRequest(req, buf.Bytes()).Code
	}
}

// The link of the attachment of the mail BonyChat got, its only one.
func postedMailLink(t *testing.T, h *harness) string {
	t.Helper()
	var links []string
	waitFor(t, func() bool {
		links = links[:0]
		for _, p := range h.platform.posts() {
			for _, e := range p.Payload.Events {
				if e.Message != nil && e.Message.Attachment != nil {
					links = append(links, e.Message.Attachment.URL)
				}
			}
		}
		return len(links) > 0
	})
	if len(links) != 1 {
		t.Fatalf("BonyChat got %d attachments, want 1: %q", len(links), links)
	}
	return links[0]
}

// A forward the store does not take is answered 503 and leaves no media
// behind; Mailgun's retries (same token) end with one copy, not one per
// attempt.
func TestMailgunForwardNotStoredLeavesNoMediaAndTheRetryOneCopy(t *testing.T) {
	for _, sk := range testStores {
		t.Run(sk.name, func(t *testing.T) {
			h, post := mailgunAttachment(t, givenUpEnqueue{Store: sk.open(t), failsLeft: failFirst(2)})
			const token, msgID = "token-notstored-000000000001", "notstored-1@mail.example.org"
			for attempt := 1; attempt <= 2; attempt++ {
				if code := post(token, msgID); code != http.StatusServiceUnavailable {
					t.Fatalf("attempt %d with the store refusing: %d, want 503", attempt, code)
				}
				if files := mediaFiles(t, h.cfg.Media.Dir); len(files) != 0 {
					t.Fatalf("attempt %d not stored left media files %v", attempt, files)
				}
			}
			if code := post(token, msgID); code != http.StatusOK {
				t.Fatalf("Mailgun's retry: %d", code)
			}
			wantOneCopy(t, h, postedMailLink(t, h))
		})
	}
}

// Another route's copy of a mail already taken, which gets past the early
// "already taken" check (the store could not answer it), is dropped by
// Ingest's dedupe: its copy of the attachment is removed, the first stays.
func TestMailgunDuplicateForwardLeavesOnlyTheFirstCopy(t *testing.T) {
	for _, sk := range testStores {
		t.Run(sk.name, func(t *testing.T) {
			h, post := mailgunAttachment(t, takenUnknown{sk.open(t)})
			const msgID = "dup-media-1@mail.example.org"
			for i, token := range []string{"token-first-000000000000001", "token-other-route-000000002", "token-third-route-000000003"} {
				if code := post(token, msgID); code != http.StatusOK {
					t.Fatalf("delivery %d: %d", i+1, code)
				}
			}
			wantOneCopy(t, h, postedMailLink(t, h))
		})
	}
}

// When the store cannot tell whether it stored the forward (here it did,
// and answered an error it does not vouch for), the attachment is kept:
// BonyChat gets the mail and its link works. Mailgun's retry is then
// answered as taken, without another copy.
func TestMailgunForwardMaybeStoredKeepsItsMedia(t *testing.T) {
	for _, sk := range testStores {
		t.Run(sk.name, func(t *testing.T) {
			h, post := mailgunAttachment(t, unknownEnqueue{Store: sk.open(t), failsLeft: failFirst(1)})
			const token, msgID = "token-maybe-0000000000000001", "maybe-1@mail.example.org"
			if code := post(token, msgID); code != http.StatusServiceUnavailable {
				t.Fatalf("forward whose store answered an unknown error: %d, want 503", code)
			}
			if code := post(token, msgID); code != http.StatusOK {
				t.Fatalf("Mailgun's retry: %d", code)
			}
			wantOneCopy(t, h, postedMailLink(t, h))
		})
	}
}
