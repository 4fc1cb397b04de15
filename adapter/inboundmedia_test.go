package adapter

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

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

// givenUpEnqueue fails every Enqueue as the store itself does when the
// webhook's caller gave up (its context ended) before the store took the
// write: nothing stored, and the store says so (store.NotStored).
type givenUpEnqueue struct{ store.Store }

func (s givenUpEnqueue) Enqueue(ctx context.Context, jobs []store.NewJob, keys []store.Key) ([]int64, error) {
	done, cancel := context.WithCancel(ctx)
	cancel()
	return s.Store.Enqueue(done, jobs, keys)
}

// unknownEnqueue stores the events and then fails, as a COMMIT whose
// answer was lost although the transaction is on disk: an error no store
// vouches for.
type unknownEnqueue struct{ store.Store }

func (s unknownEnqueue) Enqueue(ctx context.Context, jobs []store.NewJob, keys []store.Key) ([]int64, error) {
	if _, err := s.Store.Enqueue(ctx, jobs, keys); err != nil {
		return nil, err
	}
	return nil, errors.New("store: sqlite: commit: disk I/O error")
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
		{"the caller gave up before the store took it", func(s store.Store) store.Store { return givenUpEnqueue{s} },
			http.StatusServiceUnavailable, false, false},
		{"stored, but the store's answer is an error it does not vouch for",
			func(s store.Store) store.Store { return unknownEnqueue{s} }, http.StatusServiceUnavailable, true, true},
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
