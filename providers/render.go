package providers

import (
	"fmt"
	"strings"

	"github.com/bonychat/bonychat-adapter/schema"
)

// Text renderings shared by providers whose channel has no native form of a
// message type (SMS, e-mail's plain-text part, the console).

// QuickReplyText offers a quick reply's options as a numbered list; a
// contact answers with the number or the option's text.
func QuickReplyText(m schema.Message) string {
	var b strings.Builder
	b.WriteString(Deref(m.Title))
	for i, r := range m.Replies {
		fmt.Fprintf(&b, "\n%d. %s", i+1, r)
	}
	// An ASCII hyphen, not a dash: one character outside GSM-7 would send
	// the whole SMS as UCS-2, 67 characters a segment instead of 153.
	if len(m.Replies) == 1 {
		b.WriteString("\nReply 1")
	} else {
		fmt.Fprintf(&b, "\nReply 1-%d", len(m.Replies))
	}
	return b.String()
}

// LocationText is a location's address (if any) and a map link.
func LocationText(m schema.Message) string {
	link := MapLink(Deref64(m.Latitude), Deref64(m.Longitude))
	if addr := Deref(m.Address); addr != "" {
		return addr + "\n" + link
	}
	return link
}

// MapLink opens the coordinates in a map in any browser.
func MapLink(lat, lng float64) string {
	return "https://maps.google.com/?q=" + Coord(lat) + "," + Coord(lng)
}

// Coord writes a coordinate with at most 6 decimals (~0.1 m), no trailing zeros.
func Coord(f float64) string {
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.6f", f), "0"), ".")
}

// Deref is *s, or "" for nil.
func Deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// Deref64 is *f, or 0 for nil.
func Deref64(f *float64) float64 {
	if f == nil {
		return 0
	}
	return *f
}
