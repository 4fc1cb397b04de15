package adapter

import (
	"net/http"
	"testing"
)

// The console route takes an empty "id" as absent (the server makes one)
// and a null "contact" as none, and openapi.yaml says so: h.do checks every
// exchange against it.
func TestConsoleInboundEmptyIDAndNullContactMatchTheContract(t *testing.T) {
	h := newHarness(t, nil)
	for _, body := range []string{
		`{"from":"+60177872890","text":"hi","id":""}`,
		`{"from":"+60177872890","text":"hi","contact":null}`,
	} {
		if rec := h.do("POST", "/console/demo/inbound", demoToken, "application/json", []byte(body)); rec.Code != http.StatusOK {
			t.Errorf("%s: %d %s, want 200 (null or empty taken as absent)", body, rec.Code, rec.Body)
		}
	}
}
