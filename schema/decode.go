package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strings"
)

// knownKeys lists the keys each object of a /message body may carry;
// anything else is refused with its full path.
var knownKeys = map[string]map[string]bool{
	"":                   {"channelId": true, "contactId": true, "message": true},
	"message":            {"type": true, "text": true, "attachment": true, "latitude": true, "longitude": true, "address": true, "title": true, "replies": true},
	"message.attachment": {"type": true, "url": true, "mimeType": true, "fileName": true, "description": true},
}

// ErrMalformedJSON marks a body that is not a single JSON object.
var ErrMalformedJSON = errors.New("malformed JSON")

// DecodeMessageRequest decodes a /message body strictly: one JSON object,
// no unknown fields at any level, no key twice in one object, the right
// JSON type for every field. A
// *ValidationError names every offending field; ErrMalformedJSON wraps
// syntax errors. With unknown fields or wrong types, the request (without
// the wrong-typed values) is returned along with the error, so that the
// caller can validate the rest too and name every offending field at once
// (PROTOCOL); JoinInvalid then names each field once.
func DecodeMessageRequest(body []byte) (*MessageRequest, error) {
	var raw any
	if err := decodeOne(body, &raw); err != nil {
		return nil, err
	}
	obj, ok := raw.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: the body must be a JSON object", ErrMalformedJSON)
	}
	problems := appendUncovered(unknownFields("", obj), duplicateKeys(body, raw))
	wrong := structTypeProblems("", obj, reflect.TypeFor[MessageRequest]())
	problems = appendUncovered(problems, wrong)
	if len(wrong) > 0 {
		dropFields(obj, wrong)
		cleaned, err := json.Marshal(obj)
		if err != nil {
			return nil, invalid(problems...)
		}
		body = cleaned
	}
	var req MessageRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, typeError(err)
	}
	if len(problems) > 0 {
		return &req, invalid(problems...)
	}
	return &req, nil
}

// appendUncovered appends the fields of more that named does not name yet
// (a repeated unknown key is named once, as unknown).
func appendUncovered(named, more []FieldError) []FieldError {
	for _, f := range more {
		if !coveredBy(f.Field, named) {
			named = append(named, f)
		}
	}
	return named
}

// dropFields deletes the values of the named fields from obj (an item's
// problem drops its whole array).
func dropFields(obj map[string]any, fields []FieldError) {
	for _, f := range fields {
		keys := strings.Split(baseField(f.Field), ".")
		m := obj
		for _, k := range keys[:len(keys)-1] {
			m, _ = m[k].(map[string]any)
		}
		delete(m, keys[len(keys)-1])
	}
}

// baseField is a field path without a trailing item index.
func baseField(path string) string {
	if i := strings.IndexByte(path, '['); i >= 0 {
		return path[:i]
	}
	return path
}

// typeProblems names every value of v (decoded JSON, the key name of
// parent) whose JSON type is not the one t's field takes, where
// json.Unmarshal would stop at the first. null is left to validation, as
// Unmarshal leaves the field empty. Paths are built only when needed:
// this runs on every /message.
func typeProblems(parent, name string, v any, t reflect.Type) []FieldError {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case v == nil || scalarFits(v, t):
		return nil
	case t.Kind() == reflect.Slice:
		if items, isArray := v.([]any); isArray {
			if itemsFit(items, t.Elem()) {
				return nil
			}
			return itemTypeProblems(join(parent, name), items, t.Elem())
		}
	case t.Kind() == reflect.Struct:
		if obj, isObject := v.(map[string]any); isObject {
			return structTypeProblems(join(parent, name), obj, t)
		}
	}
	return []FieldError{{Field: join(parent, name), Rule: "type", Message: "must be a JSON " + jsonKind(t.Kind().String())}}
}

// scalarFits: v is a JSON value of the scalar kind t takes (false for
// arrays and objects, which typeProblems walks).
func scalarFits(v any, t reflect.Type) bool {
	switch t.Kind() {
	case reflect.String:
		_, ok := v.(string)
		return ok
	case reflect.Float64:
		n, ok := v.(json.Number)
		return ok && finite(n) // a number past float64's range is no number here
	case reflect.Int, reflect.Int64:
		n, ok := v.(json.Number)
		return ok && integer(n)
	case reflect.Bool:
		_, ok := v.(bool)
		return ok
	}
	return false
}

func itemsFit(items []any, t reflect.Type) bool {
	for _, item := range items {
		if item != nil && !scalarFits(item, t) {
			return false
		}
	}
	return true
}

// itemTypeProblems checks an array's items; an item's path is built only
// for a problem or a nested value.
func itemTypeProblems(path string, items []any, t reflect.Type) []FieldError {
	var out []FieldError
	for i, item := range items {
		if item == nil || scalarFits(item, t) {
			continue
		}
		out = append(out, typeProblems("", fmt.Sprintf("%s[%d]", path, i), item, t)...)
	}
	return out
}

func structTypeProblems(path string, obj map[string]any, t reflect.Type) []FieldError {
	var out []FieldError
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if v, present := obj[name]; present && name != "" && name != "-" {
			out = append(out, typeProblems(path, name, v, f.Type)...)
		}
	}
	return out
}

func integer(n json.Number) bool {
	_, err := n.Int64()
	return err == nil
}

func finite(n json.Number) bool {
	_, err := n.Float64()
	return err == nil
}

// JoinInvalid merges the fields of validation errors into one; any other
// error is returned as it is (the first such). A field named by an earlier
// error (or within one, e.g. a dropped array's items) is not named again.
func JoinInvalid(errs ...error) error {
	var fields []FieldError
	for _, err := range errs {
		if err == nil {
			continue
		}
		ve, ok := errors.AsType[*ValidationError](err)
		if !ok {
			return err
		}
		named := fields
		for _, f := range ve.Fields {
			if !coveredBy(f.Field, named) {
				fields = append(fields, f)
			}
		}
	}
	if len(fields) == 0 {
		return nil
	}
	return invalid(fields...)
}

// PeekChannelID reads only channelId from a body, for authentication before
// the body is processed any further. It returns "" when there is none, and
// an error wrapping ErrMalformedJSON when the body is not one JSON value:
// then no channel can be named, and saying so reveals nothing.
func PeekChannelID(body []byte) (string, error) {
	var head any
	if err := decodeOne(body, &head); err != nil {
		return "", err
	}
	obj, _ := head.(map[string]any)
	s, _ := obj["channelId"].(string)
	return s, nil
}

func decodeOne(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%w: the body is empty", ErrMalformedJSON)
		}
		return fmt.Errorf("%w: %v", ErrMalformedJSON, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: data after the JSON object", ErrMalformedJSON)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: data after the JSON object", ErrMalformedJSON)
	}
	return nil
}

func unknownFields(path string, obj map[string]any) []FieldError {
	allowed := knownKeys[path]
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []FieldError
	for _, k := range keys {
		child := join(path, k)
		if !allowed[k] {
			out = append(out, FieldError{Field: child, Rule: "unknown_field", Message: "is not a field of this object"})
			continue
		}
		if nested, ok := obj[k].(map[string]any); ok && knownKeys[child] != nil {
			out = append(out, unknownFields(child, nested)...)
		}
	}
	return out
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func typeError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		field := te.Field
		if field == "" {
			return fmt.Errorf("%w: the body must be a JSON object", ErrMalformedJSON)
		}
		return invalid(FieldError{Field: field, Rule: "type", Message: "must be a JSON " + jsonKind(te.Type.Kind().String())})
	}
	return fmt.Errorf("%w: %v", ErrMalformedJSON, err)
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "float64", "int", "int64":
		return "number"
	case "slice":
		return "array"
	case "struct", "map", "ptr":
		return "object"
	case "bool":
		return "boolean"
	}
	return goKind
}

// coveredBy: path is one of the fields named, or lies within one.
func coveredBy(path string, named []FieldError) bool {
	for _, n := range named {
		base := baseField(n.Field)
		if path == n.Field || path == base || strings.HasPrefix(path, base+".") || strings.HasPrefix(path, base+"[") {
			return true
		}
	}
	return false
}
