package schema_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/bonychat/bonychat-adapter/schema"
)

// limitCase is one /message body and the exact field errors it must yield
// (none: valid).
type limitCase struct {
	name      string
	idType    schema.IDType // zero: phone
	contactID string        // zero: testContactID
	message   any
	wants     []want
}

func runLimitCases(t *testing.T, cases []limitCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			idType := tc.idType
			if idType == "" {
				idType = schema.IDTypePhone
			}
			contactID := tc.contactID
			if contactID == "" {
				contactID = testContactID
			}
			err := decodeAndValidate(requestBodyFor(t, contactID, tc.message), idType)
			assertFieldErrors(t, err, tc.wants...)
		})
	}
}

// textMsg, imageMsg, … build message objects for request bodies.
func textMsg(text string) msg { return msg{"type": "text", "text": text} }

func attachmentMsg(att msg) msg { return msg{"type": "attachment", "attachment": att} }

func locationMsg(lat, lng any) msg { return msg{"type": "location", "latitude": lat, "longitude": lng} }

func quickReplyMsg(title string, replies []string) msg {
	return msg{"type": "quick_reply", "title": title, "replies": replies}
}

func replies(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("Option %d", i+1)
	}
	return out
}

const urlPrefix = "https://example.com/" // 20 code points

func TestValidateMessageRequest_TextLimit(t *testing.T) {
	cases := []limitCase{
		{name: "one character is valid", message: textMsg("a")},
		{name: "empty text is refused with min 1", message: textMsg(""), wants: []want{{"message.text", "min", lim(1)}}},
		{name: "missing text is refused as required", message: msg{"type": "text"}, wants: []want{{"message.text", "required", nil}}},
		{name: "null text is refused as required", message: msg{"type": "text", "text": nil}, wants: []want{{"message.text", "required", nil}}},
	}
	for _, a := range alphabets {
		cases = append(cases,
			limitCase{name: "7000 " + a.name + " code points are valid", message: textMsg(rep(a.char, schema.MaxText))},
			limitCase{name: "7001 " + a.name + " code points are refused with max 7000",
				message: textMsg(rep(a.char, schema.MaxText+1)), wants: []want{{"message.text", "max", lim(7000)}}},
		)
	}
	runLimitCases(t, cases)
}

func TestValidateMessageRequest_AttachmentURL(t *testing.T) {
	att := func(url string) msg { return attachmentMsg(msg{"type": "image", "url": url}) }
	cases := []limitCase{
		{name: "https URL is valid", message: att("https://example.com/a.png")},
		{name: "http URL is valid", message: att("http://example.com/a.png")},
		{name: "upper-case scheme is valid", message: att("HTTPS://example.com/a.png")},
		{name: "ftp URL is refused as url", message: att("ftp://x/y.png"), wants: []want{{"message.attachment.url", "url", nil}}},
		{name: "relative URL is refused as url", message: att("/relative"), wants: []want{{"message.attachment.url", "url", nil}}},
		{name: "https without host is refused as url", message: att("https://"), wants: []want{{"message.attachment.url", "url", nil}}},
		{name: "missing URL is refused as required", message: attachmentMsg(msg{"type": "image"}), wants: []want{{"message.attachment.url", "required", nil}}},
		{name: "attachment message without attachment is refused as required", message: msg{"type": "attachment"},
			wants: []want{{"message.attachment", "required", nil}}},
	}
	for _, a := range alphabets {
		cases = append(cases,
			limitCase{name: "2000 code points with " + a.name + " path is valid",
				message: att(urlPrefix + rep(a.char, schema.MaxURL-len(urlPrefix)))},
			limitCase{name: "2001 code points with " + a.name + " path is refused with max 2000",
				message: att(urlPrefix + rep(a.char, schema.MaxURL-len(urlPrefix)+1)),
				wants:   []want{{"message.attachment.url", "max", lim(2000)}}},
		)
	}
	runLimitCases(t, cases)
}

func TestValidateMessageRequest_AttachmentFileName(t *testing.T) {
	file := func(name string) msg {
		return attachmentMsg(msg{"type": "file", "url": "https://example.com/f", "fileName": name})
	}
	extension := []want{{"message.attachment.fileName", "extension", nil}}
	cases := []limitCase{
		{name: "a.pdf is valid", message: file("a.pdf")},
		{name: "file name is optional", message: attachmentMsg(msg{"type": "file", "url": "https://example.com/f"})},
		{name: "name with several dots is valid", message: file("report.2024.tar.gz")},
		{name: "extension of 10 alphanumerics is valid", message: file("a.abcde12345")},
		{name: "extension of 11 alphanumerics is refused", message: file("a.abcde123456"), wants: extension},
		{name: "name without extension is refused", message: file("report"), wants: extension},
		{name: "extension without name is refused", message: file(".pdf"), wants: extension},
		{name: "trailing dot is refused", message: file("report."), wants: extension},
		{name: "non-alphanumeric extension is refused", message: file("a.p-f"), wants: extension},
		{name: "astral extension is refused", message: file("a.😀"), wants: extension},
		{name: "line break in name is refused", message: file("a\nb.pdf"), wants: extension},
	}
	for _, a := range alphabets {
		cases = append(cases,
			limitCase{name: "256 code points including .pdf with " + a.name + " is valid",
				message: file(rep(a.char, schema.MaxFileName-4) + ".pdf")},
			limitCase{name: "257 code points including .pdf with " + a.name + " is refused with max 256",
				message: file(rep(a.char, schema.MaxFileName-3) + ".pdf"),
				wants:   []want{{"message.attachment.fileName", "max", lim(256)}}},
		)
	}
	runLimitCases(t, cases)
}

func TestValidateMessageRequest_AttachmentDescription(t *testing.T) {
	withDesc := func(typ, desc string) msg {
		return attachmentMsg(msg{"type": typ, "url": "https://example.com/a", "description": desc})
	}
	notAllowed := []want{{"message.attachment.description", "not_allowed", nil}}
	cases := []limitCase{
		{name: "image with description is valid", message: withDesc("image", "A receipt")},
		{name: "video with description is refused as not_allowed", message: withDesc("video", "A clip"), wants: notAllowed},
		{name: "audio with description is refused as not_allowed", message: withDesc("audio", "A song"), wants: notAllowed},
		{name: "file with description is refused as not_allowed", message: withDesc("file", "A doc"), wants: notAllowed},
		{name: "video with empty description is valid", message: withDesc("video", "")},
	}
	for _, a := range alphabets {
		cases = append(cases,
			limitCase{name: "256 " + a.name + " code points on an image are valid", message: withDesc("image", rep(a.char, schema.MaxDescription))},
			limitCase{name: "257 " + a.name + " code points on an image are refused with max 256",
				message: withDesc("image", rep(a.char, schema.MaxDescription+1)),
				wants:   []want{{"message.attachment.description", "max", lim(256)}}},
		)
	}
	runLimitCases(t, cases)
}

func TestValidateMessageRequest_AttachmentType(t *testing.T) {
	att := func(typ any) msg { return attachmentMsg(msg{"type": typ, "url": "https://example.com/a"}) }
	oneof := []want{{"message.attachment.type", "oneof", nil}}
	cases := []limitCase{
		{name: "image is valid", message: att("image")},
		{name: "video is valid", message: att("video")},
		{name: "audio is valid", message: att("audio")},
		{name: "file is valid", message: att("file")},
		{name: "sticker is refused as oneof", message: att("sticker"), wants: oneof},
		{name: "type is case-sensitive", message: att("IMAGE"), wants: oneof},
		{name: "missing type is refused as required", message: attachmentMsg(msg{"url": "https://example.com/a"}),
			wants: []want{{"message.attachment.type", "required", nil}}},
	}
	runLimitCases(t, cases)
}

func TestValidateMessageRequest_Location(t *testing.T) {
	lat, lng := "message.latitude", "message.longitude"
	cases := []limitCase{
		{name: "0,0 is valid (zero is not missing)", message: locationMsg(0, 0)},
		{name: "latitude 90 is valid", message: locationMsg(90, 0)},
		{name: "latitude -90 is valid", message: locationMsg(-90, 0)},
		{name: "latitude 90.0000001 is refused with lte 90", message: locationMsg(90.0000001, 0), wants: []want{{lat, "lte", lim(90)}}},
		{name: "latitude -90.0000001 is refused with gte -90", message: locationMsg(-90.0000001, 0), wants: []want{{lat, "gte", lim(-90)}}},
		{name: "longitude 180 is valid", message: locationMsg(0, 180)},
		{name: "longitude -180 is valid", message: locationMsg(0, -180)},
		{name: "longitude 180.0000001 is refused with lte 180", message: locationMsg(0, 180.0000001), wants: []want{{lng, "lte", lim(180)}}},
		{name: "longitude -180.0000001 is refused with gte -180", message: locationMsg(0, -180.0000001), wants: []want{{lng, "gte", lim(-180)}}},
		{name: "both out of range name both fields", message: locationMsg(91, -181),
			wants: []want{{lat, "lte", lim(90)}, {lng, "gte", lim(-180)}}},
		{name: "missing latitude is refused as required", message: msg{"type": "location", "longitude": 1}, wants: []want{{lat, "required", nil}}},
		{name: "missing longitude is refused as required", message: msg{"type": "location", "latitude": 1}, wants: []want{{lng, "required", nil}}},
		{name: "null latitude is refused as required", message: locationMsg(nil, 1), wants: []want{{lat, "required", nil}}},
	}
	for _, a := range alphabets {
		withAddress := func(addr string) msg {
			m := locationMsg(3.139, 101.6869)
			m["address"] = addr
			return m
		}
		cases = append(cases,
			limitCase{name: "address of 256 " + a.name + " code points is valid", message: withAddress(rep(a.char, schema.MaxAddress))},
			limitCase{name: "address of 257 " + a.name + " code points is refused with max 256",
				message: withAddress(rep(a.char, schema.MaxAddress+1)), wants: []want{{"message.address", "max", lim(256)}}},
		)
	}
	runLimitCases(t, cases)
}

func TestValidateMessageRequest_QuickReply(t *testing.T) {
	cases := []limitCase{
		{name: "title and one reply are valid", message: quickReplyMsg("Pick one", replies(1))},
		{name: "ten replies are valid", message: quickReplyMsg("Pick one", replies(10))},
		{name: "no replies are refused with min 1", message: quickReplyMsg("Pick one", []string{}),
			wants: []want{{"message.replies", "min", lim(1)}}},
		{name: "eleven replies are refused with max 10", message: quickReplyMsg("Pick one", replies(11)),
			wants: []want{{"message.replies", "max", lim(10)}}},
		{name: "missing replies are refused as required", message: msg{"type": "quick_reply", "title": "Pick one"},
			wants: []want{{"message.replies", "required", nil}}},
		{name: "empty title is refused with min 1", message: quickReplyMsg("", replies(2)),
			wants: []want{{"message.title", "min", lim(1)}}},
		{name: "missing title is refused as required", message: msg{"type": "quick_reply", "replies": replies(2)},
			wants: []want{{"message.title", "required", nil}}},
		{name: "empty reply is refused with its index", message: quickReplyMsg("Pick one", []string{"a", "b", "c", ""}),
			wants: []want{{"message.replies[3]", "min", lim(1)}}},
	}
	for _, a := range alphabets {
		at := func(n int) []string {
			r := replies(5)
			r[3] = rep(a.char, n)
			return r
		}
		cases = append(cases,
			limitCase{name: "title of 256 " + a.name + " code points is valid", message: quickReplyMsg(rep(a.char, schema.MaxTitle), replies(2))},
			limitCase{name: "title of 257 " + a.name + " code points is refused with max 256",
				message: quickReplyMsg(rep(a.char, schema.MaxTitle+1), replies(2)), wants: []want{{"message.title", "max", lim(256)}}},
			limitCase{name: "reply of 256 " + a.name + " code points is valid", message: quickReplyMsg("Pick one", at(schema.MaxReply))},
			limitCase{name: "reply of 257 " + a.name + " code points is refused at message.replies[3]",
				message: quickReplyMsg("Pick one", at(schema.MaxReply+1)), wants: []want{{"message.replies[3]", "max", lim(256)}}},
		)
	}
	runLimitCases(t, cases)
}

func TestValidateMessageRequest_ContactID(t *testing.T) {
	hello := textMsg("Hello")
	e164 := []want{{"contactId", "e164", nil}}
	customID := []want{{"contactId", "contact_id", lim(50)}}
	custom50 := strings.Repeat("Az09_=+/@x", 5)
	phone, custom := schema.IDTypePhone, schema.IDTypeCustom
	cases := []limitCase{
		{name: "phone: +60177872890 is valid", idType: phone, contactID: "+60177872890", message: hello},
		{name: "phone: + and 15 digits is valid", idType: phone, contactID: "+123456789012345", message: hello},
		{name: "phone: + and 2 digits is valid", idType: phone, contactID: "+12", message: hello},
		{name: "phone: + and 16 digits is refused as e164", idType: phone, contactID: "+1234567890123456", message: hello, wants: e164},
		{name: "phone: + and 1 digit is refused as e164", idType: phone, contactID: "+1", message: hello, wants: e164},
		{name: "phone: no leading + is refused as e164", idType: phone, contactID: "60177872890", message: hello, wants: e164},
		{name: "phone: leading 0 is refused as e164", idType: phone, contactID: "+0123", message: hello, wants: e164},
		{name: "phone: spaces are refused as e164", idType: phone, contactID: "+60 17 787 2890", message: hello, wants: e164},
		{name: "phone: a custom ID is refused as e164", idType: phone, contactID: "jane_doe", message: hello, wants: e164},
		{name: "custom: 50 allowed characters are valid", idType: custom, contactID: custom50, message: hello},
		{name: "custom: 51 allowed characters are refused as contact_id", idType: custom, contactID: custom50 + "a", message: hello, wants: customID},
		{name: "custom: an E.164 number is valid", idType: custom, contactID: "+60177872890", message: hello},
		{name: "custom: jane.doe is refused (dot)", idType: custom, contactID: "jane.doe", message: hello, wants: customID},
		{name: "custom: a-b is refused (hyphen)", idType: custom, contactID: "a-b", message: hello, wants: customID},
		{name: "custom: a b is refused (space)", idType: custom, contactID: "a b", message: hello, wants: customID},
		{name: "custom: an e-mail address is refused as it stands", idType: custom, contactID: "jane.doe@example.com", message: hello, wants: customID},
		{name: "custom: é is refused (not in the alphabet)", idType: custom, contactID: "caf" + rep("é", 1), message: hello, wants: customID},
		{name: "custom: 😀 is refused (not in the alphabet)", idType: custom, contactID: "a😀", message: hello, wants: customID},
	}
	runLimitCases(t, cases)

	t.Run("missing contactId is refused as required", func(t *testing.T) {
		body := []byte(`{"channelId":"demo","message":{"type":"text","text":"Hello"}}`)
		assertFieldErrors(t, decodeAndValidate(body, schema.IDTypePhone), want{"contactId", "required", nil})
	})
	t.Run("missing channelId is refused as required", func(t *testing.T) {
		body := []byte(`{"contactId":"+60177872890","message":{"type":"text","text":"Hello"}}`)
		assertFieldErrors(t, decodeAndValidate(body, schema.IDTypePhone), want{"channelId", "required", nil})
	})
	t.Run("missing message is refused as required", func(t *testing.T) {
		body := []byte(`{"channelId":"demo","contactId":"+60177872890"}`)
		assertFieldErrors(t, decodeAndValidate(body, schema.IDTypePhone), want{"message", "required", nil})
	})
}

func TestValidateMessageRequest_MessageTypeUnion(t *testing.T) {
	cases := []limitCase{
		{name: "unknown type is one oneof error without noise", message: msg{"type": "sticker", "text": "hi", "title": "t"},
			wants: []want{{"message.type", "oneof", nil}}},
		{name: "unknown type alone is one oneof error", message: msg{"type": "sticker"},
			wants: []want{{"message.type", "oneof", nil}}},
		{name: "missing type is refused as required", message: msg{"text": "hi"},
			wants: []want{{"message.type", "required", nil}}},
		{name: "text message with title is refused as not_allowed", message: msg{"type": "text", "text": "hi", "title": "t"},
			wants: []want{{"message.title", "not_allowed", nil}}},
		{name: "text message with replies is refused as not_allowed", message: msg{"type": "text", "text": "hi", "replies": []string{"a"}},
			wants: []want{{"message.replies", "not_allowed", nil}}},
		{name: "location message with text is refused as not_allowed", message: msg{"type": "location", "latitude": 1, "longitude": 2, "text": "hi"},
			wants: []want{{"message.text", "not_allowed", nil}}},
		{name: "quick_reply with latitude 0 is refused as not_allowed", message: msg{"type": "quick_reply", "title": "t", "replies": []string{"a"}, "latitude": 0},
			wants: []want{{"message.latitude", "not_allowed", nil}}},
		{name: "attachment message with address is refused as not_allowed",
			message: msg{"type": "attachment", "attachment": msg{"type": "image", "url": "https://example.com/a.png"}, "address": "x"},
			wants:   []want{{"message.address", "not_allowed", nil}}},
		{name: "null fields of another type are absent, not refused", message: msg{"type": "text", "text": "hi", "title": nil, "attachment": nil}},
	}
	runLimitCases(t, cases)
}

// TestValidateMessage checks the single-message entry point used for inbound
// events: paths are relative to the message object.
func TestValidateMessage(t *testing.T) {
	cases := []struct {
		name  string
		m     *schema.Message
		wants []want
	}{
		{name: "valid text", m: schema.TextMessage("hi")},
		{name: "text over 7000 code points", m: schema.TextMessage(rep("😀", 7001)), wants: []want{{"text", "max", lim(7000)}}},
		{name: "location with zero coordinates", m: &schema.Message{Type: schema.TypeLocation, Latitude: ptr(0.0), Longitude: ptr(0.0)}},
		{name: "unknown type", m: &schema.Message{Type: "sticker"}, wants: []want{{"type", "oneof", nil}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assertFieldErrors(t, schema.ValidateMessage(tc.m), tc.wants...)
		})
	}
}

func TestValidContactID(t *testing.T) {
	cases := []struct {
		name   string
		id     string
		idType schema.IDType
		valid  bool
	}{
		{"phone accepts E.164", "+60177872890", schema.IDTypePhone, true},
		{"phone refuses missing +", "60177872890", schema.IDTypePhone, false},
		{"phone refuses empty", "", schema.IDTypePhone, false},
		{"custom accepts the whole alphabet", "AZaz09_=+/@", schema.IDTypeCustom, true},
		{"custom refuses empty", "", schema.IDTypeCustom, false},
		{"custom refuses a dot", "a.b", schema.IDTypeCustom, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := schema.ValidContactID(tc.id, tc.idType); got != tc.valid {
				t.Fatalf("ValidContactID(%q, %s) = %v, want %v", tc.id, tc.idType, got, tc.valid)
			}
		})
	}
}
