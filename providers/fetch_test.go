package providers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const testPassword = "hunter2-s3cret-pa55"

// pngBytes starts like a PNG, enough for http.DetectContentType.
var pngBytes = []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")

// loopbackFetcher is for tests of successful fetches: httptest servers
// listen on loopback, which the default configuration refuses.
func loopbackFetcher(cfg FetchConfig) *Fetcher {
	cfg.AllowPrivateNetworks = true
	return NewFetcher(cfg)
}

// serve starts an httptest server on 127.0.0.1 that closes with the test.
func serve(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return ts
}

// serveOn starts an httptest server on the given loopback address.
func serveOn(t *testing.T, addr string, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	ts := httptest.NewUnstartedServer(h)
	ts.Listener.Close()
	ts.Listener = ln
	ts.Start()
	t.Cleanup(ts.Close)
	return ts
}

// withHost is ts's URL with its IP replaced by host (same port).
func withHost(t *testing.T, ts *httptest.Server, host string) string {
	t.Helper()
	u, err := url.Parse(ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = net.JoinHostPort(host, u.Port())
	return u.String()
}

func TestFetchReturnsBodyTypeAndNameFromContentDisposition(t *testing.T) {
	ts := serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/JPEG; charset=binary")
		w.Header().Set("Content-Disposition", `attachment; filename="holiday photo.jpg"`)
		_, _ = w.Write([]byte("jpeg bytes"))
	})
	got, err := loopbackFetcher(FetchConfig{}).Fetch(t.Context(), FetchRequest{URL: ts.URL + "/media/ME123"})
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Body) != "jpeg bytes" || got.ContentType != "image/jpeg" || got.FileName != "holiday photo.jpg" {
		t.Fatalf("got body %q type %q name %q", got.Body, got.ContentType, got.FileName)
	}
	if got.FinalURL != ts.URL+"/media/ME123" {
		t.Fatalf("FinalURL = %q", got.FinalURL)
	}
}

func TestFetchDecodesRFC2231FileNameAndKeepsOnlyItsBase(t *testing.T) {
	for disposition, want := range map[string]string{
		`attachment; filename*=UTF-8''na%C3%AFve%20r%C3%A9sum%C3%A9.pdf`: "naïve résumé.pdf",
		`attachment; filename="../../etc/passwd"`:                        "passwd",
		`attachment; filename="..\\..\\boot.ini"`:                        "boot.ini",
		`attachment; filename=".."`:                                      "report.pdf", // falls back to the URL
	} {
		ts := serve(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Disposition", disposition)
			_, _ = w.Write([]byte("%PDF-1.4"))
		})
		got, err := loopbackFetcher(FetchConfig{}).Fetch(t.Context(), FetchRequest{URL: ts.URL + "/files/report.pdf"})
		if err != nil {
			t.Fatal(err)
		}
		if got.FileName != want {
			t.Errorf("Content-Disposition %s: FileName = %q, want %q", disposition, got.FileName, want)
		}
	}
}

func TestFetchTakesFileNameFromFinalURLPathAfterRedirect(t *testing.T) {
	ts := serve(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/Media/ME123" {
			http.Redirect(w, r, "/cdn/abc/voice%20note.ogg?sig=xyz", http.StatusFound)
			return
		}
		w.Header().Set("Content-Type", "audio/ogg")
		_, _ = w.Write([]byte("OggS"))
	})
	got, err := loopbackFetcher(FetchConfig{}).Fetch(t.Context(), FetchRequest{URL: ts.URL + "/Media/ME123"})
	if err != nil {
		t.Fatal(err)
	}
	if got.FileName != "voice note.ogg" || got.ContentType != "audio/ogg" {
		t.Fatalf("name %q type %q", got.FileName, got.ContentType)
	}
	if got.FinalURL != ts.URL+"/cdn/abc/voice%20note.ogg?sig=xyz" {
		t.Fatalf("FinalURL = %q", got.FinalURL)
	}
}

func TestFetchLeavesFileNameEmptyWithoutOne(t *testing.T) {
	ts := serve(t, func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("x")) })
	for _, path := range []string{"", "/", "/dir/"} {
		got, err := loopbackFetcher(FetchConfig{}).Fetch(t.Context(), FetchRequest{URL: ts.URL + path})
		if err != nil {
			t.Fatal(err)
		}
		if got.FileName != "" {
			t.Errorf("path %q: FileName = %q, want empty", path, got.FileName)
		}
	}
}

func TestFetchSniffsContentTypeWhenAbsentOrOctetStream(t *testing.T) {
	for _, header := range []string{"", "application/octet-stream", "not a media type;;"} {
		ts := serve(t, func(w http.ResponseWriter, r *http.Request) {
			if header == "" {
				w.Header()["Content-Type"] = nil // stops net/http from sniffing on the server side
			} else {
				w.Header().Set("Content-Type", header)
			}
			_, _ = w.Write(pngBytes)
		})
		got, err := loopbackFetcher(FetchConfig{}).Fetch(t.Context(), FetchRequest{URL: ts.URL})
		if err != nil {
			t.Fatal(err)
		}
		if got.ContentType != "image/png" {
			t.Errorf("header %q: ContentType = %q, want image/png", header, got.ContentType)
		}
	}
}

func TestFetchSniffedTypeIsOnlyTheMediaType(t *testing.T) {
	ts := serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = nil
		_, _ = w.Write([]byte("plain words"))
	})
	got, err := loopbackFetcher(FetchConfig{}).Fetch(t.Context(), FetchRequest{URL: ts.URL})
	if err != nil {
		t.Fatal(err)
	}
	if got.ContentType != "text/plain" {
		t.Fatalf("ContentType = %q, want text/plain (no charset)", got.ContentType)
	}
}

// authRecorder is a handler that notes the Authorization header of each
// request it serves.
type authRecorder struct {
	mu   sync.Mutex
	seen []string
}

func (a *authRecorder) note(r *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.seen = append(a.seen, r.Header.Get("Authorization"))
}

func (a *authRecorder) got() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.seen...)
}

// TestFetchSendsBasicAuthOnlyToTheFirstHost plays Twilio: the media URL
// wants Basic auth and redirects to a CDN, which must not see it. Go's own
// client strips Authorization only when the hostname changes (port is
// ignored; subdomains keep it), so the same-hostname-other-port case is the
// one the Fetcher's own check is for.
func TestFetchSendsBasicAuthOnlyToTheFirstHost(t *testing.T) {
	cases := map[string]string{"other hostname": "localhost", "same hostname, other port": "127.0.0.1"}
	for name, cdnHost := range cases {
		t.Run(name, func(t *testing.T) {
			var api, cdn authRecorder
			cdnSrv := serve(t, func(w http.ResponseWriter, r *http.Request) {
				cdn.note(r)
				w.Header().Set("Content-Type", "image/jpeg")
				_, _ = w.Write([]byte("jpeg"))
			})
			apiSrv := serve(t, func(w http.ResponseWriter, r *http.Request) {
				api.note(r)
				if u, p, ok := r.BasicAuth(); !ok || u != "AC123" || p != testPassword {
					http.Error(w, "auth", http.StatusUnauthorized)
					return
				}
				http.Redirect(w, r, withHost(t, cdnSrv, cdnHost)+"/m/photo.jpg", http.StatusTemporaryRedirect)
			})
			got, err := loopbackFetcher(FetchConfig{}).Fetch(t.Context(),
				FetchRequest{URL: apiSrv.URL + "/Media/ME1", Username: "AC123", Password: testPassword})
			if err != nil {
				t.Fatal(err)
			}
			if a := api.got(); len(a) != 1 || !strings.HasPrefix(a[0], "Basic ") {
				t.Fatalf("first host saw Authorization %q, want Basic credentials once", a)
			}
			if c := cdn.got(); len(c) != 1 || c[0] != "" {
				t.Fatalf("CDN saw Authorization %q, want none", c)
			}
			if string(got.Body) != "jpeg" || got.FileName != "photo.jpg" {
				t.Fatalf("got %q %q", got.Body, got.FileName)
			}
		})
	}
}

func TestFetchKeepsBasicAuthOnSameOriginRedirectButNotAfterLeaving(t *testing.T) {
	var first, other authRecorder
	var otherURL string
	firstSrv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		first.note(r)
		switch r.URL.Path {
		case "/a":
			http.Redirect(w, r, "/b", http.StatusFound) // same origin: keeps auth
		case "/b":
			http.Redirect(w, r, otherURL, http.StatusFound) // leaves
		default:
			_, _ = w.Write([]byte("done")) // back again: auth must stay off
		}
	})
	otherSrv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		other.note(r)
		http.Redirect(w, r, firstSrv.URL+"/c", http.StatusFound)
	})
	otherURL = otherSrv.URL
	_, err := loopbackFetcher(FetchConfig{}).Fetch(t.Context(),
		FetchRequest{URL: firstSrv.URL + "/a", Username: "u", Password: testPassword})
	if err != nil {
		t.Fatal(err)
	}
	f := first.got()
	if len(f) != 3 || f[0] == "" || f[1] == "" || f[2] != "" {
		t.Fatalf("first host saw Authorization %q, want set, set, empty", f)
	}
	if o := other.got(); len(o) != 1 || o[0] != "" {
		t.Fatalf("other host saw Authorization %q", o)
	}
}

// TestFetchRefusesNonPublicDestinationsByDefault: the refusal comes from the
// dial Control, before connect, so the servers that do exist never see a
// request and the unroutable ones never cost a timeout.
func TestFetchRefusesNonPublicDestinationsByDefault(t *testing.T) {
	var hits atomic.Int32
	count := func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }
	v4 := serve(t, count)
	v6 := serveOn(t, "[::1]:0", count)
	targets := []string{
		v4.URL,
		withHost(t, v4, "localhost"),
		v6.URL,
		withHost(t, v4, "0.0.0.0"),
		"http://169.254.169.254/latest/meta-data/",
		"http://10.0.0.1/",
		"http://[::ffff:127.0.0.1]" + strings.TrimPrefix(v4.URL, "http://127.0.0.1"),
		"https://100.64.0.1/",
		"http://[fd00::1]/",
	}
	f := NewFetcher(FetchConfig{Timeout: 2 * time.Second})
	for _, target := range targets {
		start := time.Now()
		_, err := f.Fetch(t.Context(), FetchRequest{URL: target, Username: "u", Password: testPassword})
		if !errors.Is(err, ErrFetchBlocked) {
			t.Errorf("%s: err = %v, want ErrFetchBlocked", target, err)
			continue
		}
		var ue *url.Error
		if !errors.As(err, &ue) {
			t.Errorf("%s: err %T is not net/http's *url.Error; errors.Is must see through it", target, err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("%s: refused after %v; the dial Control should refuse at once", target, d)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("loopback servers got %d requests, want 0", n)
	}
}

func TestDialControlRefusesNonPublicAddresses(t *testing.T) {
	for address, allowed := range map[string]bool{
		"93.184.215.14:443":           true,
		"[2606:4700:4700::1111]:80":   true,
		"127.0.0.1:80":                false,
		"[::1]:443":                   false,
		"[::ffff:127.0.0.1]:80":       false,
		"[::ffff:169.254.169.254]:80": false,
		"[fe80::1%eth0]:80":           false,
		"10.1.2.3:8080":               false,
		"0.0.0.0:80":                  false,
		"[64:ff9b::a00:1]:80":         false, // NAT64 for 10.0.0.1
		"not-an-address":              false,
		"example.com:80":              false, // Control only ever sees IPs; a name is not one
	} {
		err := refuseNonPublic("tcp", address, nil)
		if allowed && err != nil {
			t.Errorf("%s refused: %v", address, err)
		}
		if !allowed && !errors.Is(err, ErrFetchBlocked) {
			t.Errorf("%s: err = %v, want ErrFetchBlocked", address, err)
		}
	}
}

func TestIsPublicIP(t *testing.T) {
	for addr, want := range map[string]bool{
		"8.8.8.8":                  true,
		"1.1.1.1":                  true,
		"93.184.215.14":            true,
		"100.63.255.255":           true, // just below CGNAT
		"100.128.0.0":              true, // just above CGNAT
		"172.15.255.255":           true,
		"172.32.0.0":               true,
		"2606:4700:4700::1111":     true,
		"2a00:1450:4001:81c::200e": true,
		"64:ff9b::808:808":         true, // NAT64 for 8.8.8.8
		"2002:808:808::1":          true, // 6to4 for 8.8.8.8
		"::ffff:8.8.8.8":           true,

		"127.0.0.1":          false,
		"127.255.255.254":    false,
		"10.0.0.1":           false,
		"172.16.0.1":         false,
		"172.31.255.255":     false,
		"192.168.1.1":        false,
		"100.64.0.1":         false,
		"100.127.255.255":    false,
		"169.254.169.254":    false,
		"0.0.0.0":            false,
		"0.1.2.3":            false,
		"224.0.0.1":          false,
		"239.255.255.250":    false,
		"255.255.255.255":    false,
		"240.0.0.1":          false,
		"192.0.2.1":          false,
		"198.18.0.1":         false,
		"::":                 false,
		"::1":                false,
		"::7f00:1":           false, // IPv4-compatible 127.0.0.1
		"::ffff:127.0.0.1":   false,
		"::ffff:10.0.0.1":    false,
		"::ffff:169.254.1.1": false,
		"::ffff:100.64.0.1":  false,
		"::ffff:0.0.0.0":     false,
		"::ffff:0:7f00:1":    false, // IPv4-translated 127.0.0.1
		"::ffff:0:808:808":   false, // IPv4-translated, even of a public IPv4: no route but through a translator
		"fc00::1":            false,
		"fd12:3456::1":       false,
		"fe80::1":            false,
		"fe80::1%eth0":       false,
		"febf::1":            false,
		"fec0::1":            false,
		"ff02::1":            false,
		"2001:db8::1":        false,
		"2001:0:4136:e378::": false, // Teredo
		"64:ff9b::7f00:1":    false, // NAT64 for 127.0.0.1
		"64:ff9b::a9fe:a9fe": false, // NAT64 for 169.254.169.254
		"2002:a00:1::1":      false, // 6to4 for 10.0.0.1
		"2002:7f00:1::":      false, // 6to4 for 127.0.0.1
	} {
		if got := IsPublicIP(netip.MustParseAddr(addr)); got != want {
			t.Errorf("IsPublicIP(%s) = %v, want %v", addr, got, want)
		}
	}
	if IsPublicIP(netip.Addr{}) {
		t.Error("IsPublicIP(zero Addr) = true")
	}
}

func TestFetchRefusesNonHTTPSchemes(t *testing.T) {
	f := NewFetcher(FetchConfig{})
	for _, raw := range []string{"ftp://example.com/x", "file:///etc/passwd", "gopher://example.com/", "javascript:alert(1)", "data:text/plain,hi"} {
		if _, err := f.Fetch(t.Context(), FetchRequest{URL: raw}); !errors.Is(err, ErrFetchBlocked) {
			t.Errorf("%s: err = %v, want ErrFetchBlocked", raw, err)
		}
	}
}

func TestFetchRefusesRedirectToNonHTTPScheme(t *testing.T) {
	for _, target := range []string{"ftp://example.com/file", "file:///etc/passwd"} {
		ts := serve(t, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, target, http.StatusFound)
		})
		_, err := loopbackFetcher(FetchConfig{}).Fetch(t.Context(), FetchRequest{URL: ts.URL})
		if !errors.Is(err, ErrFetchBlocked) {
			t.Errorf("redirect to %s: err = %v, want ErrFetchBlocked", target, err)
		}
	}
}

func TestFetchRefusesURLWithoutHostOrWithCredentials(t *testing.T) {
	f := NewFetcher(FetchConfig{})
	for _, raw := range []string{"http:///path", "/relative/path", "http://AC1:" + testPassword + "@example.com/x"} {
		_, err := f.Fetch(t.Context(), FetchRequest{URL: raw})
		if err == nil {
			t.Errorf("%s: no error", raw)
		}
	}
}

// redirectChain serves /0 → /1 → … → /n and answers "end" at /n.
func redirectChain(t *testing.T, n int) *httptest.Server {
	return serve(t, func(w http.ResponseWriter, r *http.Request) {
		var i int
		_, _ = fmt.Sscanf(r.URL.Path, "/%d", &i)
		if i < n {
			http.Redirect(w, r, fmt.Sprintf("/%d", i+1), http.StatusFound)
			return
		}
		_, _ = w.Write([]byte("end"))
	})
}

func TestFetchFollowsUpToMaxRedirects(t *testing.T) {
	ts := redirectChain(t, 3)
	got, err := loopbackFetcher(FetchConfig{MaxRedirects: 3}).Fetch(t.Context(), FetchRequest{URL: ts.URL + "/0"})
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Body) != "end" || got.FinalURL != ts.URL+"/3" {
		t.Fatalf("got %q from %s", got.Body, got.FinalURL)
	}
}

func TestFetchRefusesTooManyRedirects(t *testing.T) {
	ts := redirectChain(t, 4)
	_, err := loopbackFetcher(FetchConfig{MaxRedirects: 3}).Fetch(t.Context(), FetchRequest{URL: ts.URL + "/0"})
	if !errors.Is(err, ErrFetchTooManyRedirects) {
		t.Fatalf("err = %v, want ErrFetchTooManyRedirects", err)
	}
	// The default is 5: a chain of 6 fails, a negative setting follows none.
	if _, err := loopbackFetcher(FetchConfig{}).Fetch(t.Context(), FetchRequest{URL: redirectChain(t, 6).URL + "/0"}); !errors.Is(err, ErrFetchTooManyRedirects) {
		t.Fatalf("default, 6 redirects: err = %v", err)
	}
	if _, err := loopbackFetcher(FetchConfig{MaxRedirects: -1}).Fetch(t.Context(), FetchRequest{URL: redirectChain(t, 1).URL + "/0"}); !errors.Is(err, ErrFetchTooManyRedirects) {
		t.Fatalf("MaxRedirects -1, 1 redirect: err = %v", err)
	}
}

// TestFetchRefusesLargeContentLengthBeforeReading: the handler announces a
// big body and then stalls; only a refusal on the header returns at once.
func TestFetchRefusesLargeContentLengthBeforeReading(t *testing.T) {
	ts := serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1048576")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	start := time.Now()
	_, err := loopbackFetcher(FetchConfig{MaxBytes: 1024, Timeout: 5 * time.Second}).Fetch(t.Context(), FetchRequest{URL: ts.URL})
	if !errors.Is(err, ErrFetchTooLarge) {
		t.Fatalf("err = %v, want ErrFetchTooLarge", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("took %v: the body was waited for", d)
	}
}

func TestFetchRefusesStreamedBodyOverLimit(t *testing.T) {
	ts := serve(t, func(w http.ResponseWriter, r *http.Request) {
		for range 10 {
			_, _ = w.Write(bytes.Repeat([]byte("a"), 64))
			w.(http.Flusher).Flush() // no Content-Length: chunked
		}
	})
	_, err := loopbackFetcher(FetchConfig{MaxBytes: 100}).Fetch(t.Context(), FetchRequest{URL: ts.URL})
	if !errors.Is(err, ErrFetchTooLarge) {
		t.Fatalf("err = %v, want ErrFetchTooLarge", err)
	}
}

func TestFetchAcceptsBodyExactlyAtLimit(t *testing.T) {
	for _, chunked := range []bool{false, true} {
		ts := serve(t, func(w http.ResponseWriter, r *http.Request) {
			if chunked {
				w.(http.Flusher).Flush()
			}
			_, _ = w.Write(bytes.Repeat([]byte("a"), 100))
		})
		got, err := loopbackFetcher(FetchConfig{MaxBytes: 100}).Fetch(t.Context(), FetchRequest{URL: ts.URL})
		if err != nil || len(got.Body) != 100 {
			t.Fatalf("chunked=%v: err %v", chunked, err)
		}
	}
}

func TestFetchReturnsStatusErrorForNon2xx(t *testing.T) {
	for _, status := range []int{http.StatusNotFound, http.StatusUnauthorized, http.StatusInternalServerError, http.StatusNotModified} {
		ts := serve(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(status) })
		_, err := loopbackFetcher(FetchConfig{}).Fetch(t.Context(), FetchRequest{URL: ts.URL + "/x?token=abc"})
		var se *FetchStatusError
		if !errors.As(err, &se) || se.Status != status {
			t.Errorf("status %d: err = %v, want FetchStatusError", status, err)
		}
		if err != nil && strings.Contains(err.Error(), "token=abc") {
			t.Errorf("status %d: error %q shows the query", status, err)
		}
	}
}

func TestFetchTimesOutOnSlowHeadersAndSlowBody(t *testing.T) {
	slow := map[string]http.HandlerFunc{
		"headers": func(w http.ResponseWriter, r *http.Request) {
			<-r.Context().Done()
		},
		"body": func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte("first bytes"))
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		},
	}
	for name, h := range slow {
		ts := serve(t, h)
		start := time.Now()
		_, err := loopbackFetcher(FetchConfig{Timeout: 200 * time.Millisecond}).Fetch(t.Context(), FetchRequest{URL: ts.URL})
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("slow %s: err = %v, want a timeout", name, err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("slow %s: took %v with a 200ms timeout", name, d)
		}
	}
}

func TestFetchHonoursCallerCancellation(t *testing.T) {
	ts := serve(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := loopbackFetcher(FetchConfig{}).Fetch(ctx, FetchRequest{URL: ts.URL})
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Fatalf("err = %v after %v", err, time.Since(start))
	}
}

// TestFetchErrorsNeverContainThePassword walks every way a fetch with
// credentials can fail and looks for the password in the message.
func TestFetchErrorsNeverContainThePassword(t *testing.T) {
	status := serve(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusForbidden) })
	stall := serve(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	loop := serve(t, func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, r.URL.Path, http.StatusFound) })
	toFile := serve(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "file:///etc/passwd", http.StatusFound)
	})
	big := serve(t, func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(make([]byte, 2048)) })

	open := loopbackFetcher(FetchConfig{MaxBytes: 1024, Timeout: 200 * time.Millisecond})
	closed := NewFetcher(FetchConfig{Timeout: 200 * time.Millisecond})
	cases := []struct {
		f   *Fetcher
		url string
	}{
		{closed, status.URL},
		{closed, "http://10.0.0.1/"},
		{open, status.URL},
		{open, stall.URL},
		{open, loop.URL},
		{open, toFile.URL},
		{open, big.URL},
		{open, "ftp://example.com/"},
		{open, "http://127.0.0.1:1/"}, // connection refused
		{open, "http://AC1:" + testPassword + "@127.0.0.1/"},
		{open, "http://AC1:" + testPassword + "@exa mple.com/"},
		{open, "http://AC1:" + testPassword + "@[::1/"},
	}
	for _, c := range cases {
		_, err := c.f.Fetch(t.Context(), FetchRequest{URL: c.url, Username: "AC1", Password: testPassword})
		if err == nil {
			t.Errorf("%s: no error", c.url)
			continue
		}
		if strings.Contains(err.Error(), testPassword) {
			t.Errorf("error shows the password: %v", err)
		}
	}
}

func TestNewFetcherFillsDefaultsAndIgnoresEnvironmentProxy(t *testing.T) {
	f := NewFetcher(FetchConfig{})
	want := FetchConfig{MaxBytes: 20 << 20, Timeout: 30 * time.Second, MaxRedirects: 5}
	if f.cfg != want {
		t.Fatalf("cfg = %+v, want %+v", f.cfg, want)
	}
	tr := f.client.Transport.(*http.Transport)
	if tr.Proxy != nil {
		t.Fatal("transport takes a proxy: the dial check would see the proxy, not the target")
	}
	if tr.TLSHandshakeTimeout <= 0 || tr.ResponseHeaderTimeout <= 0 || f.client.Timeout != want.Timeout {
		t.Fatalf("timeouts: TLS %v, headers %v, client %v", tr.TLSHandshakeTimeout, tr.ResponseHeaderTimeout, f.client.Timeout)
	}
}
