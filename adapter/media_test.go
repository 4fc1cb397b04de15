package adapter

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/bonychat/bonychat-adapter/schema"
	"github.com/bonychat/bonychat-adapter/store"
)

// mediaClock is a clock the test moves by hand.
type mediaClock struct {
	mu sync.Mutex
	t  time.Time
}

func newMediaClock() *mediaClock {
	return &mediaClock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *mediaClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *mediaClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// mediaHarness builds a server whose media live in a fresh temporary
// directory. The workers are not started, so nothing but the test touches
// the media store (the janitor would otherwise sweep it concurrently); with
// clock set, the media store reads the time from it.
func mediaHarness(t *testing.T, clock *mediaClock, mutate func(*Config)) *harness {
	t.Helper()
	dir := t.TempDir()
	h := buildHarness(t, store.NewMemory(), func(c *Config) {
		c.Media.Dir = dir
		if mutate != nil {
			mutate(c)
		}
	}, nil)
	if clock != nil {
		h.srv.media.now = clock.now
	}
	return h
}

// mediaSave stores body and returns the URL Save gave.
func mediaSave(t *testing.T, h *harness, name, contentType string, body []byte) string {
	t.Helper()
	u, err := h.srv.media.Save(context.Background(), name, contentType, body)
	if err != nil {
		t.Fatalf("Save(%q, %q): %v", name, contentType, err)
	}
	return u
}

var mediaURLPattern = regexp.MustCompile(`^/media/([0-9a-f]{32})/([^/]+)$`)

// mediaParts splits a URL from Save into the request path (still escaped),
// the ID and the (unescaped) file name, checking its shape on the way.
func mediaParts(t *testing.T, h *harness, raw string) (path, id, name string) {
	t.Helper()
	prefix := strings.TrimSuffix(h.cfg.PublicURL, "/")
	if !strings.HasPrefix(raw, prefix+"/media/") {
		t.Fatalf("media URL %q is not under public_url %q", raw, prefix)
	}
	path = strings.TrimPrefix(raw, prefix)
	m := mediaURLPattern.FindStringSubmatch(path)
	if m == nil {
		t.Fatalf("media URL path %q is not /media/<32 hex>/<file name>", path)
	}
	name, err := url.PathUnescape(m[2])
	if err != nil {
		t.Fatalf("media URL %q: bad escape in file name: %v", raw, err)
	}
	return path, m[1], name
}

// mediaGet fetches path through the contract-checked harness, with headers.
func mediaGet(h *harness, method, path string, header map[string]string) *httptest.ResponseRecorder {
	h.t.Helper()
	req := httptest.NewRequest(method, specHost+path, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return h.doRequest(req, nil)
}

// mediaExpectNotFound checks a 404 with the JSON error body and no file bytes.
func mediaExpectNotFound(t *testing.T, rec *httptest.ResponseRecorder, secret []byte) {
	t.Helper()
	if rec.Code != http.StatusNotFound {
		t.Fatalf("status %d, want 404; body %q", rec.Code, rec.Body.String())
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("404 Content-Type %q, want application/json", ct)
	}
	errorBody(t, rec)
	if len(secret) > 0 && bytes.Contains(rec.Body.Bytes(), secret) {
		t.Errorf("404 body leaks the file: %q", rec.Body.String())
	}
}

// mediaFiles lists the regular files under dir (relative paths).
func mediaFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// mediaStoredName saves a file and returns the name it was stored under,
// checking that the URL, the metadata and the GET all agree on it.
func mediaStoredName(t *testing.T, h *harness, name, contentType string) string {
	t.Helper()
	body := []byte("body of " + name)
	path, id, urlName := mediaParts(t, h, mediaSave(t, h, name, contentType, body))
	meta, err := h.st.GetMedia(context.Background(), id)
	if err != nil {
		t.Fatalf("GetMedia: %v", err)
	}
	if meta.FileName != urlName {
		t.Fatalf("metadata name %q, URL name %q", meta.FileName, urlName)
	}
	if strings.ContainsAny(meta.FileName, "/\x00") || meta.FileName == "" || meta.FileName == "." || meta.FileName == ".." {
		t.Fatalf("stored name %q is not a plain base name", meta.FileName)
	}
	// The contract checker's router (kin-openapi gorillamux) hands the
	// fileName parameter to the validator still percent-encoded, so a name
	// whose encoded form is over the spec's maxLength of 256 would be
	// reported as a spec violation although its decoded form is within it:
	// such names are checked through Save, the store and the disk only.
	if len(url.PathEscape(meta.FileName)) <= schema.MaxFileName {
		rec := h.do(http.MethodGet, path, "", "", nil)
		if rec.Code != http.StatusOK || !bytes.Equal(rec.Body.Bytes(), body) {
			t.Fatalf("GET %s: %d %q", path, rec.Code, rec.Body.String())
		}
	} else {
		onDisk, err := os.ReadFile(filepath.Join(h.cfg.Media.Dir, meta.Path))
		if err != nil || !bytes.Equal(onDisk, body) {
			t.Fatalf("file of %q: %q (%v)", meta.FileName, onDisk, err)
		}
	}
	return meta.FileName
}

func TestMediaSaveReturnsPublicURLWithRandomIDAndStoresFileAndMetadata(t *testing.T) {
	clock := newMediaClock()
	h := mediaHarness(t, clock, func(c *Config) {
		c.PublicURL = "https://adapter.example.test/" // trailing slash is not doubled
		c.Media.Retention = 48 * time.Hour
	})
	body := []byte("\x89PNG\r\n\x1a\n not really a png")
	raw := mediaSave(t, h, "photo.png", "image/png", body)

	want := regexp.MustCompile(`^https://adapter\.example\.test/media/[0-9a-f]{32}/photo\.png$`)
	if !want.MatchString(raw) {
		t.Fatalf("Save returned %q, want public_url + /media/<32 hex>/photo.png", raw)
	}
	_, id, _ := mediaParts(t, h, raw)
	if len(id) != 32 { // 32 hex characters = 128 bits
		t.Fatalf("ID %q has %d hex characters, want 32", id, len(id))
	}

	meta, err := h.st.GetMedia(context.Background(), id)
	if err != nil {
		t.Fatalf("metadata not in store: %v", err)
	}
	if meta.ID != id || meta.FileName != "photo.png" || meta.ContentType != "image/png" || meta.Size != int64(len(body)) {
		t.Errorf("metadata %+v", meta)
	}
	if !meta.CreatedAt.Equal(clock.now()) || !meta.Expires.Equal(clock.now().Add(48*time.Hour)) {
		t.Errorf("metadata times created %v expires %v, want %v and +48h", meta.CreatedAt, meta.Expires, clock.now())
	}
	if filepath.IsAbs(meta.Path) || strings.Contains(meta.Path, "..") {
		t.Errorf("metadata path %q must be relative to media.dir", meta.Path)
	}
	onDisk, err := os.ReadFile(filepath.Join(h.cfg.Media.Dir, meta.Path))
	if err != nil {
		t.Fatalf("file not under media.dir: %v", err)
	}
	if !bytes.Equal(onDisk, body) {
		t.Errorf("file holds %q, want %q", onDisk, body)
	}
	if files := mediaFiles(t, h.cfg.Media.Dir); len(files) != 1 || files[0] != meta.Path {
		t.Errorf("media.dir holds %v, want only %s (no temporary files left)", files, meta.Path)
	}
}

func TestMediaThousandSavesGiveThousandDistinctIDs(t *testing.T) {
	h := mediaHarness(t, nil, nil)
	const workers, each = 10, 100
	var (
		mu  sync.Mutex
		ids = map[string]bool{}
		wg  sync.WaitGroup
	)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				raw, err := h.srv.media.Save(context.Background(), fmt.Sprintf("f%d-%d.txt", w, i), "text/plain", []byte{byte(i)})
				if err != nil {
					t.Errorf("Save: %v", err)
					return
				}
				path := strings.TrimPrefix(raw, h.cfg.PublicURL)
				m := mediaURLPattern.FindStringSubmatch(path)
				if m == nil {
					t.Errorf("URL %q has no 32-hex ID", raw)
					return
				}
				mu.Lock()
				ids[m[1]] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(ids) != workers*each {
		t.Fatalf("%d saves gave %d distinct IDs", workers*each, len(ids))
	}
	if n := len(mediaFiles(t, h.cfg.Media.Dir)); n != workers*each {
		t.Fatalf("%d files under media.dir, want %d", n, workers*each)
	}
	for id := range ids {
		if _, err := h.st.GetMedia(context.Background(), id); err != nil {
			t.Fatalf("metadata of %s: %v", id, err)
		}
	}
}

func TestMediaGetServesExactBytesWithStoredHeaders(t *testing.T) {
	h := mediaHarness(t, nil, nil)
	body := make([]byte, 256*4) // every byte value, including NUL and invalid UTF-8
	for i := range body {
		body[i] = byte(i)
	}
	// Files anyone could mail in that a browser would render as a page
	// (HTML, SVG, XML) are downloads; pictures, sound, video, text and PDF
	// are shown.
	cases := []struct{ name, contentType, disposition string }{
		{"photo.png", "image/png", "inline"},
		{"my photo (1).jpg", "image/jpeg", "inline"},
		{"façade 😀.jpg", "image/jpeg", "inline"},
		{`quote"semi;colon.pdf`, "application/pdf", "inline"},
		{"page.html", "text/html; charset=utf-8", "attachment"},
		{"drawing.svg", "image/svg+xml", "attachment"},
		{"data.xml", "application/xml", "attachment"},
		{"archive.zip", "application/zip", "attachment"},
		{"日本語のファイル名.txt", "text/plain; charset=utf-8", "inline"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path, _, name := mediaParts(t, h, mediaSave(t, h, tc.name, tc.contentType, body))
			if name != tc.name {
				t.Fatalf("stored as %q, want %q", name, tc.name)
			}
			rec := h.do(http.MethodGet, path, "", "", nil)
			if rec.Code != http.StatusOK {
				t.Fatalf("GET %s: %d %s", path, rec.Code, rec.Body.String())
			}
			if !bytes.Equal(rec.Body.Bytes(), body) {
				t.Fatalf("body differs: got %d bytes", rec.Body.Len())
			}
			hd := rec.Header()
			if got := hd.Get("Content-Type"); got != tc.contentType {
				t.Errorf("Content-Type %q, want the stored %q", got, tc.contentType)
			}
			if got := hd.Get("Content-Length"); got != strconv.Itoa(len(body)) {
				t.Errorf("Content-Length %q, want %d", got, len(body))
			}
			if got := hd.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options %q, want nosniff", got)
			}
			if got := hd.Get("Content-Security-Policy"); !strings.Contains(got, "sandbox") {
				t.Errorf("Content-Security-Policy %q, want sandbox (stored HTML must not run)", got)
			}
			if got := hd.Get("Accept-Ranges"); got != "bytes" {
				t.Errorf("Accept-Ranges %q, want bytes", got)
			}
			cd := hd.Get("Content-Disposition")
			disp, params, err := mime.ParseMediaType(cd)
			if err != nil {
				t.Fatalf("Content-Disposition %q does not parse: %v", cd, err)
			}
			if disp != tc.disposition || params["filename"] != tc.name {
				t.Errorf("Content-Disposition %q parses to %q %v, want %s with filename %q", cd, disp, params, tc.disposition, tc.name)
			}
			if !mediaIsASCII(tc.name) && !strings.Contains(cd, "filename*=utf-8''") {
				t.Errorf("Content-Disposition %q: a non-ASCII name must use RFC 2231 filename*", cd)
			}
			if !mediaIsASCII(cd) {
				t.Errorf("Content-Disposition %q is not ASCII", cd)
			}
		})
	}
}

func mediaIsASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func TestMediaGetNonASCIIFileNameUsesRFC2231Encoding(t *testing.T) {
	h := mediaHarness(t, nil, nil)
	const name = "façade 😀.jpg"
	raw := mediaSave(t, h, name, "image/jpeg", []byte("jpeg bytes"))
	if !strings.HasSuffix(raw, "/fa%C3%A7ade%20%F0%9F%98%80.jpg") {
		t.Errorf("URL %q does not end in the percent-encoded name", raw)
	}
	path, _, _ := mediaParts(t, h, raw)
	rec := h.do(http.MethodGet, path, "", "", nil)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET: %d %s", rec.Code, rec.Body.String())
	}
	cd := rec.Header().Get("Content-Disposition")
	if want := mime.FormatMediaType("inline", map[string]string{"filename": name}); cd != want {
		t.Errorf("Content-Disposition %q, want %q", cd, want)
	}
	if want := "inline; filename*=utf-8''fa%C3%A7ade%20%F0%9F%98%80.jpg"; cd != want {
		t.Errorf("Content-Disposition %q, want %q", cd, want)
	}
	_, params, err := mime.ParseMediaType(cd)
	if err != nil || params["filename"] != name {
		t.Errorf("Content-Disposition %q round-trips to %v (%v), want %q", cd, params, err, name)
	}
}

func TestMediaGetIsServedWithoutToken(t *testing.T) {
	// The full server, workers running: media links carry no credentials.
	h := newHarness(t, func(c *Config) { c.Media.Dir = t.TempDir() })
	body := []byte("opened by a browser")
	path, _, _ := mediaParts(t, h, mediaSave(t, h, "note.txt", "text/plain", body))
	for _, token := range []string{"", "wrong-token-0000000000000", demoToken} {
		rec := h.do(http.MethodGet, path, token, "", nil)
		if rec.Code != http.StatusOK || !bytes.Equal(rec.Body.Bytes(), body) {
			t.Errorf("token %q: %d %q, want 200 with the file", token, rec.Code, rec.Body.String())
		}
	}
}

func TestMediaRangeRequests(t *testing.T) {
	h := mediaHarness(t, nil, nil)
	body := []byte("0123456789")
	path, _, _ := mediaParts(t, h, mediaSave(t, h, "digits.bin", "application/octet-stream", body))

	for _, tc := range []struct {
		rng, want, contentRange string
	}{
		{"bytes=0-3", "0123", "bytes 0-3/10"},
		{"bytes=-3", "789", "bytes 7-9/10"}, // suffix range
		{"bytes=6-", "6789", "bytes 6-9/10"},
		{"bytes=8-100", "89", "bytes 8-9/10"}, // end past the file is clamped
		{"bytes=-100", "0123456789", "bytes 0-9/10"},
	} {
		t.Run(tc.rng, func(t *testing.T) {
			rec := mediaGet(h, http.MethodGet, path, map[string]string{"Range": tc.rng})
			if rec.Code != http.StatusPartialContent {
				t.Fatalf("status %d, want 206; body %q", rec.Code, rec.Body.String())
			}
			if rec.Body.String() != tc.want {
				t.Errorf("body %q, want %q", rec.Body.String(), tc.want)
			}
			if got := rec.Header().Get("Content-Range"); got != tc.contentRange {
				t.Errorf("Content-Range %q, want %q", got, tc.contentRange)
			}
			if got := rec.Header().Get("Content-Length"); got != strconv.Itoa(len(tc.want)) {
				t.Errorf("Content-Length %q, want %d", got, len(tc.want))
			}
			if got := rec.Header().Get("Content-Type"); got != "application/octet-stream" {
				t.Errorf("Content-Type %q, want the stored type", got)
			}
		})
	}

	t.Run("several ranges", func(t *testing.T) {
		rec := mediaGet(h, http.MethodGet, path, map[string]string{"Range": "bytes=0-1,5-6"})
		if rec.Code != http.StatusPartialContent {
			t.Fatalf("status %d, want 206", rec.Code)
		}
		mt, params, err := mime.ParseMediaType(rec.Header().Get("Content-Type"))
		if err != nil || mt != "multipart/byteranges" {
			t.Fatalf("Content-Type %q (%v), want multipart/byteranges", rec.Header().Get("Content-Type"), err)
		}
		r := multipart.NewReader(rec.Body, params["boundary"])
		var got []string
		for {
			p, err := r.NextPart()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, p.Header.Get("Content-Range")+"="+string(readAll(t, p)))
		}
		if want := []string{"bytes 0-1/10=01", "bytes 5-6/10=56"}; !slices.Equal(got, want) {
			t.Errorf("parts %q, want %q", got, want)
		}
	})

	for _, rng := range []string{"bytes=10-", "bytes=20-30"} {
		t.Run("unsatisfiable "+rng, func(t *testing.T) {
			rec := mediaGet(h, http.MethodGet, path, map[string]string{"Range": rng})
			if rec.Code != http.StatusRequestedRangeNotSatisfiable {
				t.Fatalf("status %d, want 416; body %q", rec.Code, rec.Body.String())
			}
			if got := rec.Header().Get("Content-Range"); got != "bytes */10" {
				t.Errorf("Content-Range %q, want bytes */10", got)
			}
			if bytes.Contains(rec.Body.Bytes(), body) {
				t.Errorf("416 body carries the file: %q", rec.Body.String())
			}
		})
	}
}

func TestMediaGetIs404ForUnknownMalformedOrRenamed(t *testing.T) {
	h := mediaHarness(t, nil, nil)
	body := []byte("secret bytes of the real file")
	var path, id, name string
	for { // an ID with a letter in it, so that upper-casing changes it
		path, id, name = mediaParts(t, h, mediaSave(t, h, "Photo.jpg", "image/jpeg", body))
		if strings.ContainsAny(id, "abcdef") {
			break
		}
	}
	if rec := h.do(http.MethodGet, path, "", "", nil); rec.Code != http.StatusOK {
		t.Fatalf("the real URL: %d", rec.Code)
	}
	unknown := "0123456789abcdef0123456789abcdef"
	if unknown == id {
		t.Fatal("unlucky: the random ID is the fixed unknown one")
	}
	for _, tc := range []struct{ why, path string }{
		{"unknown well-formed ID", "/media/" + unknown + "/" + name},
		{"encoded traversal as the ID", "/media/..%2F..%2Fetc%2Fpasswd/passwd"},
		{"lower-case encoded traversal", "/media/%2e%2e%2f%2e%2e%2fetc%2fpasswd/" + name},
		{"dot-dot ID", "/media/%2E%2E/" + name},
		{"traversal in the file name", "/media/" + id + "/..%2F..%2Fetc%2Fpasswd"},
		{"ID too short", "/media/" + id[:31] + "/" + name},
		{"ID too long", "/media/" + id + "0/" + name},
		{"upper-case hex ID", "/media/" + strings.ToUpper(id) + "/" + name},
		{"non-hex ID", "/media/" + strings.Repeat("g", 32) + "/" + name},
		{"stored path as the ID", "/media/" + id[:2] + "%2F" + id + "/" + name},
		{"different file name", "/media/" + id + "/other.jpg"},
		{"file name differs only in case", "/media/" + id + "/photo.jpg"},
		{"file name without extension", "/media/" + id + "/Photo"},
		{"no file name", "/media/" + id},
		{"empty file name", "/media/" + id + "/"},
	} {
		t.Run(tc.why, func(t *testing.T) {
			mediaExpectNotFound(t, h.do(http.MethodGet, tc.path, "", "", nil), body)
		})
	}
}

func TestMediaGetIs404OnceExpired(t *testing.T) {
	clock := newMediaClock()
	h := mediaHarness(t, clock, func(c *Config) { c.Media.Retention = time.Hour })
	body := []byte("short-lived")
	path, _, _ := mediaParts(t, h, mediaSave(t, h, "a.txt", "text/plain", body))

	clock.advance(time.Hour - time.Millisecond)
	if rec := h.do(http.MethodGet, path, "", "", nil); rec.Code != http.StatusOK {
		t.Fatalf("1ms before expiry: %d, want 200", rec.Code)
	}
	clock.advance(time.Millisecond)
	mediaExpectNotFound(t, h.do(http.MethodGet, path, "", "", nil), body)
	clock.advance(24 * time.Hour)
	mediaExpectNotFound(t, h.do(http.MethodGet, path, "", "", nil), body)
}

func TestMediaGetIs404AfterShortRetentionPasses(t *testing.T) {
	h := mediaHarness(t, nil, func(c *Config) { c.Media.Retention = time.Millisecond })
	body := []byte("gone soon")
	path, _, _ := mediaParts(t, h, mediaSave(t, h, "a.txt", "text/plain", body))
	time.Sleep(20 * time.Millisecond)
	mediaExpectNotFound(t, h.do(http.MethodGet, path, "", "", nil), body)
}

func TestMediaGetIs404WhenFileIsGoneFromDisk(t *testing.T) {
	h := mediaHarness(t, nil, nil)
	path, id, _ := mediaParts(t, h, mediaSave(t, h, "a.txt", "text/plain", []byte("deleted")))
	meta, err := h.st.GetMedia(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(h.cfg.Media.Dir, meta.Path)); err != nil {
		t.Fatal(err)
	}
	mediaExpectNotFound(t, h.do(http.MethodGet, path, "", "", nil), nil)
}

func TestMediaFileNameDropsPathParts(t *testing.T) {
	h := mediaHarness(t, nil, nil)
	for _, tc := range []struct{ in, want string }{
		{"../../x.png", "x.png"},
		{"a/b/c.pdf", "c.pdf"},
		{"/etc/passwd.txt", "passwd.txt"},
		{"dir/../../../../etc/shadow.txt", "shadow.txt"},
		{"trailing/slash.png/", "slash.png"},
		{"./x.png", "x.png"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			if got := mediaStoredName(t, h, tc.in, "image/png"); got != tc.want {
				t.Errorf("%q stored as %q, want %q", tc.in, got, tc.want)
			}
		})
	}
	// Nothing was written outside media.dir's own layout.
	for _, f := range mediaFiles(t, h.cfg.Media.Dir) {
		if !regexp.MustCompile(`^[0-9a-f]{2}/[0-9a-f]{32}$`).MatchString(filepath.ToSlash(f)) {
			t.Errorf("unexpected file %q under media.dir", f)
		}
	}
}

func TestMediaFileNameWithoutExtensionGetsOneFromContentType(t *testing.T) {
	h := mediaHarness(t, nil, nil)
	jpegFamily := []string{".jpg", ".jpeg", ".jpe", ".jfif", ".pjpeg", ".pjp"}

	got := mediaStoredName(t, h, "photo", "image/jpeg")
	ext := filepath.Ext(got)
	if strings.TrimSuffix(got, ext) != "photo" || !slices.Contains(jpegFamily, ext) {
		t.Errorf("photo (image/jpeg) stored as %q, want photo with a JPEG extension", got)
	}
	if ct := mime.TypeByExtension(ext); !strings.HasPrefix(ct, "image/jpeg") {
		t.Errorf("extension %q maps back to %q, want image/jpeg", ext, ct)
	}

	for _, tc := range []struct{ in, contentType, want string }{
		{"scan", "application/pdf", "scan.pdf"},
		{"shot", "image/png; foo=bar", "shot.png"},
		{"blob", "application/x-bonychat-unknown", "blob.bin"},
		{"blob", "", "blob.bin"},
		{"blob", "not a media type", "blob.bin"},
		{"keep.gif", "image/png", "keep.gif"}, // an extension is kept even when it does not fit
	} {
		if got := mediaStoredName(t, h, tc.in, tc.contentType); got != tc.want {
			t.Errorf("%q (%q) stored as %q, want %q", tc.in, tc.contentType, got, tc.want)
		}
	}
}

func TestMediaEmptyFileNameBecomesFileWithExtension(t *testing.T) {
	h := mediaHarness(t, nil, nil)
	for _, tc := range []struct{ in, contentType, want string }{
		{"", "image/png", "file.png"},
		{"", "application/pdf", "file.pdf"},
		{"", "application/x-bonychat-unknown", "file.bin"},
		{"/", "image/png", "file.png"},
		{".", "image/png", "file.png"},
		{"..", "image/png", "file.png"},
		{"../..", "image/png", "file.png"},
	} {
		if got := mediaStoredName(t, h, tc.in, tc.contentType); got != tc.want {
			t.Errorf("%q (%q) stored as %q, want %q", tc.in, tc.contentType, got, tc.want)
		}
	}
}

func TestMediaLongFileNameIsShortenedKeepingExtension(t *testing.T) {
	h := mediaHarness(t, nil, nil)
	for _, tc := range []struct{ why, in, contentType, ext string }{
		{"ASCII", strings.Repeat("a", 296) + ".pdf", "application/pdf", ".pdf"},
		{"accented", strings.Repeat("é", 296) + ".pdf", "application/pdf", ".pdf"},
		{"emoji", strings.Repeat("😀", 150) + ".png", "image/png", ".png"},
		{"no extension", strings.Repeat("b", 300), "image/png", ".png"},
	} {
		t.Run(tc.why, func(t *testing.T) {
			got := mediaStoredName(t, h, tc.in, tc.contentType)
			if n := schema.Length(got); n > schema.MaxFileName || n < schema.MaxFileName-1 {
				t.Errorf("stored name is %d long, want %d (or one less to keep a surrogate pair whole)", n, schema.MaxFileName)
			}
			if utf8.RuneCountInString(got) > 256 || !utf8.ValidString(got) {
				t.Errorf("stored name %q is not valid UTF-8 of at most 256 characters", got)
			}
			if !strings.HasSuffix(got, tc.ext) {
				t.Errorf("stored name %q lost its extension %s", got, tc.ext)
			}
			stem := strings.TrimSuffix(got, tc.ext)
			if !strings.HasPrefix(tc.in, stem) {
				t.Errorf("stored name %q is not a prefix of %q plus its extension", got, tc.in)
			}
		})
	}
	t.Run("at the limit is kept", func(t *testing.T) {
		in := strings.Repeat("c", 252) + ".pdf"
		if got := mediaStoredName(t, h, in, "application/pdf"); got != in {
			t.Errorf("256-character name changed to %q", got)
		}
	})
}

func TestMediaOverMaxBytesIsRefusedAndStoresNothing(t *testing.T) {
	clock := newMediaClock()
	h := mediaHarness(t, clock, func(c *Config) { c.Media.MaxBytes = 16 })
	ctx := context.Background()

	u, err := h.srv.media.Save(ctx, "big.bin", "application/octet-stream", make([]byte, 17))
	if err == nil {
		t.Fatalf("Save of 17 bytes over max_bytes 16 returned %q, want an error", u)
	}
	if u != "" {
		t.Errorf("failed Save returned URL %q", u)
	}
	if files := mediaFiles(t, h.cfg.Media.Dir); len(files) != 0 {
		t.Errorf("refused media left files %v", files)
	}
	expired, err := h.st.ExpiredMedia(ctx, clock.now().Add(100*365*24*time.Hour))
	if err != nil || len(expired) != 0 {
		t.Errorf("refused media left metadata %v (%v)", expired, err)
	}

	// Exactly max_bytes is still taken.
	path, _, _ := mediaParts(t, h, mediaSave(t, h, "fits.bin", "application/octet-stream", bytes.Repeat([]byte{7}, 16)))
	if rec := h.do(http.MethodGet, path, "", "", nil); rec.Code != http.StatusOK || rec.Body.Len() != 16 {
		t.Errorf("media of exactly max_bytes: %d, %d bytes", rec.Code, rec.Body.Len())
	}
}

func TestMediaSaveLeavesNoFileWhenMetadataCannotBeStored(t *testing.T) {
	h := mediaHarness(t, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the store refuses a done context
	if u, err := h.srv.media.Save(ctx, "a.txt", "text/plain", []byte("orphan")); err == nil {
		t.Fatalf("Save with a failing store returned %q, want an error", u)
	}
	if files := mediaFiles(t, h.cfg.Media.Dir); len(files) != 0 {
		t.Errorf("failed Save left files %v", files)
	}
}

func TestMediaSweepRemovesExpiredAndKeepsUnexpired(t *testing.T) {
	clock := newMediaClock()
	h := mediaHarness(t, clock, func(c *Config) { c.Media.Retention = time.Hour })
	ctx := context.Background()
	type item struct{ path, id, file string }
	save := func(name string) item {
		path, id, _ := mediaParts(t, h, mediaSave(t, h, name, "text/plain", []byte(name)))
		meta, err := h.st.GetMedia(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return item{path, id, filepath.Join(h.cfg.Media.Dir, meta.Path)}
	}
	exists := func(p string) bool {
		_, err := os.Stat(p)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
		return err == nil
	}

	old := save("old.txt")
	gone := save("gone.txt")
	clock.advance(30 * time.Minute)
	fresh := save("fresh.txt")
	clock.advance(30 * time.Minute) // old and gone expire exactly now; fresh in 30 minutes

	// A file already missing from disk does not stop the sweep.
	if err := os.Remove(gone.file); err != nil {
		t.Fatal(err)
	}
	if err := h.srv.media.sweep(ctx); err != nil {
		t.Fatalf("sweep: %v", err)
	}
	if exists(old.file) {
		t.Error("sweep kept the expired file")
	}
	for _, it := range []item{old, gone} {
		if _, err := h.st.GetMedia(ctx, it.id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("sweep kept the expired metadata of %s: %v", it.id, err)
		}
		mediaExpectNotFound(t, h.do(http.MethodGet, it.path, "", "", nil), nil)
	}
	if !exists(fresh.file) {
		t.Error("sweep removed the unexpired file")
	}
	if _, err := h.st.GetMedia(ctx, fresh.id); err != nil {
		t.Errorf("sweep removed unexpired metadata: %v", err)
	}
	if rec := h.do(http.MethodGet, fresh.path, "", "", nil); rec.Code != http.StatusOK || rec.Body.String() != "fresh.txt" {
		t.Errorf("unexpired media after sweep: %d %q", rec.Code, rec.Body.String())
	}

	// Sweeping again changes nothing; once fresh expires it goes too.
	if err := h.srv.media.sweep(ctx); err != nil {
		t.Fatalf("second sweep: %v", err)
	}
	if !exists(fresh.file) {
		t.Error("second sweep removed the unexpired file")
	}
	clock.advance(30 * time.Minute)
	if err := h.srv.media.sweep(ctx); err != nil {
		t.Fatalf("third sweep: %v", err)
	}
	if exists(fresh.file) {
		t.Error("sweep kept the file once it expired")
	}
	if files := mediaFiles(t, h.cfg.Media.Dir); len(files) != 0 {
		t.Errorf("files left after everything expired: %v", files)
	}
}

func TestMediaOtherMethodsAreNot5xxAndChangeNothing(t *testing.T) {
	h := mediaHarness(t, nil, nil)
	body := []byte("keep me")
	path, _, _ := mediaParts(t, h, mediaSave(t, h, "keep.txt", "text/plain", body))
	for _, method := range []string{http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions} {
		t.Run(method, func(t *testing.T) {
			rec := h.do(method, path, "", "text/plain", []byte("overwrite"))
			if rec.Code >= 500 {
				t.Fatalf("%s answered %d", method, rec.Code)
			}
			if method != http.MethodHead && rec.Code < 300 {
				t.Errorf("%s answered %d, want a refusal", method, rec.Code)
			}
		})
	}
	rec := h.do(http.MethodGet, path, "", "", nil)
	if rec.Code != http.StatusOK || !bytes.Equal(rec.Body.Bytes(), body) {
		t.Errorf("after other methods: %d %q", rec.Code, rec.Body.String())
	}
}

// A crash can leave media files that no metadata names (between writing a
// file and recording it, between forgetting one and removing it, or a
// temporary file cut short). At start-up the janitor removes them; it keeps
// recorded files, files not named as media files, and what this process
// stores meanwhile.
func TestStartUpRemovesMediaFilesACrashLeftUnrecorded(t *testing.T) {
	dir := t.TempDir()
	st := store.NewMemory()
	write := func(rel string) string {
		path := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte("x"), 0o640); err != nil {
			t.Fatal(err)
		}
		return rel
	}
	ids := make([]string, 3)
	for i := range ids {
		ids[i], _ = newMediaID()
	}
	recorded := write(filepath.Join(ids[0][:2], ids[0]))
	if err := st.PutMedia(context.Background(), store.Media{ID: ids[0], FileName: "a.txt", ContentType: "text/plain",
		Size: 1, Path: recorded, CreatedAt: time.Now(), Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	unrecorded := write(filepath.Join(ids[1][:2], ids[1]))
	cutShort := write(filepath.Join(ids[2][:2], ids[2]+".tmp"))
	notOurs := write("README.txt")
	misplaced := write(filepath.Join("zz", ids[1]))

	h := newHarnessOn(t, st, func(c *Config) { c.Media.Dir = dir }, nil)
	_, savedID, _ := mediaParts(t, h, mediaSave(t, h, "b.txt", "text/plain", []byte("b")))
	waitFor(t, func() bool {
		files := mediaFiles(t, dir)
		return !slices.Contains(files, unrecorded) && !slices.Contains(files, cutShort)
	})
	want := []string{recorded, notOurs, misplaced, filepath.Join(savedID[:2], savedID)}
	got := mediaFiles(t, dir)
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("media files after start-up %v, want %v", got, want)
	}
}

// The files a crash left are listed when the server is built, so a file
// saved before StartWorkers (an embedder serving Handler first), whose
// record is not written yet when the workers start, is never taken for one.
func TestMediaSavedBeforeStartWorkersIsKept(t *testing.T) {
	dir := t.TempDir()
	id, _ := newMediaID()
	left := filepath.Join(id[:2], id)
	if err := os.MkdirAll(filepath.Join(dir, id[:2]), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, left), []byte("x"), 0o640); err != nil {
		t.Fatal(err)
	}
	h := buildHarness(t, store.NewMemory(), func(c *Config) { c.Media.Dir = dir }, nil)
	// A save whose record is not yet written when the workers start: its
	// file alone, as Save leaves it between writing and recording.
	early, _ := newMediaID()
	earlyRel := filepath.Join(early[:2], early)
	if err := writeFileSync(filepath.Join(dir, earlyRel), []byte("y")); err != nil {
		t.Fatal(err)
	}
	stop, err := h.srv.StartWorkers()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	waitFor(t, func() bool { return !slices.Contains(mediaFiles(t, dir), left) })
	if !slices.Contains(mediaFiles(t, dir), earlyRel) {
		t.Errorf("a file written after the server was built was removed as a crash's: %v", mediaFiles(t, dir))
	}
}
