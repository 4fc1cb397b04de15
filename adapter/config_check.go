package adapter

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// shapeChecker walks the YAML tree along the configuration's Go types
// before it is decoded, so that every problem of shape comes with its key
// path and line: unknown keys, keys given twice, and values of the wrong
// kind or type. (The YAML decoder names only a line, stops at a key given
// twice, and quotes the offending value.)
//
// Values are never quoted in a problem: one put under the wrong key may be
// a secret.
type shapeChecker struct {
	problems []string
	// bad are the key paths whose value could not be used; validation
	// problems under them would only repeat the same mistake.
	bad []string
}

var durationType = reflect.TypeFor[time.Duration]()

func (c *shapeChecker) add(path string, n *yaml.Node, problem string) {
	if path == "" {
		path = "the configuration"
	}
	c.problems = append(c.problems, fmt.Sprintf("%s: %s (line %d)", path, problem, n.Line))
}

func (c *shapeChecker) addBad(path string, n *yaml.Node, problem string) {
	c.add(path, n, problem)
	c.bad = append(c.bad, path)
}

// check checks node n, found at path, against the Go type t.
func (c *shapeChecker) check(n *yaml.Node, t reflect.Type, path string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return // "key:" with no value keeps the default
	}
	switch {
	case t.Kind() == reflect.Struct:
		if n.Kind != yaml.MappingNode {
			c.addBad(path, n, "must be a mapping of keys to values")
			return
		}
		c.mapping(n, t, path)
	case t.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			c.addBad(path, n, "must be a list")
			return
		}
		for i, e := range n.Content {
			c.check(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
		}
	case n.Kind != yaml.ScalarNode || n.Decode(reflect.New(t).Interface()) != nil || fractionForInteger(n, t):
		c.addBad(path, n, "must be "+describeType(t))
	}
}

// fractionForInteger: the decoder truncates 1.5 to 1 for an integer field,
// without a word.
func fractionForInteger(n *yaml.Node, t reflect.Type) bool {
	isInt := t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64
	return isInt && n.ShortTag() == "!!float"
}

// mapping checks the keys of a mapping node against struct t. A key given
// twice is reported and its later value dropped, so that decoding goes on
// and reports the other problems.
func (c *shapeChecker) mapping(n *yaml.Node, t reflect.Type, path string) {
	fields := map[string]reflect.Type{}
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		fields[name] = f.Type
	}
	firstLine := map[string]int{}
	kept := n.Content[:0]
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, value := n.Content[i], n.Content[i+1]
		keyPath := joinKey(path, key.Value)
		if line, dup := firstLine[key.Value]; dup {
			c.problems = append(c.problems, fmt.Sprintf("%s: given twice, on lines %d and %d", keyPath, line, key.Line))
			continue
		}
		firstLine[key.Value] = key.Line
		kept = append(kept, key, value)
		ft, known := fields[key.Value]
		switch {
		case key.Tag == "!!merge":
			// Merged keys could not be told apart from those written out
			// (duplicates, line numbers): decided against, said plainly.
			c.add(keyPath, key, "YAML merge keys (<<) are not supported; write the keys out")
			continue
		case !known:
			c.add(keyPath, key, "unknown key")
			continue
		}
		c.check(value, ft, keyPath)
	}
	n.Content = kept
}

// describeType says in words what a value of type t looks like.
func describeType(t reflect.Type) string {
	switch {
	case t == durationType:
		return "a duration such as 30s, 5m or 1h30m"
	case t.Kind() == reflect.Bool:
		return "true or false"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		return "a whole number"
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		return "a number"
	case t.Kind() == reflect.Map:
		return "a mapping of keys to values"
	}
	return "a single value (text or a number)"
}

// notUnder drops the problems about key paths at or under a bad one.
func notUnder(problems, bad []string) []string {
	return slices.DeleteFunc(problems, func(p string) bool {
		path, _, _ := strings.Cut(p, ": ")
		return slices.ContainsFunc(bad, func(b string) bool {
			return path == b || strings.HasPrefix(path, b+".") || strings.HasPrefix(path, b+"[")
		})
	})
}
