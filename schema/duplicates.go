package schema

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// A key given twice in one object is refused rather than resolved: JSON
// parsers disagree on which value wins (Go keeps the last, others the
// first), so a body that passes one component's checks could mean
// something else to another. The check costs one scan of the body when no
// key repeats; the keys are named only when one does.

// duplicateKeys names every key that appears more than once in one object
// of body, which decodes (UseNumber) to decoded. body must be valid JSON.
func duplicateKeys(body []byte, decoded any) []FieldError {
	if rawKeyCount(body) == decodedKeyCount(decoded) {
		return nil
	}
	return namedDuplicates(body)
}

// rawKeyCount counts the object keys written in valid JSON: the strings
// followed by a colon.
func rawKeyCount(body []byte) int {
	n := 0
	for i := 0; i < len(body); i++ {
		if body[i] != '"' {
			continue
		}
		i = stringEnd(body, i)
		j := i + 1
		for j < len(body) && isJSONSpace(body[j]) {
			j++
		}
		if j < len(body) && body[j] == ':' {
			n++
		}
	}
	return n
}

// stringEnd returns the index of the quote closing the string that opens
// at body[open].
func stringEnd(body []byte, open int) int {
	for i := open + 1; i < len(body); i++ {
		switch body[i] {
		case '\\':
			i++
		case '"':
			return i
		}
	}
	return len(body)
}

func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// decodedKeyCount counts the keys of every object in v (distinct per
// object, as a map keeps them).
func decodedKeyCount(v any) int {
	switch v := v.(type) {
	case map[string]any:
		n := len(v)
		for _, child := range v {
			n += decodedKeyCount(child)
		}
		return n
	case []any:
		n := 0
		for _, child := range v {
			n += decodedKeyCount(child)
		}
		return n
	}
	return 0
}

// namedDuplicates walks body's tokens and names each repeated key once,
// with its path.
func namedDuplicates(body []byte) []FieldError {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var out []FieldError
	walkDuplicates(dec, "", &out)
	return out
}

// walkDuplicates reads one value from dec (at path) and appends the
// repeated keys of the objects within it to out.
func walkDuplicates(dec *json.Decoder, path string, out *[]FieldError) {
	tok, err := dec.Token()
	if err != nil {
		return
	}
	switch tok {
	case json.Delim('{'):
		seen := map[string]int{}
		for dec.More() {
			keyTok, err := dec.Token()
			if err != nil {
				return
			}
			key, _ := keyTok.(string)
			seen[key]++
			if seen[key] == 2 {
				*out = append(*out, FieldError{Field: join(path, key), Rule: "duplicate", Message: "is given more than once"})
			}
			walkDuplicates(dec, join(path, key), out)
		}
		_, _ = dec.Token() // }
	case json.Delim('['):
		for i := 0; dec.More(); i++ {
			walkDuplicates(dec, fmt.Sprintf("%s[%d]", path, i), out)
		}
		_, _ = dec.Token() // ]
	}
}
