package schema_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/bonychat/bonychat-adapter/schema"
)

// The samples under testdata/ are shared with the HTTP handler tests: every
// body names channel "demo" (a phone-number channel) and contact
// +60177872890.
const (
	messageValidDir   = "../testdata/message/valid"
	messageInvalidDir = "../testdata/message/invalid"
	webhookDir        = "../testdata/webhook"
	expectSuffix      = ".expect.json"
)

// sampleExpect is the first error an invalid sample must yield.
type sampleExpect struct {
	Status    int    `json:"status"`
	Field     string `json:"field"`
	Rule      string `json:"rule"`
	Malformed bool   `json:"malformed"`
}

// samples lists the *.json files of dir (without the .expect.json files),
// failing unless there are at least min of them so a test cannot pass on an
// empty folder.
func samples(t *testing.T, dir string, min int) []string {
	t.Helper()
	all, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range all {
		if !strings.HasSuffix(f, expectSuffix) {
			out = append(out, f)
		}
	}
	if len(out) < min {
		t.Fatalf("%s holds %d samples, want at least %d", dir, len(out), min)
	}
	return out
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sampleName(path string) string { return strings.TrimSuffix(filepath.Base(path), ".json") }

func TestTestdata_ValidMessagesPass(t *testing.T) {
	files := samples(t, messageValidDir, 10)
	for _, f := range files {
		t.Run(sampleName(f), func(t *testing.T) {
			body := readFile(t, f)
			req, err := schema.DecodeMessageRequest(body)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if err := schema.ValidateMessageRequest(req, schema.IDTypePhone); err != nil {
				t.Fatalf("validate: %v", err)
			}
			if req.ChannelID != testChannelID || req.ContactID != testContactID {
				t.Fatalf("sample names channel %q and contact %q, want %q and %q", req.ChannelID, req.ContactID, testChannelID, testContactID)
			}
			if id, err := schema.PeekChannelID(body); err != nil || id != testChannelID {
				t.Fatalf("PeekChannelID = %q, %v; want %q", id, err, testChannelID)
			}
		})
	}
	// The set covers every message type.
	types := map[string]bool{}
	for _, f := range files {
		if req, err := schema.DecodeMessageRequest(readFile(t, f)); err == nil {
			types[req.Message.Type] = true
		}
	}
	for _, typ := range []string{schema.TypeText, schema.TypeAttachment, schema.TypeLocation, schema.TypeQuickReply} {
		if !types[typ] {
			t.Errorf("no valid sample of message type %s", typ)
		}
	}
}

func TestTestdata_InvalidMessagesFailAsExpected(t *testing.T) {
	files := samples(t, messageInvalidDir, 12)
	rules := map[string]bool{}
	for _, f := range files {
		t.Run(sampleName(f), func(t *testing.T) {
			body := readFile(t, f)
			exp := readExpect(t, strings.TrimSuffix(f, ".json")+expectSuffix)
			rules[exp.Rule] = true
			if exp.Status != 400 {
				t.Fatalf("expected status %d; every invalid /message body is a 400", exp.Status)
			}
			err := decodeAndValidate(body, schema.IDTypePhone)
			if exp.Malformed {
				if !errors.Is(err, schema.ErrMalformedJSON) {
					t.Fatalf("want ErrMalformedJSON, got %v", err)
				}
				// A body that is not one JSON value names no channel: the
				// handler can answer 400 before authorizing.
				if _, perr := schema.PeekChannelID(body); !errors.Is(perr, schema.ErrMalformedJSON) {
					t.Fatalf("PeekChannelID: want ErrMalformedJSON, got %v", perr)
				}
				return
			}
			var verr *schema.ValidationError
			if !errors.As(err, &verr) || len(verr.Fields) == 0 {
				t.Fatalf("want a *schema.ValidationError naming %s/%s, got %v", exp.Field, exp.Rule, err)
			}
			if first := verr.Fields[0]; first.Field != exp.Field || first.Rule != exp.Rule {
				t.Fatalf("first error is %s/%s, want %s/%s (all: %v)", first.Field, first.Rule, exp.Field, exp.Rule, wantsOf(verr.Fields))
			}
			// The body must reach validation in the handler: it names the
			// demo channel.
			if id, perr := schema.PeekChannelID(body); perr != nil || id != testChannelID {
				t.Fatalf("PeekChannelID = %q, %v; want %q", id, perr, testChannelID)
			}
		})
	}
	for _, rule := range []string{"required", "min", "max", "oneof", "lte", "gte", "url", "extension",
		"not_allowed", "unknown_field", "type", "e164", "duplicate"} {
		if !rules[rule] {
			t.Errorf("no invalid sample for rule %s", rule)
		}
	}
}

// TestTestdata_EveryExpectHasASample guards against an .expect.json left
// behind by a renamed sample.
func TestTestdata_EveryExpectHasASample(t *testing.T) {
	expects, err := filepath.Glob(filepath.Join(messageInvalidDir, "*"+expectSuffix))
	if err != nil {
		t.Fatal(err)
	}
	if len(expects) < 12 {
		t.Fatalf("%d expect files, want at least 12", len(expects))
	}
	for _, e := range expects {
		t.Run(filepath.Base(e), func(t *testing.T) {
			if _, err := os.Stat(strings.TrimSuffix(e, expectSuffix) + ".json"); err != nil {
				t.Fatalf("no sample for %s: %v", e, err)
			}
		})
	}
}

func readExpect(t *testing.T, path string) sampleExpect {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(readFile(t, path)))
	dec.DisallowUnknownFields()
	var exp sampleExpect
	if err := dec.Decode(&exp); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if exp.Malformed == (exp.Field != "" || exp.Rule != "") {
		t.Fatalf("%s: want either malformed or a field and a rule, got %+v", path, exp)
	}
	if !exp.Malformed && (exp.Field == "" || exp.Rule == "") {
		t.Fatalf("%s: want both field and rule, got %+v", path, exp)
	}
	return exp
}

func TestTestdata_WebhookPayloadsPass(t *testing.T) {
	files := samples(t, webhookDir, 6)
	kinds := map[string]bool{}
	for _, f := range files {
		t.Run(sampleName(f), func(t *testing.T) {
			dec := json.NewDecoder(bytes.NewReader(readFile(t, f)))
			dec.DisallowUnknownFields()
			var p schema.WebhookPayload
			if err := dec.Decode(&p); err != nil {
				t.Fatalf("decode: %v", err)
			}
			if err := schema.ValidatePayload(&p, schema.IDTypePhone); err != nil {
				t.Fatalf("ValidatePayload: %v", err)
			}
			if p.ChannelID != testChannelID || p.ContactID != testContactID {
				t.Fatalf("sample names channel %q and contact %q, want %q and %q", p.ChannelID, p.ContactID, testChannelID, testContactID)
			}
			// A sample is what the server would post: fitting changes nothing.
			if fitted := schema.FitEvents(p.Events); !reflect.DeepEqual(fitted, p.Events) {
				t.Fatalf("FitEvents changes the sample's events:\n got %s\nwant %s", mustJSON(t, fitted), mustJSON(t, p.Events))
			}
			if fitted := schema.FitContact(p.Contact); !reflect.DeepEqual(fitted, p.Contact) {
				t.Fatalf("FitContact changes the sample's contact: %s", mustJSON(t, fitted))
			}
			for _, e := range p.Events {
				kind := e.Type
				switch {
				case e.Status != nil:
					kind += ":" + e.Status.Value
				case e.Message != nil:
					kind += ":" + e.Message.Type
				}
				kinds[kind] = true
			}
			if p.Contact != nil {
				kinds["contact"] = true
			}
		})
	}
	for _, kind := range []string{"message:text", "message_echo:text", "message:location", "message:attachment",
		"message_status:sent", "message_status:failed", "contact"} {
		if !kinds[kind] {
			t.Errorf("no webhook sample with %s", kind)
		}
	}
}
