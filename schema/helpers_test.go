package schema_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/bonychat/bonychat-adapter/schema"
)

// Shared fixtures of the schema tests.
const (
	testChannelID = "demo"
	testContactID = "+60177872890"
)

// alphabet is one kind of character a limit is exercised with: what the
// protocol counts (one code point each) differs from bytes and UTF-16 units.
type alphabet struct {
	name string
	char string
}

// alphabets: 1-byte ASCII, 2-byte "é" (U+00E9), 3-byte "中" (U+4E2D) and the
// 4-byte astral "😀" (U+1F600, two UTF-16 units).
var alphabets = []alphabet{
	{"ascii", "a"},
	{"latin é (2 bytes)", "é"},
	{"cjk 中 (3 bytes)", "中"},
	{"astral 😀 (4 bytes, 2 UTF-16 units)", "😀"},
}

// rep returns n code points of char.
func rep(char string, n int) string { return strings.Repeat(char, n) }

// lim returns a pointer to a limit, as FieldError.Limit holds it.
func lim(n float64) *float64 { return &n }

// want is the part of a FieldError a test asserts on: the JSON path, the
// rule and the limit (nil when the rule has none).
type want struct {
	Field string
	Rule  string
	Limit *float64
}

func (w want) String() string {
	if w.Limit == nil {
		return fmt.Sprintf("{%s %s}", w.Field, w.Rule)
	}
	return fmt.Sprintf("{%s %s %g}", w.Field, w.Rule, *w.Limit)
}

func wantsOf(fields []schema.FieldError) []want {
	out := make([]want, len(fields))
	for i, f := range fields {
		out[i] = want{Field: f.Field, Rule: f.Rule, Limit: f.Limit}
	}
	return out
}

func sameWant(a, b want) bool {
	if a.Field != b.Field || a.Rule != b.Rule || (a.Limit == nil) != (b.Limit == nil) {
		return false
	}
	return a.Limit == nil || *a.Limit == *b.Limit
}

// assertFieldErrors checks that err is nil when wants is empty, and
// otherwise a *schema.ValidationError whose Fields are exactly wants (in any
// order), each with a message a person can read.
func assertFieldErrors(t *testing.T, err error, wants ...want) {
	t.Helper()
	if len(wants) == 0 {
		if err != nil {
			t.Fatalf("want valid, got error: %v", err)
		}
		return
	}
	var verr *schema.ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("want *schema.ValidationError with %v, got %T: %v", wants, err, err)
	}
	got := wantsOf(verr.Fields)
	if len(got) != len(wants) {
		t.Fatalf("want exactly %v, got %v", wants, got)
	}
	remaining := slices.Clone(got)
	for _, w := range wants {
		i := slices.IndexFunc(remaining, func(g want) bool { return sameWant(g, w) })
		if i < 0 {
			t.Fatalf("want exactly %v, got %v (missing %v)", wants, got, w)
		}
		remaining = slices.Delete(remaining, i, i+1)
	}
	for _, f := range verr.Fields {
		if strings.TrimSpace(f.Message) == "" {
			t.Errorf("field error %s/%s has no message", f.Field, f.Rule)
		}
	}
	if verr.Error() == "" {
		t.Error("ValidationError.Error() is empty")
	}
}

func requestBodyFor(t testing.TB, contactID string, message any) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"channelId": testChannelID, "contactId": contactID, "message": message})
	if err != nil {
		t.Fatalf("marshal body: %v", err)
	}
	return b
}

// decodeAndValidate runs a body through the /message pipeline of the schema
// package: strict decoding, then validation for the channel's ID type.
func decodeAndValidate(body []byte, idType schema.IDType) error {
	req, err := schema.DecodeMessageRequest(body)
	if err != nil {
		return err
	}
	return schema.ValidateMessageRequest(req, idType)
}

// msg is a shorthand for a message object in a request body.
type msg = map[string]any

// utf16Len is the number of UTF-16 code units of s, counted independently of
// the package under test.
func utf16Len(s string) int { return len(utf16.Encode([]rune(s))) }

// outputLength is the output measure of PROTOCOL.md, computed independently:
// the larger of code points and UTF-16 units.
func outputLength(s string) int { return max(utf8.RuneCountInString(s), utf16Len(s)) }

func ptr[T any](v T) *T { return &v }
