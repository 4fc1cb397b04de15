package schema

import (
	"path"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// Length counts s the way a limit is checked on output: the larger of its
// code points and its UTF-16 code units, so a JavaScript platform that counts
// units accepts it too.
func Length(s string) int {
	n := 0
	for _, r := range s {
		n += max(utf16.RuneLen(r), 1)
	}
	return max(n, utf8.RuneCountInString(s))
}

// Truncate cuts s at a code point boundary so that Length(s) <= limit.
func Truncate(s string, limit int) string {
	units := 0
	for i, r := range s {
		units += max(utf16.RuneLen(r), 1)
		if units > limit {
			return s[:i]
		}
	}
	return s
}

// SplitText cuts text into parts of at most limit (by Length), at the last
// white space inside each part when there is one, else at a code point
// boundary. No character is lost: joining the parts gives the text back.
func SplitText(text string, limit int) []string {
	var parts []string
	for Length(text) > limit {
		head := Truncate(text, limit)
		if cut := lastSpaceEnd(head); cut > 0 {
			head = head[:cut]
		}
		parts = append(parts, head)
		text = text[len(head):]
	}
	if text != "" || len(parts) == 0 {
		parts = append(parts, text)
	}
	return parts
}

// lastSpaceEnd returns the byte offset just after the last white space in s,
// or 0 when s has none past its first character.
func lastSpaceEnd(s string) int {
	i := strings.LastIndexFunc(s, unicode.IsSpace)
	if i <= 0 {
		return 0
	}
	_, size := utf8.DecodeRuneInString(s[i:])
	return i + size
}

// ShortenFileName keeps name within limit, keeping its extension.
func ShortenFileName(name string, limit int) string {
	if Length(name) <= limit {
		return name
	}
	ext := path.Ext(name)
	if Length(ext) >= limit/2 {
		return Truncate(name, limit)
	}
	return Truncate(strings.TrimSuffix(name, ext), limit-Length(ext)) + ext
}

// SuffixID returns id with "-n" appended, shortening id so that the result
// stays within MaxMID.
func SuffixID(id string, n int) string {
	suffix := "-" + strconv.Itoa(n)
	return Truncate(id, MaxMID-len(suffix)) + suffix
}
