package providers

import (
	"testing"
	"unicode"

	"github.com/bonychat/bonychat-adapter/schema"
)

func TestTextRenderings(t *testing.T) {
	lat, lng := 3.15790, -101.7
	addr, title := "KLCC", "How did we do?"
	cases := []struct {
		name string
		got  string
		want string
	}{
		{"location with address", LocationText(schema.Message{Latitude: &lat, Longitude: &lng, Address: &addr}),
			"KLCC\nhttps://maps.google.com/?q=3.1579,-101.7"},
		{"location without address", LocationText(schema.Message{Latitude: &lat, Longitude: &lng}),
			"https://maps.google.com/?q=3.1579,-101.7"},
		{"quick reply numbered", QuickReplyText(schema.Message{Title: &title, Replies: []string{"Great", "Bad"}}),
			"How did we do?\n1. Great\n2. Bad\nReply 1-2"},
		{"one option", QuickReplyText(schema.Message{Title: &title, Replies: []string{"OK"}}), "How did we do?\n1. OK\nReply 1"},
		{"coordinate keeps 6 decimals at most", Coord(1.23456789), "1.234568"},
		{"whole coordinate", Coord(-90), "-90"},
		{"nil string", Deref(nil), ""},
	}
	for _, tc := range cases {
		if tc.got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, tc.got, tc.want)
		}
	}
}

// A quick reply of plain-ASCII options renders to plain ASCII: a single
// character outside GSM-7 (a dash, a curly quote) would make the whole SMS
// UCS-2, 67 characters a segment instead of 153.
func TestQuickReplyOfASCIIOptionsStaysASCII(t *testing.T) {
	title := "Which size do you want?"
	for _, replies := range [][]string{{"Small"}, {"Small", "Medium", "Large"}} {
		got := QuickReplyText(schema.Message{Type: schema.TypeQuickReply, Title: &title, Replies: replies})
		for _, r := range got {
			if r > unicode.MaxASCII {
				t.Fatalf("%q has %q, which is not ASCII", got, r)
			}
		}
	}
}
