package schema

import (
	"path"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/rivo/uniseg"
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

// Truncate cuts s so that Length(s) <= limit: after its last whole
// user-perceived character (grapheme cluster: an emoji with its skin tone
// and joiners, a flag, a letter with its accents) that fits, so that no
// character is shown broken in two; at a code point boundary only when
// not even the first one fits.
func Truncate(s string, limit int) string {
	cut := codePointCut(s, limit)
	if cut == len(s) {
		return s
	}
	if end := lastClusterEnd(s, cut); end > 0 {
		return s[:end]
	}
	return s[:cut]
}

// codePointCut is the byte length of the longest prefix of s whose UTF-16
// length is within limit.
func codePointCut(s string, limit int) int {
	units := 0
	for i, r := range s {
		units += max(utf16.RuneLen(r), 1)
		if units > limit {
			return i
		}
	}
	return len(s)
}

// lastClusterEnd returns the byte offset of the last grapheme cluster
// boundary of s at or before cut (0 when the first cluster ends after it).
// It reads s only up to the code point after cut, which is all a boundary
// at cut depends on, so that cutting a long text part by part stays linear
// (a cluster may be as long as the text).
func lastClusterEnd(s string, cut int) int {
	if cut < len(s) {
		_, size := utf8.DecodeRuneInString(s[cut:])
		s = s[:cut+size]
	}
	end, state := 0, -1
	for rest := s; rest != ""; {
		var cluster string
		cluster, rest, _, state = uniseg.FirstGraphemeClusterInString(rest, state)
		if end+len(cluster) > cut {
			break
		}
		end += len(cluster)
	}
	return end
}

// SplitText cuts text into parts of at most limit (by Length), at the last
// white space inside each part when there is one, else after the last
// whole character (Truncate). No character is lost: joining the parts gives the text back.
func SplitText(text string, limit int) []string {
	var parts []string
	// Length adds up over parts cut at code points: counted once, not per part.
	for left := Length(text); left > limit; left -= Length(parts[len(parts)-1]) {
		head := Truncate(text, limit)
		if cut := lastSpaceEnd(head); cut > 0 {
			// After the space, unless a mark or joiner makes it part of
			// the next character: then before that character.
			if end := lastClusterEnd(text, cut); end > 0 {
				head = head[:end]
			}
		}
		if head == "" { // a limit below one character's length: never loop
			_, size := utf8.DecodeRuneInString(text)
			head = text[:size]
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
