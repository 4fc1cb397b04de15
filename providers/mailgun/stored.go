package mailgun

// A store(notify=…) route keeps the mail at Mailgun for up to three days
// and posts a notification whose attachments are a JSON list of URLs, not
// file parts. They are fetched here, with the API key, after the
// notification's signature and token were checked.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/bonychat/bonychat-adapter/providers"
)

// storedRetryWindow is how long (at most half the accepted signature age)
// after Mailgun first posted a store() notification an attachment that failed for a passing reason (storage
// down, a timeout) makes the whole notification fail with 503, so Mailgun
// posts it again: it keeps the mail for days and retries for hours. Past
// it, the mail is delivered without the attachment rather than risk
// losing all of it when Mailgun stops retrying.
const storedRetryWindow = time.Hour

// errStoredNotYet: a stored attachment could not be fetched for a passing
// reason; the handler answers 503.
var errStoredNotYet = errors.New("a stored attachment could not be fetched from Mailgun yet")

// fetchStored fetches the Body of every stored attachment of f, within
// what a forward may carry in all. One that cannot be fetched for a
// lasting reason (not Mailgun's storage, a 4xx, too large), or for a
// passing one once the notification is older than storedRetryWindow, gets
// a Problem (the agent is told it is missing) and the details are logged:
// the mail itself is still delivered. A passing failure of a younger
// notification is errStoredNotYet.
func (p *Provider) fetchStored(ctx context.Context, log *slog.Logger, f *Forward) error {
	budget := int64(maxForwardBytes)
	// Within the signature's accepted age too, or the retry is refused.
	window := min(storedRetryWindow, p.cfg.EffectiveSignatureMaxAge()/2)
	young := p.now().Sub(time.Unix(parseUnix(f.Timestamp), 0)) < window
	for i := range f.Attachments {
		a := &f.Attachments[i]
		if a.URL == "" || a.Body != nil || a.Problem != "" {
			continue
		}
		body, err := p.fetchStoredAttachment(ctx, a.URL, budget)
		if err != nil && young && !errors.Is(err, errStoredLasting) {
			return fmt.Errorf("%w: %q: %v", errStoredNotYet, a.FileName, err)
		}
		if err != nil {
			log.Warn("mailgun stored attachment not fetched; delivered without it", "message_id", f.MessageID,
				"attachment", a.FileName, "error", err.Error())
			a.Problem = "it could not be fetched from Mailgun"
			continue
		}
		budget -= int64(len(body))
		a.Body = body
	}
	return nil
}

// alreadyTaken reports whether the ingester took the mail with this dedupe
// key before (Mailgun's retry of a notification already stored), so that
// its stored attachments are not fetched again. No answer (an ingester that
// cannot tell, a store error) is a "no".
func (p *Provider) alreadyTaken(ctx context.Context, log *slog.Logger, dedupeKey string) bool {
	d, ok := p.deps.Ingest.(providers.InboundDedupe)
	if !ok {
		return false
	}
	taken, err := d.Taken(ctx, dedupeKey)
	if err != nil {
		log.Warn("cannot check for a redelivered mailgun forward", "error", err.Error())
	}
	return err == nil && taken
}

// errStoredLasting marks a fetch failure that no retry would mend.
var errStoredLasting = errors.New("lasting")

var errStoredTooLarge = fmt.Errorf("%w: the stored attachments are larger than a forward may carry", errStoredLasting)

func parseUnix(s string) int64 {
	n, _ := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	return n
}

func (p *Provider) fetchStoredAttachment(ctx context.Context, rawURL string, limit int64) ([]byte, error) {
	if !p.isStorageURL(rawURL) {
		return nil, fmt.Errorf("%w: not fetched: %q is not Mailgun's storage, and the API key goes nowhere else", errStoredLasting, hostOf(rawURL))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth("api", p.cfg.APIKey.Reveal())
	resp, err := p.sender.Client().Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		err := fmt.Errorf("Mailgun's storage answered %d", resp.StatusCode)
		if resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusRequestTimeout {
			err = fmt.Errorf("%w: %w", errStoredLasting, err) // gone (past its 3 days) or refused
		}
		return nil, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err == nil && int64(len(body)) > limit {
		err = errStoredTooLarge
	}
	return body, err
}

// isStorageURL reports whether the API key may be sent to u: https on
// mailgun.net (storage.mailgun.net, storage-us-east4.api.mailgun.net,
// se.api.mailgun.net, …) or the channel's own api_url host (a proxy, or a
// test server). The notification's body is not signed, so its URLs are
// not trusted further than that.
func (p *Provider) isStorageURL(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.User != nil || u.Host == "" {
		return false
	}
	host := strings.ToLower(u.Hostname())
	if u.Scheme == "https" && (u.Port() == "" || u.Port() == "443") &&
		(host == "mailgun.net" || strings.HasSuffix(host, ".mailgun.net")) {
		return true
	}
	api, err := url.Parse(p.cfg.apiBase())
	return err == nil && u.Scheme == api.Scheme && strings.EqualFold(u.Host, api.Host)
}

func hostOf(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Host
	}
	return raw
}
