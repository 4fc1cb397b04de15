package providers

import (
	"context"
	"errors"
	"net"
	"net/http"
	"testing"
)

func TestSendRetryPolicyRetriesOnlyWhatWasNeverProcessed(t *testing.T) {
	dial := &net.OpError{Op: "dial", Err: errors.New("connection refused")}
	read := &net.OpError{Op: "read", Err: errors.New("connection reset")}
	cases := []struct {
		name string
		resp *http.Response
		err  error
		want bool
	}{
		{"429 was not processed", &http.Response{StatusCode: 429}, nil, true},
		{"failed dial never reached the provider", nil, dial, true},
		{"DNS failure never reached it", nil, &net.DNSError{Err: "no such host"}, true},
		{"503 may have been processed", &http.Response{StatusCode: 503}, nil, false},
		{"reset after writing may have been processed", nil, read, false},
		{"400 is final", &http.Response{StatusCode: 400}, nil, false},
	}
	for _, tc := range cases {
		got, _ := SendRetryPolicy(context.Background(), tc.resp, tc.err)
		if got != tc.want {
			t.Errorf("%s: retry = %v, want %v", tc.name, got, tc.want)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if retry, err := SendRetryPolicy(ctx, &http.Response{StatusCode: 429}, nil); retry || err == nil {
		t.Error("a cancelled context stops retries")
	}
}
