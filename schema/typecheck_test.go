package schema

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

// The type check runs on every /message: on a body without a mismatch it
// allocates nothing (paths are built only for a problem).
func TestTypeCheckAllocatesNothingOnValidBodies(t *testing.T) {
	for name, body := range map[string]string{
		"text":        `{"channelId":"demo","contactId":"+60177872890","message":{"type":"text","text":"hi"}}`,
		"quick_reply": `{"channelId":"demo","contactId":"+60177872890","message":{"type":"quick_reply","title":"t","replies":["a","b","c","d"]}}`,
	} {
		dec := json.NewDecoder(bytes.NewReader([]byte(body)))
		dec.UseNumber()
		var raw any
		if err := dec.Decode(&raw); err != nil {
			t.Fatal(err)
		}
		obj := raw.(map[string]any)
		typ := reflect.TypeFor[MessageRequest]()
		n := testing.AllocsPerRun(100, func() {
			if p := structTypeProblems("", obj, typ); len(p) > 0 {
				t.Fatal(p)
			}
		})
		if n > 0 {
			t.Errorf("%s: %v allocations for a body with no mismatch", name, n)
		}
	}
}

// The repeated-key check also runs on every /message: on a body without a
// repeat it is one scan, allocating nothing.
func TestDuplicateKeyCheckAllocatesNothingOnValidBodies(t *testing.T) {
	body := []byte(`{"channelId":"demo","contactId":"+60177872890","message":{"type":"quick_reply","title":"a \"b\": c","replies":["a","b"]}}`)
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var raw any
	if err := dec.Decode(&raw); err != nil {
		t.Fatal(err)
	}
	n := testing.AllocsPerRun(100, func() {
		if p := duplicateKeys(body, raw); len(p) > 0 {
			t.Fatal(p)
		}
	})
	if n > 0 {
		t.Errorf("%v allocations for a body without a repeated key", n)
	}
}
