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
	"strings"

	"github.com/bonychat/bonychat-adapter/providers"
)

// fetchStored fetches the Body of every stored attachment of f, within
// what a forward may carry in all. One that cannot be fetched gets a
// Problem (the agent is told it is missing) and the details are logged:
// the mail itself is still delivered.
func (p *Provider) fetchStored(ctx context.Context, log *slog.Logger, f *Forward) {
	budget := int64(maxForwardBytes)
	for i := range f.Attachments {
		a := &f.Attachments[i]
		if a.URL == "" || a.Body != nil || a.Problem != "" {
			continue
		}
		body, err := p.fetchStoredAttachment(ctx, a.URL, budget)
		if err != nil {
			log.Warn("mailgun stored attachment not fetched; delivered without it", "message_id", f.MessageID,
				"attachment", a.FileName, "error", err.Error())
			a.Problem = "it could not be fetched from Mailgun"
			continue
		}
		budget -= int64(len(body))
		a.Body = body
	}
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

var errStoredTooLarge = errors.New("the stored attachments are larger than a forward may carry")

func (p *Provider) fetchStoredAttachment(ctx context.Context, rawURL string, limit int64) ([]byte, error) {
	if !p.isStorageURL(rawURL) {
		return nil, fmt.Errorf("not fetched: %q is not Mailgun's storage, and the API key goes nowhere else", hostOf(rawURL))
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
		return nil, fmt.Errorf("Mailgun's storage answered %d", resp.StatusCode)
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
