package schema_test

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/rivo/uniseg"

	"github.com/bonychat/bonychat-adapter/schema"
)

func TestLength_CountsTheLargerOfCodePointsAndUTF16Units(t *testing.T) {
	cases := []struct {
		name string
		s    string
		want int
	}{
		{"empty", "", 0},
		{"ascii", "abc", 3},
		{"é is one", "é", 1},
		{"中 is one", "中文", 2},
		{"😀 is two UTF-16 units", "😀", 2},
		{"mixed", "a😀é中", 5},
		{"7000 astral code points are 14000 units", rep("😀", 7000), 14000},
		{"invalid UTF-8 byte counts as one", "a\xffb", 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := schema.Length(tc.s); got != tc.want {
				t.Fatalf("Length(%q) = %d, want %d", tc.s, got, tc.want)
			}
			if utf8.ValidString(tc.s) && schema.Length(tc.s) != outputLength(tc.s) {
				t.Fatalf("Length(%q) = %d, independent count %d", tc.s, schema.Length(tc.s), outputLength(tc.s))
			}
		})
	}
}

func TestTruncate_CutsAtCodePointsWithinBothMeasures(t *testing.T) {
	cases := []struct {
		name  string
		s     string
		limit int
		want  string
	}{
		{"shorter text is unchanged", "hello", 10, "hello"},
		{"text at the limit is unchanged", "hello", 5, "hello"},
		{"ascii is cut", "hello", 3, "hel"},
		{"é counts one", "héllo", 2, "hé"},
		{"中 counts one", "中中中", 2, "中中"},
		{"😀 counts two", "😀😀", 4, "😀😀"},
		{"😀 is never split in half", "😀😀", 3, "😀"},
		{"😀 that does not fit is dropped whole", "a😀", 2, "a"},
		{"limit 1 before an astral character", "😀", 1, ""},
		{"limit 0", "abc", 0, ""},
		{"empty text", "", 5, ""},
		{"a family emoji (joined by ZWJ) is not split", "ab👩‍👩‍👧‍👦", 5, "ab"},
		{"a flag (two regional indicators) is not split", "🇲🇾🇲🇾", 6, "🇲🇾"},
		{"a skin tone stays with its emoji", "👍🏽👍🏽", 6, "👍🏽"},
		{"an accent stays with its letter", "café", 4, "caf"},
		{"a character longer than the limit is cut at a code point", "e" + rep("́", 10), 4, "e" + rep("́", 3)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := schema.Truncate(tc.s, tc.limit)
			if got != tc.want {
				t.Fatalf("Truncate(%q, %d) = %q, want %q", tc.s, tc.limit, got, tc.want)
			}
			assertFitPrefix(t, tc.s, got, tc.limit)
		})
	}
	for _, a := range alphabets {
		t.Run("maximal prefix of "+a.name+" text", func(t *testing.T) {
			s := rep(a.char, 300) + "x"
			for _, limit := range []int{0, 1, 2, 3, 255, 256, 257, 600, 601} {
				assertFitPrefix(t, s, schema.Truncate(s, limit), limit)
			}
		})
	}
}

// assertFitPrefix checks that got is s cut after a whole grapheme cluster
// (or, when not even the first fits, at a code point boundary inside it),
// within limit in both measures, and as long as it can be.
func assertFitPrefix(t *testing.T, s, got string, limit int) {
	t.Helper()
	if !strings.HasPrefix(s, got) {
		t.Fatalf("%q is not a prefix of %q", got, s)
	}
	if !utf8.ValidString(got) {
		t.Fatalf("%q was cut inside a code point", got)
	}
	if n := outputLength(got); n > limit {
		t.Fatalf("Truncate(…, %d) has length %d", limit, n)
	}
	rest := s[len(got):]
	if rest == "" {
		return
	}
	first, _, _, _ := uniseg.FirstGraphemeClusterInString(s, -1)
	next, _, _, _ := uniseg.FirstGraphemeClusterInString(rest, -1)
	switch {
	case len(got) < len(first): // inside the first character: it must not fit
		if outputLength(first) <= limit {
			t.Fatalf("Truncate(…, %d) = %q cuts the first character %q, which fits", limit, got, first)
		}
		r, _ := utf8.DecodeRuneInString(rest)
		next = string(r)
	case !clusterBoundary(s, len(got)):
		t.Fatalf("Truncate(…, %d) = %q ends inside a character", limit, got)
	}
	if outputLength(got+next) <= limit {
		t.Fatalf("Truncate(…, %d) = %q stops early: the next %q still fits", limit, got, next)
	}
}

// clusterBoundary: a grapheme cluster of s ends at byte offset at.
func clusterBoundary(s string, at int) bool {
	end := 0
	for rest, state := s, -1; rest != "" && end < at; {
		var c string
		c, rest, _, state = uniseg.FirstGraphemeClusterInString(rest, state)
		end += len(c)
	}
	return end == at
}

func TestSplitText(t *testing.T) {
	cases := []struct {
		name  string
		text  string
		limit int
		want  []string // nil: check the properties only
	}{
		{name: "text within the limit is one part", text: "hello world", limit: 20, want: []string{"hello world"}},
		{name: "text at the limit is one part", text: "hello", limit: 5, want: []string{"hello"}},
		{name: "empty text is one empty part", text: "", limit: 5, want: []string{""}},
		{name: "splits after the last space of the window", text: "hello world foo", limit: 11, want: []string{"hello ", "world foo"}},
		{name: "splits after a line break", text: "line one\nline two", limit: 12, want: []string{"line one\n", "line two"}},
		{name: "splits after an ideographic space", text: "中文中文\u3000中文中文", limit: 6, want: []string{"中文中文\u3000", "中文中文"}},
		{name: "without white space cuts at the limit", text: "abcdefghij", limit: 4, want: []string{"abcd", "efgh", "ij"}},
		{name: "leading space only is not a split point", text: " abcdef", limit: 4, want: []string{" abc", "def"}},
		{name: "astral character at the boundary moves whole to the next part", text: "a😀b", limit: 2, want: []string{"a", "😀", "b"}},
		{name: "astral characters two units each", text: "😀😀😀", limit: 3, want: []string{"😀", "😀", "😀"}},
		{name: "astral words split at spaces", text: "😀😀 😀😀 😀😀", limit: 6, want: []string{"😀😀 ", "😀😀 ", "😀😀"}},
		{name: "7000 astral code points are two parts of 7000 units", text: rep("😀", 7000), limit: schema.MaxText,
			want: []string{rep("😀", 3500), rep("😀", 3500)}},
		{name: "15000 ascii characters of words", text: words("lorem", 15000), limit: schema.MaxText},
		{name: "15000 é of words", text: words("déjà", 15000), limit: schema.MaxText},
		{name: "15000 中 without spaces", text: rep("中", 15000), limit: schema.MaxText},
		{name: "astral words over the limit", text: words("😀😀😀", 9000), limit: schema.MaxText},
		{name: "a space a combining mark belongs to moves with it", text: "abc \u0301def", limit: 6, want: []string{"abc", " \u0301def"}},
		{name: "flags are never split into mismatched halves", text: "🇲🇾🇸🇬🇲🇾", limit: 6, want: []string{"🇲🇾", "🇸🇬", "🇲🇾"}},
		{name: "family emoji stay whole", text: rep("👨‍👩‍👧", 5), limit: 20,
			want: []string{rep("👨‍👩‍👧", 2), rep("👨‍👩‍👧", 2), "👨‍👩‍👧"}},
		{name: "one long word then spaces", text: rep("x", 7500) + " tail end", limit: schema.MaxText},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			parts := schema.SplitText(tc.text, tc.limit)
			if tc.want != nil && !equalStrings(parts, tc.want) {
				t.Fatalf("SplitText = %q, want %q", clip(parts), clip(tc.want))
			}
			assertSplit(t, tc.text, tc.limit, parts)
		})
	}
}

// assertSplit checks the promises of SplitText: every part fits, none is
// empty (unless the text is), joining them gives the text back, and a part
// ends at white space whenever its window held one past the first character.
func assertSplit(t *testing.T, text string, limit int, parts []string) {
	t.Helper()
	if got := strings.Join(parts, ""); got != text {
		t.Fatalf("joined parts differ from the text (len %d vs %d)", len(got), len(text))
	}
	rest := text
	for i, p := range parts {
		if n := outputLength(p); n > limit {
			t.Fatalf("part %d has length %d > %d", i, n, limit)
		}
		if p == "" && text != "" {
			t.Fatalf("part %d is empty", i)
		}
		if !utf8.ValidString(p) {
			t.Fatalf("part %d was cut inside a code point", i)
		}
		if i < len(parts)-1 {
			window := schema.Truncate(rest, limit)
			if hasSpaceAfterFirst(window) {
				// At the space, or just before it when a mark or joiner
				// makes it part of the next character.
				last, _ := utf8.DecodeLastRuneInString(p)
				next, _ := utf8.DecodeRuneInString(rest[len(p):])
				if !unicode.IsSpace(last) && !unicode.IsSpace(next) {
					t.Fatalf("part %d ends with %q though its window had white space", i, last)
				}
			} else if p != window {
				t.Fatalf("part %d (%d bytes) is not the whole window (%d bytes) though it had no white space", i, len(p), len(window))
			}
		}
		rest = rest[len(p):]
	}
}

func hasSpaceAfterFirst(s string) bool {
	_, size := utf8.DecodeRuneInString(s)
	return strings.IndexFunc(s[size:], unicode.IsSpace) >= 0
}

// words repeats word and a space until the text is n code points long.
func words(word string, n int) string {
	var b strings.Builder
	count := 0
	for count < n {
		for _, r := range word + " " {
			if count == n {
				break
			}
			b.WriteRune(r)
			count++
		}
	}
	return b.String()
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// clip shortens long parts for failure messages.
func clip(parts []string) []string {
	out := make([]string, len(parts))
	for i, p := range parts {
		out[i] = schema.Truncate(p, 40)
		if out[i] != p {
			out[i] += "…"
		}
	}
	return out
}

func TestShortenFileName(t *testing.T) {
	cases := []struct {
		name    string
		in      string
		limit   int
		want    string // "": check the properties only
		keepExt string // the extension that must survive, if any
	}{
		{name: "short name is unchanged", in: "report.pdf", limit: 256, want: "report.pdf", keepExt: ".pdf"},
		{name: "name at the limit is unchanged", in: rep("a", 252) + ".pdf", limit: 256, want: rep("a", 252) + ".pdf", keepExt: ".pdf"},
		{name: "ascii name is cut before the extension", in: rep("a", 300) + ".pdf", limit: 256, want: rep("a", 252) + ".pdf", keepExt: ".pdf"},
		{name: "é name is cut before the extension", in: rep("é", 300) + ".docx", limit: 256, want: rep("é", 251) + ".docx", keepExt: ".docx"},
		{name: "中 name is cut before the extension", in: rep("中", 300) + ".png", limit: 256, want: rep("中", 252) + ".png", keepExt: ".png"},
		{name: "astral name is cut within 256 UTF-16 units", in: rep("😀", 300) + ".pdf", limit: 256, want: rep("😀", 126) + ".pdf", keepExt: ".pdf"},
		{name: "odd astral room leaves the unit unused", in: rep("😀", 300) + ".jpeg", limit: 256, want: rep("😀", 125) + ".jpeg", keepExt: ".jpeg"},
		{name: "only the last extension is kept", in: rep("a", 300) + ".tar.gz", limit: 256, keepExt: ".gz"},
		{name: "small limit", in: "abcdefghij.pdf", limit: 10, want: "abcdef.pdf", keepExt: ".pdf"},
		{name: "name without extension is cut", in: rep("a", 300), limit: 256, want: rep("a", 256)},
		{name: "extension longer than half the limit is cut as text", in: rep("a", 100) + "." + rep("b", 200), limit: 256},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := schema.ShortenFileName(tc.in, tc.limit)
			if tc.want != "" && got != tc.want {
				t.Fatalf("ShortenFileName = %q (len %d), want %q", got, len(got), tc.want)
			}
			if n := outputLength(got); n > tc.limit {
				t.Fatalf("result has length %d > %d", n, tc.limit)
			}
			if !utf8.ValidString(got) {
				t.Fatalf("result was cut inside a code point: %q", got)
			}
			if tc.keepExt != "" && !strings.HasSuffix(got, tc.keepExt) {
				t.Fatalf("result %q lost the extension %q", got, tc.keepExt)
			}
			if got == "" {
				t.Fatal("result is empty")
			}
		})
	}
}

func TestSuffixID(t *testing.T) {
	cases := []struct {
		name string
		id   string
		n    int
		want string
	}{
		{"short id gets the suffix", "X", 1, "X-1"},
		{"two-digit suffix", "SM0123", 12, "SM0123-12"},
		{"50-character id is shortened for -1", rep("a", 50), 1, rep("a", 48) + "-1"},
		{"50-character id is shortened for -12", rep("a", 50), 12, rep("a", 47) + "-12"},
		{"49-character id is shortened for -1", rep("b", 49), 1, rep("b", 48) + "-1"},
		{"48-character id fits with -1", rep("c", 48), 1, rep("c", 48) + "-1"},
		{"astral id fits in UTF-16 units", rep("😀", 30), 3, rep("😀", 24) + "-3"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := schema.SuffixID(tc.id, tc.n)
			if got != tc.want {
				t.Fatalf("SuffixID(%q, %d) = %q, want %q", tc.id, tc.n, got, tc.want)
			}
			if n := outputLength(got); n > schema.MaxMID {
				t.Fatalf("result has length %d > %d", n, schema.MaxMID)
			}
		})
	}
}

// A character longer than the limit (a letter with a million combining
// marks) is cut at code points, part after part, and the parts rejoin to
// the text.
func TestSplitTextCutsACharacterLongerThanTheLimit(t *testing.T) {
	text := "a" + strings.Repeat("\u0301", 100_000) + " tail"
	parts := schema.SplitText(text, schema.MaxText)
	if strings.Join(parts, "") != text {
		t.Fatal("the parts do not rejoin to the text")
	}
	for i, p := range parts {
		if outputLength(p) > schema.MaxText || p == "" {
			t.Fatalf("part %d has length %d", i, outputLength(p))
		}
	}
	if got := schema.SplitText("😀😀", 1); strings.Join(got, "") != "😀😀" {
		t.Fatalf("a limit below one character's length: %q", got)
	}
}

// BenchmarkSplitText: cutting stays linear in the text, a character as
// long as the text included (a contact's e-mail may be megabytes).
func BenchmarkSplitText(b *testing.B) {
	for name, text := range map[string]string{
		"1M combining marks": "a" + strings.Repeat("\u0301", 1_000_000),
		"4 MB of words":      strings.Repeat("word ", 800_000),
	} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				schema.SplitText(text, schema.MaxText)
			}
		})
	}
}

// splitAlphabet mixes letters, white space, marks, joiners, emoji parts,
// flags, Hangul jamo and broken UTF-8.
var splitAlphabet = []string{
	"a", "b", " ", " ", "\t", "\n", "\u00a0", "\u3000", "\u0301", "\u0308", "\u200d", "\ufe0f",
	"👍", "🏽", "👨", "👩", "🇲", "🇾", "क", "्", "\u1100", "\u1161", "\u11a8", "\xff", "\xe2\x82", "😀",
}

// clusterEnds lists every grapheme cluster boundary of s after 0.
func clusterEnds(s string) []int {
	var ends []int
	end := 0
	for rest, state := s, -1; rest != ""; {
		var c string
		c, rest, _, state = uniseg.FirstGraphemeClusterInString(rest, state)
		end += len(c)
		ends = append(ends, end)
	}
	return ends
}

// On random text, every part SplitText cuts off ends at a character
// (grapheme cluster) boundary of the text left whenever one lies within
// what fits, and the parts rejoin to the text.
func TestSplitTextCutsAtACharacterBoundaryWheneverOneFits(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 20000 {
		var b strings.Builder
		for range r.IntN(40) {
			b.WriteString(splitAlphabet[r.IntN(len(splitAlphabet))])
		}
		text, limit := b.String(), 2+r.IntN(12)
		parts := schema.SplitText(text, limit)
		if strings.Join(parts, "") != text {
			t.Fatalf("SplitText(%q, %d) = %q does not rejoin", text, limit, parts)
		}
		rest := text
		for _, p := range parts[:len(parts)-1] {
			fits := codePointPrefix(rest, limit)
			ends := clusterEnds(rest)
			if ends[0] <= fits && !slices.Contains(ends, len(p)) {
				t.Fatalf("SplitText(%q, %d) cut %q | %q inside a character", text, limit, p, rest[len(p):])
			}
			rest = rest[len(p):]
		}
	}
}

// codePointPrefix is the byte length of the longest prefix of s within
// limit UTF-16 units.
func codePointPrefix(s string, limit int) int {
	units := 0
	for i, r := range s {
		if units += max(utf16.RuneLen(r), 1); units > limit {
			return i
		}
	}
	return len(s)
}
