package adapter

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/bonychat/bonychat-adapter/providers"
	"github.com/bonychat/bonychat-adapter/schema"
	"github.com/bonychat/bonychat-adapter/store"
)

// mediaStore keeps provider media BonyChat cannot open itself (Twilio media
// behind Basic auth, e-mail attachments) and serves it under an unguessable
// URL: the bytes in files under media.dir, the metadata in the store.
type mediaStore struct {
	cfg       MediaConfig
	publicURL string
	st        store.Store
	now       func() time.Time
}

var mediaIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

// Save implements providers.MediaSink: it stores body and returns the URL
// it is served at, valid for media.retention.
func (m *mediaStore) Save(ctx context.Context, fileName, contentType string, body []byte) (string, error) {
	if int64(len(body)) > m.cfg.MaxBytes {
		return "", fmt.Errorf("%w: %d bytes", providers.ErrMediaTooLarge, len(body))
	}
	id, err := newMediaID()
	if err != nil {
		return "", err
	}
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	fileName = m.fitName(id, mediaFileName(fileName, contentType))
	rel := filepath.Join(id[:2], id)
	if err := writeFileSync(filepath.Join(m.cfg.Dir, rel), body); err != nil {
		return "", fmt.Errorf("write media: %w", err)
	}
	now := m.now()
	meta := store.Media{ID: id, FileName: fileName, ContentType: contentType, Size: int64(len(body)), Path: rel,
		CreatedAt: now, Expires: now.Add(m.cfg.Retention)}
	if err := m.st.PutMedia(ctx, meta); err != nil {
		_ = os.Remove(filepath.Join(m.cfg.Dir, rel))
		return "", fmt.Errorf("record media: %w", err)
	}
	return m.mediaURL(id, fileName), nil
}

// discardWait bounds how long Discard waits for the store to take the
// forgetting of media: it runs before a webhook is answered, and the store
// may be why the message was not stored. (A write the SQLite writer took
// waits for its transaction: at worst the busy timeout more.)
const discardWait = 2 * time.Second

// Discard implements providers.MediaDiscarder: it removes media saved for
// an inbound message that was not stored, whose URLs nothing links to,
// whatever the state of ctx (a webhook whose caller gave up still cleans
// up). The file goes first, as that needs no store: a record left behind
// when the store cannot be written names a missing file, which /media
// answers 404 for and the sweep deletes at its expiry. A URL that is not
// one of this server's media links is refused, never followed.
func (m *mediaStore) Discard(ctx context.Context, urls []string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), discardWait)
	defer cancel()
	var errs error
	for _, u := range urls {
		id, ok := m.idOf(u)
		if !ok {
			errs = errors.Join(errs, errors.New("not a media link of this server; left alone"))
			continue
		}
		if err := os.Remove(storedFile{id: id}.path(m.cfg.Dir)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = errors.Join(errs, fmt.Errorf("remove media file: %w", err))
		}
		if err := m.st.DeleteMedia(ctx, id); err != nil {
			errs = errors.Join(errs, fmt.Errorf("forget media: %w", err))
		}
	}
	return errs
}

// idOf is the media ID in a URL Save returned.
func (m *mediaStore) idOf(u string) (string, bool) {
	rest, ok := strings.CutPrefix(u, m.publicURL+"/media/")
	id, _, _ := strings.Cut(rest, "/")
	return id, ok && mediaIDPattern.MatchString(id)
}

func (m *mediaStore) mediaURL(id, fileName string) string {
	return m.publicURL + "/media/" + id + "/" + url.PathEscape(fileName)
}

// fitName shortens a name (keeping its extension) until the escaped URL
// fits the protocol's URL limit; non-ASCII names grow when escaped.
func (m *mediaStore) fitName(id, name string) string {
	for limit := schema.Length(name); len(m.mediaURL(id, name)) > schema.MaxURL && limit > 8; limit = limit * 3 / 4 {
		name = schema.ShortenFileName(name, limit)
	}
	return name
}

// newMediaID returns 128 random bits as hex: unguessable, so the URL is
// the only key (as BonyChat needs a link it can open without auth).
func newMediaID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

// mediaFileName keeps a usable name: a given one without path parts or
// control characters, with an extension that fits the content type when it
// has none.
func mediaFileName(name, contentType string) string {
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return -1
		}
		return r
	}, strings.ToValidUTF8(name, ""))
	name = strings.TrimSpace(filepath.Base(filepath.Clean("/" + name)))
	name = strings.TrimRight(strings.TrimPrefix(name, "/"), ".")
	if name == "" || strings.HasPrefix(name, ".") {
		name = "file" + name
	}
	if len(filepath.Ext(name)) < 2 {
		name += extensionFor(contentType)
	}
	return schema.ShortenFileName(name, schema.MaxFileName)
}

// preferredExt overrides mime's alphabetical first pick (".jfif" for JPEG).
var preferredExt = map[string]string{"image/jpeg": ".jpg", "audio/mpeg": ".mp3", "video/mp4": ".mp4",
	"text/plain": ".txt", "audio/ogg": ".ogg", "video/quicktime": ".mov", "image/tiff": ".tif"}

func extensionFor(contentType string) string {
	mt, _, _ := mime.ParseMediaType(contentType)
	if ext, ok := preferredExt[mt]; ok {
		return ext
	}
	if exts, _ := mime.ExtensionsByType(mt); len(exts) > 0 {
		return exts[0]
	}
	return ".bin"
}

// writeFileSync writes body to path durably before the media record is
// stored: the file and then, after the rename, its folder and the folder
// above it (which MkdirAll may have just made), so that on a file system
// that does not make a rename durable with another file's fsync (btrfs),
// a power loss cannot leave a record whose file is only the .tmp that
// start-up removes.
func writeFileSync(path string, body []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	_, werr := f.Write(body)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return errors.Join(syncDir(filepath.Dir(path)), syncDir(filepath.Dir(filepath.Dir(path))))
}

// syncDir makes the entries of a folder (a rename, a new folder) durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

// handleMedia is GET /media/{id}/{fileName}: the file with its type, length
// and name, with range requests; 404 for unknown, expired or renamed.
func (m *mediaStore) handleMedia(c *gin.Context) {
	id, name := c.Param("id"), c.Param("fileName")
	meta, err := m.lookup(c.Request.Context(), id)
	if err != nil || meta.FileName != name {
		providers.WriteError(c.Writer, http.StatusNotFound, "no such media, or it has expired")
		return
	}
	f, err := os.Open(filepath.Join(m.cfg.Dir, meta.Path))
	if err != nil {
		providers.WriteError(c.Writer, http.StatusNotFound, "no such media, or it has expired")
		return
	}
	defer f.Close()
	h := c.Writer.Header()
	h.Set("Content-Type", meta.ContentType)
	h.Set("Content-Disposition", mime.FormatMediaType(disposition(meta.ContentType), map[string]string{"filename": meta.FileName}))
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "sandbox")
	h.Set("Cache-Control", "private, max-age=86400")
	http.ServeContent(c.Writer, c.Request, "", meta.CreatedAt, f)
}

// disposition is how a browser should treat a stored file: pictures,
// sound, video, plain text and PDF are shown; anything else (HTML, SVG,
// XML, archives) anyone could have mailed in is downloaded, never rendered
// on this server's origin, even with the sandbox CSP (a meta refresh or a
// phishing form would still show under this domain).
func disposition(contentType string) string {
	mediaType, _, _ := mime.ParseMediaType(contentType)
	switch {
	case mediaType == "image/svg+xml":
		return "attachment"
	case strings.HasPrefix(mediaType, "image/"), strings.HasPrefix(mediaType, "audio/"), strings.HasPrefix(mediaType, "video/"),
		mediaType == "text/plain", mediaType == "application/pdf":
		return "inline"
	}
	return "attachment"
}

func (m *mediaStore) lookup(ctx context.Context, id string) (store.Media, error) {
	if !mediaIDPattern.MatchString(id) {
		return store.Media{}, store.ErrNotFound
	}
	meta, err := m.st.GetMedia(ctx, id)
	if err == nil && !m.now().Before(meta.Expires) {
		return store.Media{}, store.ErrNotFound
	}
	return meta, err
}

// storedFile is a file under media.dir named as Save names them: the
// media ID, with tmp for a write not yet renamed into place.
type storedFile struct {
	id  string
	tmp bool
}

func (f storedFile) path(dir string) string {
	name := f.id
	if f.tmp {
		name += ".tmp"
	}
	return filepath.Join(dir, f.id[:2], name)
}

// listStoredFiles lists the files under media.dir named as Save names
// them. Run before the server takes requests, it lists no Save in progress.
func (m *mediaStore) listStoredFiles() ([]storedFile, error) {
	subdirs, err := os.ReadDir(m.cfg.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil // nothing stored yet
	}
	if err != nil {
		return nil, err
	}
	var files []storedFile
	for _, sub := range subdirs {
		if !sub.IsDir() {
			continue
		}
		entries, err := os.ReadDir(filepath.Join(m.cfg.Dir, sub.Name()))
		if err != nil {
			return files, err
		}
		for _, e := range entries {
			id, tmp := strings.CutSuffix(e.Name(), ".tmp")
			if e.Type().IsRegular() && mediaIDPattern.MatchString(id) && id[:2] == sub.Name() {
				files = append(files, storedFile{id: id, tmp: tmp})
			}
		}
	}
	return files, nil
}

// removeOrphans removes those of files (listed by listStoredFiles at
// start-up) that no metadata names: what a crash left between writing a
// file and recording it, or between forgetting a file and removing it, and
// temporary files a crash cut short. It returns how many it removed.
func (m *mediaStore) removeOrphans(ctx context.Context, files []storedFile) (int, error) {
	removed := 0
	for _, f := range files {
		if !f.tmp {
			_, err := m.st.GetMedia(ctx, f.id)
			if !errors.Is(err, store.ErrNotFound) {
				if err != nil {
					return removed, err
				}
				continue // recorded
			}
		}
		if err := os.Remove(f.path(m.cfg.Dir)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return removed, err
		}
		removed++
	}
	return removed, nil
}

// sweep deletes the files of expired media.
func (m *mediaStore) sweep(ctx context.Context) error {
	expired, err := m.st.ExpiredMedia(ctx, m.now())
	for _, e := range expired {
		if rerr := os.Remove(filepath.Join(m.cfg.Dir, e.Path)); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			err = errors.Join(err, rerr)
		}
	}
	return err
}
