package schema_test

import (
	"errors"
	"reflect"
	"testing"

	"github.com/bonychat/bonychat-adapter/schema"
)

func TestDecodeMessageRequest_DecodesEveryMessageType(t *testing.T) {
	cases := []struct {
		name string
		body string
		want schema.MessageRequest
	}{
		{
			name: "text",
			body: `{"channelId":"demo","contactId":"+60177872890","message":{"type":"text","text":"Hi 😀"}}`,
			want: schema.MessageRequest{ChannelID: "demo", ContactID: "+60177872890", Message: schema.TextMessage("Hi 😀")},
		},
		{
			name: "attachment with every field",
			body: `{"channelId":"demo","contactId":"+60177872890","message":{"type":"attachment","attachment":` +
				`{"type":"image","url":"https://example.com/a.png","mimeType":"image/png","fileName":"a.png","description":"A"}}}`,
			want: schema.MessageRequest{ChannelID: "demo", ContactID: "+60177872890", Message: &schema.Message{
				Type: "attachment", Attachment: &schema.Attachment{Type: "image", URL: "https://example.com/a.png",
					MimeType: "image/png", FileName: "a.png", Description: "A"}}},
		},
		{
			name: "location at 0,0 keeps both coordinates present",
			body: `{"channelId":"demo","contactId":"+60177872890","message":{"type":"location","latitude":0,"longitude":0,"address":"Null Island"}}`,
			want: schema.MessageRequest{ChannelID: "demo", ContactID: "+60177872890", Message: &schema.Message{
				Type: "location", Latitude: ptr(0.0), Longitude: ptr(0.0), Address: ptr("Null Island")}},
		},
		{
			name: "quick reply",
			body: `{"channelId":"demo","contactId":"+60177872890","message":{"type":"quick_reply","title":"Pick","replies":["Yes","No"]}}`,
			want: schema.MessageRequest{ChannelID: "demo", ContactID: "+60177872890", Message: &schema.Message{
				Type: "quick_reply", Title: ptr("Pick"), Replies: []string{"Yes", "No"}}},
		},
		{
			name: "surrounding white space is accepted",
			body: " \n{\"channelId\":\"demo\",\"contactId\":\"+60177872890\",\"message\":{\"type\":\"text\",\"text\":\"x\"}}\n\t ",
			want: schema.MessageRequest{ChannelID: "demo", ContactID: "+60177872890", Message: schema.TextMessage("x")},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := schema.DecodeMessageRequest([]byte(tc.body))
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !reflect.DeepEqual(*got, tc.want) {
				t.Fatalf("decoded %+v (message %+v), want %+v (message %+v)", *got, got.Message, tc.want, tc.want.Message)
			}
			if err := schema.ValidateMessageRequest(got, schema.IDTypePhone); err != nil {
				t.Fatalf("decoded request is not valid: %v", err)
			}
		})
	}
}

func TestDecodeMessageRequest_RefusesUnknownFieldsWithTheirPath(t *testing.T) {
	cases := []struct {
		name  string
		body  string
		wants []want
	}{
		{"unknown top-level field",
			`{"channelId":"demo","contactId":"+60177872890","foo":1,"message":{"type":"text","text":"x"}}`,
			[]want{{"foo", "unknown_field", nil}}},
		{"unknown field in message",
			`{"channelId":"demo","contactId":"+60177872890","message":{"type":"text","text":"x","foo":true}}`,
			[]want{{"message.foo", "unknown_field", nil}}},
		{"unknown field in message.attachment",
			`{"channelId":"demo","contactId":"+60177872890","message":{"type":"attachment","attachment":{"type":"image","url":"https://example.com/a","foo":"bar"}}}`,
			[]want{{"message.attachment.foo", "unknown_field", nil}}},
		{"field names are case-sensitive",
			`{"channelId":"demo","contactId":"+60177872890","message":{"type":"text","Text":"x"}}`,
			[]want{{"message.Text", "unknown_field", nil}}},
		{"every unknown field is named",
			`{"channelId":"demo","contactId":"+60177872890","zz":1,"message":{"type":"text","text":"x","yy":2,"attachment":{"xx":3}}}`,
			[]want{{"zz", "unknown_field", nil}, {"message.yy", "unknown_field", nil}, {"message.attachment.xx", "unknown_field", nil}}},
		{"unknown field even when null",
			`{"channelId":"demo","contactId":"+60177872890","message":{"type":"text","text":"x","sticker":null}}`,
			[]want{{"message.sticker", "unknown_field", nil}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// The request comes with the error, to be validated too.
			req, err := schema.DecodeMessageRequest([]byte(tc.body))
			if req == nil || req.ChannelID != "demo" {
				t.Errorf("want the decoded request with the error, got %+v", req)
			}
			if errors.Is(err, schema.ErrMalformedJSON) {
				t.Fatalf("unknown fields are not malformed JSON: %v", err)
			}
			assertFieldErrors(t, err, tc.wants...)
		})
	}
}

func TestDecodeMessageRequest_RefusesWrongJSONTypes(t *testing.T) {
	cases := []struct {
		name string
		body string
		want want
	}{
		{"number for text", `{"channelId":"demo","contactId":"+60177872890","message":{"type":"text","text":5}}`,
			want{"message.text", "type", nil}},
		{"string for replies", `{"channelId":"demo","contactId":"+60177872890","message":{"type":"quick_reply","title":"t","replies":"a"}}`,
			want{"message.replies", "type", nil}},
		{"number inside replies", `{"channelId":"demo","contactId":"+60177872890","message":{"type":"quick_reply","title":"t","replies":[1]}}`,
			want{"message.replies[0]", "type", nil}},
		{"string for latitude", `{"channelId":"demo","contactId":"+60177872890","message":{"type":"location","latitude":"1","longitude":2}}`,
			want{"message.latitude", "type", nil}},
		{"number out of float range for longitude", `{"channelId":"demo","contactId":"+60177872890","message":{"type":"location","latitude":1,"longitude":1e400}}`,
			want{"message.longitude", "type", nil}},
		{"number for contactId", `{"channelId":"demo","contactId":60177872890,"message":{"type":"text","text":"x"}}`,
			want{"contactId", "type", nil}},
		{"string for message", `{"channelId":"demo","contactId":"+60177872890","message":"hello"}`,
			want{"message", "type", nil}},
		{"array for attachment", `{"channelId":"demo","contactId":"+60177872890","message":{"type":"attachment","attachment":[]}}`,
			want{"message.attachment", "type", nil}},
		{"boolean for attachment.url", `{"channelId":"demo","contactId":"+60177872890","message":{"type":"attachment","attachment":{"type":"image","url":true}}}`,
			want{"message.attachment.url", "type", nil}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := schema.DecodeMessageRequest([]byte(tc.body))
			if errors.Is(err, schema.ErrMalformedJSON) {
				t.Fatalf("a wrong type in valid JSON is not malformed JSON: %v", err)
			}
			assertFieldErrors(t, err, tc.want)
		})
	}
}

// Every wrong type is named, not only the first json.Unmarshal meets,
// with the unknown fields beside them.
func TestDecodeMessageRequest_NamesEveryWrongType(t *testing.T) {
	_, err := schema.DecodeMessageRequest([]byte(`{"channelId":"demo","contactId":"+60177872890","zz":1,` +
		`"message":{"type":"location","latitude":"3.1","longitude":"101.7"}}`))
	assertFieldErrors(t, err, want{"zz", "unknown_field", nil}, want{"message.latitude", "type", nil},
		want{"message.longitude", "type", nil})
}

func TestDecodeMessageRequest_RefusesMalformedJSON(t *testing.T) {
	cases := []struct {
		name string
		body string
	}{
		{"empty body", ""},
		{"white space only", " \n\t "},
		{"truncated object", `{"channelId":"demo","contactId":"+60177872890","message":{"type":"text"`},
		{"trailing comma", `{"channelId":"demo",}`},
		{"single quotes", `{'channelId':'demo'}`},
		{"top-level array", `[{"channelId":"demo","contactId":"+60177872890","message":{"type":"text","text":"x"}}]`},
		{"top-level string", `"hello"`},
		{"top-level number", `42`},
		{"top-level null", `null`},
		{"second object after the first", `{"channelId":"demo"}{"channelId":"other"}`},
		{"garbage after the object", `{"channelId":"demo","contactId":"+60177872890","message":{"type":"text","text":"x"}} trailing`},
		{"closing bracket after the object", `{"channelId":"demo"}]`},
		{"closing brace after the object", `{"channelId":"demo"}}`},
		{"byte order mark", "\xef\xbb\xbf{\"channelId\":\"demo\"}"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, err := schema.DecodeMessageRequest([]byte(tc.body))
			if !errors.Is(err, schema.ErrMalformedJSON) {
				t.Fatalf("want ErrMalformedJSON, got %T: %v", err, err)
			}
			var verr *schema.ValidationError
			if errors.As(err, &verr) {
				t.Fatalf("malformed JSON must not be a field error: %v", err)
			}
			if req != nil {
				t.Fatalf("want no request, got %+v", req)
			}
		})
	}
}

func TestPeekChannelID(t *testing.T) {
	cases := []struct {
		name      string
		body      string
		want      string
		malformed bool
	}{
		{name: "full body", body: `{"channelId":"demo","contactId":"+60177872890","message":{"type":"text","text":"x"}}`, want: "demo"},
		{name: "channelId alone", body: `{"channelId":"gfd8g7fd89dgfd"}`, want: "gfd8g7fd89dgfd"},
		{name: "unknown fields do not matter", body: `{"foo":1,"channelId":"demo"}`, want: "demo"},
		{name: "missing channelId", body: `{"contactId":"+60177872890"}`},
		{name: "number channelId", body: `{"channelId":5}`},
		{name: "null channelId", body: `{"channelId":null}`},
		{name: "object channelId", body: `{"channelId":{"id":"demo"}}`},
		{name: "array channelId", body: `{"channelId":["demo"]}`},
		{name: "key differing in case is not channelId", body: `{"ChannelID":"demo"}`},
		{name: "channelId nested in message is not the channel", body: `{"message":{"channelId":"demo"}}`},
		{name: "top-level array", body: `[{"channelId":"demo"}]`},
		{name: "top-level string", body: `"demo"`},
		{name: "garbage is malformed", body: `not json`, malformed: true},
		{name: "truncated body is malformed", body: `{"channelId":"de`, malformed: true},
		{name: "empty body is malformed", body: ``, malformed: true},
		{name: "data after the object is malformed", body: `{"channelId":"demo"}{"channelId":"other"}`, malformed: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := schema.PeekChannelID([]byte(tc.body))
			if got != tc.want {
				t.Errorf("PeekChannelID(%s) = %q, want %q", tc.body, got, tc.want)
			}
			if tc.malformed {
				if !errors.Is(err, schema.ErrMalformedJSON) {
					t.Fatalf("want ErrMalformedJSON, got %v", err)
				}
			} else if err != nil {
				t.Fatalf("want no error, got %v", err)
			}
		})
	}
}

// A key given twice in one object is refused and named (parsers disagree on
// which value wins); the same key in different objects is not a repeat.
func TestDecodeMessageRequest_RefusesARepeatedKey(t *testing.T) {
	const head = `{"channelId":"demo","contactId":"+60177872890",`
	cases := []struct {
		name  string
		body  string
		wants []want
	}{
		{"top-level key twice", head + `"contactId":"+60177872891","message":{"type":"text","text":"x"}}`,
			[]want{{"contactId", "duplicate", nil}}},
		{"message key twice", head + `"message":{"type":"text","text":"x","text":"y"}}`,
			[]want{{"message.text", "duplicate", nil}}},
		{"attachment key twice", head + `"message":{"type":"attachment","attachment":{"type":"image","url":"https://example.com/a","url":"https://example.com/b"}}}`,
			[]want{{"message.attachment.url", "duplicate", nil}}},
		{"a repeat spelled with an escape", head + `"message":{"type":"text","text":"x","t\u0065xt":"y"}}`,
			[]want{{"message.text", "duplicate", nil}}},
		{"a key three times is named once", head + `"message":{"type":"text","text":"x","text":"y","text":"z"}}`,
			[]want{{"message.text", "duplicate", nil}}},
		{"a repeated unknown key is named as unknown", head + `"message":{"type":"text","text":"x","foo":1,"foo":2}}`,
			[]want{{"message.foo", "unknown_field", nil}}},
		{"a repeated message object", head + `"message":{"type":"text","text":"x"},"message":{"type":"text","text":"y"}}`,
			[]want{{"message", "duplicate", nil}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := schema.DecodeMessageRequest([]byte(tc.body))
			assertFieldErrors(t, err, tc.wants...)
		})
	}
	for name, body := range map[string]string{
		"type in message and in attachment": head + `"message":{"type":"attachment","attachment":{"type":"image","url":"https://example.com/a"}}}`,
		"a key-like text value":             head + `"message":{"type":"text","text":"\"text\": x, \"type\" :"}}`,
	} {
		if _, err := schema.DecodeMessageRequest([]byte(body)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}
