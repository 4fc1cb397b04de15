package adapter

import (
	"net/http"
	"testing"
)

// /message takes a null optional field (fileName, description, address) as
// absent, as an empty string is, and openapi.yaml says so: h.do checks the
// exchange against it. (A client that writes null for "none" is common;
// refusing it would refuse real messages.)
func TestMessageNullOptionalFieldsMatchTheContract(t *testing.T) {
	h := newHarness(t, nil)
	for _, body := range []string{
		`{"channelId":"demo","contactId":"+60177872890","message":{"type":"attachment","attachment":{"type":"image","url":"https://x.example/y.png","fileName":null}}}`,
		`{"channelId":"demo","contactId":"+60177872890","message":{"type":"attachment","attachment":{"type":"image","url":"https://x.example/y.png","description":null}}}`,
		`{"channelId":"demo","contactId":"+60177872890","message":{"type":"location","latitude":1,"longitude":2,"address":null}}`,
	} {
		if rec := h.do("POST", "/message", demoToken, "application/json", []byte(body)); rec.Code != http.StatusOK {
			t.Errorf("%s: %d %s, want 200 (null or empty taken as absent)", body, rec.Code, rec.Body)
		}
	}
}
