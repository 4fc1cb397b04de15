package mailgun

import (
	"html"
	"net/url"
	"regexp"
	"strings"
)

// linkPattern finds http(s) links in plain text. Trailing punctuation that
// usually ends the sentence, not the link, is trimmed by trimLink.
var linkPattern = regexp.MustCompile(`(?i)\bhttps?://[^\s<>"]+`)

// htmlText is plain text as HTML: escaped, line breaks kept as <br>, and
// http(s) links made clickable.
func htmlText(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	var b strings.Builder
	last := 0
	for _, loc := range linkPattern.FindAllStringIndex(s, -1) {
		link := trimLink(s[loc[0]:loc[1]])
		end := loc[0] + len(link)
		b.WriteString(escapeHTML(s[last:loc[0]]))
		b.WriteString(`<a href="` + escapeAttr(link) + `">` + escapeHTML(link) + `</a>`)
		last = end
	}
	b.WriteString(escapeHTML(s[last:]))
	return strings.ReplaceAll(b.String(), "\n", "<br>\n")
}

// trimLink drops sentence punctuation after a link, and a closing
// parenthesis that has no opening one inside the link.
func trimLink(l string) string {
	for l != "" {
		c := l[len(l)-1]
		switch {
		case strings.IndexByte(".,;:!?'", c) >= 0:
			l = l[:len(l)-1]
		case c == ')' && strings.Count(l, "(") < strings.Count(l, ")"):
			l = l[:len(l)-1]
		default:
			return l
		}
	}
	return l
}

func escapeHTML(s string) string { return html.EscapeString(s) }

// escapeAttr escapes a value for a double-quoted attribute.
func escapeAttr(s string) string { return html.EscapeString(s) }

// htmlDoc wraps a fragment in a minimal document.
func htmlDoc(fragment string) string {
	return "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"></head><body>\n" + fragment + "\n</body></html>"
}

// mailtoLink is a mailto: URL (RFC 6068) to addr with the body pre-filled.
func mailtoLink(addr, body string) string {
	return "mailto:" + addr + "?body=" + mailtoEscape(body)
}

// mailtoEscape percent-encodes for a mailto query: a space is %20, never
// "+" (which mail clients would keep as a plus).
func mailtoEscape(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
}
