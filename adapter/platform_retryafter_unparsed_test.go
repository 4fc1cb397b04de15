package adapter

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/bonychat/bonychat-adapter/schema"
)

// A Retry-After that providers.ParseRetryAfter does not read (a signed
// number, an RFC 1123 date in a zone other than GMT) counts as none for the
// quick-retry policy, but retryablehttp's DefaultBackoff (the fallback of
// retryAfterBackoff) parses it itself on 429/503 and sleeps that long inside
// the request, uncapped by the 2 s quick-retry limit and deaf to Stop
// (the Post context is WithoutCancel). The quick wait must stay short.
func TestAnUnparsedRetryAfterIsNotSleptInsideTheRequest(t *testing.T) {
	for name, value := range map[string]string{
		"signed seconds": "+3600",
		"UTC date":       time.Now().Add(time.Hour).UTC().Format("Mon, 02 Jan 2006 15:04:05") + " UTC",
	} {
		t.Run(name, func(t *testing.T) {
			c, f, target := testPlatformClient(t)
			f.header = http.Header{"Retry-After": {value}}
			f.script(503, 200)
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
			defer cancel()
			start := time.Now()
			err := c.Post(ctx, target, schema.WebhookPayload{ChannelID: "demo", ContactID: phoneContact, Events: textEvents(1, "ra")})
			if errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 3*time.Second {
				t.Fatalf("503 with Retry-After %q: Post = %v after %v; the quick retry slept BonyChat's unparsed Retry-After inside the request",
					value, err, time.Since(start))
			}
		})
	}
}
