package providers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
	"unicode"
)

// Fetch limits used when FetchConfig leaves a field zero.
const (
	defaultFetchMaxBytes     = 20 << 20
	defaultFetchTimeout      = 30 * time.Second
	defaultFetchMaxRedirects = 5

	// Per-step bounds, each also capped by the whole fetch's Timeout: a host
	// that takes longer than this to connect, shake hands or start answering
	// is not going to deliver a file in time anyway.
	fetchDialTimeout      = 10 * time.Second
	fetchTLSTimeout       = 10 * time.Second
	fetchHeaderTimeout    = 20 * time.Second
	fetchMaxHeaderBytes   = 1 << 20
	fetchIdleConnLifetime = 90 * time.Second
)

var (
	// ErrFetchBlocked is a URL whose scheme or resolved address a fetch may
	// not reach (on the first request or on any redirect).
	ErrFetchBlocked = errors.New("fetch: destination not allowed")
	// ErrFetchTooLarge is a body over FetchConfig.MaxBytes.
	ErrFetchTooLarge = errors.New("fetch: larger than the size limit")
	// ErrFetchTooManyRedirects is a chain longer than FetchConfig.MaxRedirects.
	ErrFetchTooManyRedirects = errors.New("fetch: too many redirects")
)

// FetchStatusError is a final answer outside 2xx (after redirects).
type FetchStatusError struct {
	Status int
}

func (e *FetchStatusError) Error() string {
	return fmt.Sprintf("fetch: unexpected status %d %s", e.Status, http.StatusText(e.Status))
}

// FetchConfig bounds a fetch. Zero fields take the defaults noted.
type FetchConfig struct {
	MaxBytes     int64         // cap on the body (default 20 MiB when 0)
	Timeout      time.Duration // whole fetch, redirects and body included (default 30s when 0)
	MaxRedirects int           // default 5 when 0; negative follows none
	// AllowPrivateNetworks (media.allow_private_networks) lets a fetch reach
	// loopback, private, link-local and other non-public addresses.
	AllowPrivateNetworks bool
}

// withDefaults fills the zero fields.
func (c FetchConfig) withDefaults() FetchConfig {
	if c.MaxBytes <= 0 {
		c.MaxBytes = defaultFetchMaxBytes
	}
	if c.Timeout <= 0 {
		c.Timeout = defaultFetchTimeout
	}
	if c.MaxRedirects == 0 {
		c.MaxRedirects = defaultFetchMaxRedirects
	}
	c.MaxRedirects = max(c.MaxRedirects, 0)
	return c
}

// FetchRequest is one URL to download, with optional Basic auth credentials
// that are sent to the URL's own origin only, never to a redirect target.
type FetchRequest struct {
	URL      string
	Username string
	Password string
}

// Fetched is a downloaded body and what the response said about it.
type Fetched struct {
	Body []byte
	// ContentType is the media type ("image/jpeg", no parameters): the
	// response's, or sniffed from the body when absent or
	// application/octet-stream.
	ContentType string
	// FileName is the Content-Disposition filename, else the last segment of
	// the final URL's path; only a base name, possibly "".
	FileName string
	FinalURL string
}

// Fetcher downloads URLs that come from outside (provider webhooks, BonyChat
// messages) without letting them reach the adapter's own network: every
// connection, redirects included, is checked at dial time against the
// address actually connected to. Safe for concurrent use.
type Fetcher struct {
	cfg    FetchConfig
	client *http.Client
}

// NewFetcher builds a Fetcher with its own transport.
func NewFetcher(cfg FetchConfig) *Fetcher {
	f := &Fetcher{cfg: cfg.withDefaults()}
	f.client = &http.Client{
		Transport:     f.transport(),
		CheckRedirect: f.checkRedirect,
		Timeout:       f.cfg.Timeout,
	}
	return f
}

// transport dials through the address check. Proxy stays nil: a proxy taken
// from the environment would make the dial go to the proxy, not the target,
// and the check would be checking the wrong address.
func (f *Fetcher) transport() *http.Transport {
	d := &net.Dialer{Timeout: min(fetchDialTimeout, f.cfg.Timeout)}
	if !f.cfg.AllowPrivateNetworks {
		d.Control = refuseNonPublic
	}
	return &http.Transport{
		Proxy:                  nil,
		DialContext:            d.DialContext,
		ForceAttemptHTTP2:      true, // a custom DialContext turns HTTP/2 off otherwise
		TLSHandshakeTimeout:    min(fetchTLSTimeout, f.cfg.Timeout),
		ResponseHeaderTimeout:  min(fetchHeaderTimeout, f.cfg.Timeout),
		MaxResponseHeaderBytes: fetchMaxHeaderBytes,
		IdleConnTimeout:        fetchIdleConnLifetime,
	}
}

// refuseNonPublic is the dialer's Control: it runs after name resolution and
// before connect, on the very IP about to be dialed, so neither a DNS answer
// that changes between check and use nor a redirect can slip past it.
func refuseNonPublic(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: unparsable address %q", ErrFetchBlocked, address)
	}
	if !IsPublicIP(ap.Addr()) {
		return fmt.Errorf("%w: %s is not a public address", ErrFetchBlocked, ap.Addr())
	}
	return nil
}

// checkRedirect bounds the chain, re-checks the scheme and keeps the
// credentials to the original origin. Go itself keeps Authorization on a
// redirect to the same hostname on another port or to a subdomain, which is
// wider than "the host we were given the password for".
func (f *Fetcher) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) > f.cfg.MaxRedirects {
		return fmt.Errorf("%w: more than %d", ErrFetchTooManyRedirects, f.cfg.MaxRedirects)
	}
	if !fetchableScheme(req.URL.Scheme) {
		return fmt.Errorf("redirect to scheme %q: %w", req.URL.Scheme, ErrFetchBlocked)
	}
	if !sameOriginChain(via, req) {
		req.Header.Del("Authorization")
	}
	return nil
}

// sameOriginChain reports whether every hop so far, req included, stayed on
// the first request's origin; once a chain has left it, coming back does not
// earn the credentials again, since the stranger chose the way back.
func sameOriginChain(via []*http.Request, req *http.Request) bool {
	first := origin(via[0].URL)
	for _, r := range via[1:] {
		if origin(r.URL) != first {
			return false
		}
	}
	return origin(req.URL) == first
}

// origin is scheme://host:port with the default port made explicit.
func origin(u *url.URL) string {
	port := u.Port()
	switch {
	case port != "":
	case u.Scheme == "https":
		port = "443"
	default:
		port = "80"
	}
	return u.Scheme + "://" + net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}

// Fetch downloads r.URL within the configured limits.
func (f *Fetcher) Fetch(ctx context.Context, r FetchRequest) (*Fetched, error) {
	u, err := parseFetchURL(r.URL)
	if err != nil {
		return nil, err
	}
	// The client's Timeout bounds the same; the context also carries any
	// caller deadline that is shorter.
	ctx, cancel := context.WithTimeout(ctx, f.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", safeURL(u), err)
	}
	if r.Username != "" || r.Password != "" {
		req.SetBasicAuth(r.Username, r.Password)
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, scrub(err)
	}
	defer resp.Body.Close()
	return f.read(resp)
}

// read checks the final response and takes its body within MaxBytes.
func (f *Fetcher) read(resp *http.Response) (*Fetched, error) {
	final := resp.Request.URL
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, fmt.Errorf("fetch %s: %w", safeURL(final), &FetchStatusError{Status: resp.StatusCode})
	}
	if resp.ContentLength > f.cfg.MaxBytes {
		return nil, fmt.Errorf("fetch %s: %w (Content-Length %d, limit %d)",
			safeURL(final), ErrFetchTooLarge, resp.ContentLength, f.cfg.MaxBytes)
	}
	// One byte over the limit is enough to know; Content-Length may be
	// absent or wrong, and gzip may have been undone on the way.
	body, err := io.ReadAll(io.LimitReader(resp.Body, f.cfg.MaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("fetch %s: reading body: %w", safeURL(final), scrub(err))
	}
	if int64(len(body)) > f.cfg.MaxBytes {
		return nil, fmt.Errorf("fetch %s: %w (limit %d)", safeURL(final), ErrFetchTooLarge, f.cfg.MaxBytes)
	}
	return &Fetched{
		Body:        body,
		ContentType: contentType(resp.Header.Get("Content-Type"), body),
		FileName:    fileName(resp.Header.Get("Content-Disposition"), final),
		FinalURL:    final.Redacted(),
	}, nil
}

// parseFetchURL accepts absolute http(s) URLs without userinfo. Credentials
// belong in FetchRequest: in the URL they would follow a relative redirect
// to any path and show up wherever the URL is printed. url.Parse's own error
// quotes the whole input, password included, so only its cause is kept.
func parseFetchURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("fetch: invalid URL: %w", err)
	}
	if !fetchableScheme(u.Scheme) {
		return nil, fmt.Errorf("fetch %s: scheme %q: %w", safeURL(u), u.Scheme, ErrFetchBlocked)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("fetch %s: no host", safeURL(u))
	}
	if u.User != nil {
		return nil, fmt.Errorf("fetch %s: credentials in the URL; pass them in FetchRequest", safeURL(u))
	}
	return u, nil
}

// fetchableScheme: plain and TLS HTTP only (file:, ftp:, gopher: … never).
func fetchableScheme(s string) bool { return s == "http" || s == "https" }

// safeURL is the URL as errors show it: no userinfo and no query or
// fragment, which may carry a CDN signature or a token, since errors end up
// in logs.
func safeURL(u *url.URL) string {
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
}

// scrub rewrites the URL net/http puts in its *url.Error to safeURL's form.
func scrub(err error) error {
	var ue *url.Error
	if !errors.As(err, &ue) {
		return err
	}
	safe := "(unparsable URL)"
	if u, perr := url.Parse(ue.URL); perr == nil {
		safe = safeURL(u)
	}
	return &url.Error{Op: ue.Op, URL: safe, Err: ue.Err}
}

// contentType is the response's media type, or the body's sniffed one when
// the server gave none or only the generic application/octet-stream.
func contentType(header string, body []byte) string {
	mt, _, err := mime.ParseMediaType(header)
	if err != nil || mt == "application/octet-stream" {
		mt, _, _ = mime.ParseMediaType(http.DetectContentType(body))
	}
	return mt
}

// fileName takes Content-Disposition's filename (filename* decoded by
// mime), else the final URL's last path segment.
func fileName(disposition string, final *url.URL) string {
	if _, params, err := mime.ParseMediaType(disposition); err == nil {
		if name := baseName(params["filename"]); name != "" {
			return name
		}
	}
	return baseName(final.Path)
}

// baseName keeps the last element of a name a remote server chose, so a
// caller that stores it under that name cannot be walked out of its folder.
func baseName(name string) string {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.TrimSpace(name)
	if name == "." || name == ".." || strings.ContainsFunc(name, unicode.IsControl) {
		return ""
	}
	return name
}

// IsPublicIP reports whether ip is a globally reachable unicast address a
// fetch may connect to. IPv4-mapped IPv6 addresses are judged as the IPv4
// they map, and NAT64 and 6to4 addresses by the IPv4 they embed, since
// those reach that IPv4 host.
func IsPublicIP(ip netip.Addr) bool {
	// Prefix.Contains never matches a zoned address: drop the zone first.
	ip = ip.Unmap().WithZone("")
	if !ip.IsValid() {
		return false
	}
	if v4, ok := embeddedIPv4(ip); ok {
		return IsPublicIP(v4)
	}
	for _, p := range nonPublicPrefixes {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

var (
	nat64Prefix     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFourPrefix = netip.MustParsePrefix("2002::/16")
)

// embeddedIPv4 is the IPv4 address a NAT64 or 6to4 address stands for.
func embeddedIPv4(ip netip.Addr) (netip.Addr, bool) {
	b := ip.As16()
	switch {
	case nat64Prefix.Contains(ip):
		return netip.AddrFrom4([4]byte(b[12:16])), true
	case sixToFourPrefix.Contains(ip):
		return netip.AddrFrom4([4]byte(b[2:6])), true
	}
	return netip.Addr{}, false
}

// nonPublicPrefixes are what a fetch may not reach: this host, private and
// shared (CGNAT) networks, link-local (cloud metadata sits at
// 169.254.169.254), multicast and broadcast, and the ranges reserved for
// documentation, benchmarks or future use, where no real media host lives.
var nonPublicPrefixes = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network"; 0.0.0.0 reaches this host
	netip.MustParsePrefix("10.0.0.0/8"),      // RFC 1918
	netip.MustParsePrefix("100.64.0.0/10"),   // CGNAT shared space
	netip.MustParsePrefix("127.0.0.0/8"),     // loopback
	netip.MustParsePrefix("169.254.0.0/16"),  // link-local
	netip.MustParsePrefix("172.16.0.0/12"),   // RFC 1918
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),    // documentation
	netip.MustParsePrefix("192.88.99.0/24"),  // retired 6to4 relay anycast
	netip.MustParsePrefix("192.168.0.0/16"),  // RFC 1918
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"), // documentation
	netip.MustParsePrefix("203.0.113.0/24"),  // documentation
	netip.MustParsePrefix("224.0.0.0/4"),     // multicast
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, and 255.255.255.255
	netip.MustParsePrefix("::/96"),           // ::, ::1 and IPv4-compatible
	netip.MustParsePrefix("::ffff:0:0:0/96"), // IPv4-translated (SIIT: reaches the IPv4 it embeds)
	netip.MustParsePrefix("64:ff9b:1::/48"),  // local-use NAT64
	netip.MustParsePrefix("100::/64"),        // discard-only
	netip.MustParsePrefix("2001::/32"),       // Teredo (embeds an obscured IPv4)
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
	netip.MustParsePrefix("3fff::/20"),       // documentation
	netip.MustParsePrefix("fc00::/7"),        // unique local (ULA)
	netip.MustParsePrefix("fe80::/10"),       // link-local
	netip.MustParsePrefix("fec0::/10"),       // deprecated site-local
	netip.MustParsePrefix("ff00::/8"),        // multicast
}
