package schema

import (
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"github.com/go-playground/validator/v10"
)

// Limits from PROTOCOL.md, in Unicode code points.
const (
	MaxText        = 7000
	MaxURL         = 2000
	MaxFileName    = 256
	MaxDescription = 256
	MaxAddress     = 256
	MaxTitle       = 256
	MaxReply       = 256
	MaxReplies     = 10
	MaxContactID   = 50
	MaxMID         = 50
	MaxName        = 50
	MaxEmail       = 50
	MaxPhone       = 18
	MaxEvents      = 20
	// MaxStatusMessage is the project's cap on a failure reason.
	MaxStatusMessage = 1000
)

var (
	// customIDPattern is the custom ID alphabet; E.164 numbers fit it too.
	customIDPattern = regexp.MustCompile(`^[A-Za-z0-9_=+/@]{1,50}$`)
	// e164Pattern: a leading "+", then 2 to 15 digits, the first not 0.
	e164Pattern = regexp.MustCompile(`^\+[1-9][0-9]{1,14}$`)
	// fileNamePattern: a non-empty name, a dot, then a 1–10 character
	// alphanumeric extension. The openapi.yaml pattern is the same.
	fileNamePattern = regexp.MustCompile(`^[^\r\n]+\.[A-Za-z0-9]{1,10}$`)
	localePattern   = regexp.MustCompile(`^[a-z]{2,3}([_-][A-Za-z0-9]{2,8})*$`)
)

// FieldError names one invalid field of a request or payload.
type FieldError struct {
	Field   string   `json:"field"`
	Rule    string   `json:"rule"`
	Limit   *float64 `json:"limit,omitempty"`
	Message string   `json:"message"`
}

// ValidationError lists every invalid field found.
type ValidationError struct {
	Fields []FieldError
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Field + ": " + f.Message
	}
	return "invalid: " + strings.Join(parts, "; ")
}

func invalid(fields ...FieldError) *ValidationError {
	return &ValidationError{Fields: fields}
}

var validate = newValidator()

func newValidator() *validator.Validate {
	v := validator.New(validator.WithRequiredStructEnabled())
	v.RegisterTagNameFunc(func(f reflect.StructField) string {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			return ""
		}
		return name
	})
	mustRegister(v, "httpurl", func(fl validator.FieldLevel) bool { return IsHTTPURL(fl.Field().String()) })
	mustRegister(v, "extension", func(fl validator.FieldLevel) bool { return fileNamePattern.MatchString(fl.Field().String()) })
	mustRegister(v, "locale", func(fl validator.FieldLevel) bool { return localePattern.MatchString(fl.Field().String()) })
	v.RegisterStructValidation(validateMessageUnion, Message{})
	return v
}

func mustRegister(v *validator.Validate, tag string, fn validator.Func) {
	if err := v.RegisterValidation(tag, fn); err != nil {
		panic(fmt.Sprintf("schema: register %s: %v", tag, err))
	}
}

// IsHTTPURL reports whether s is an absolute http or https URL with a host.
func IsHTTPURL(s string) bool {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return false
	}
	return u.Scheme == "http" || u.Scheme == "https"
}

// IsE164 reports whether s is a phone number in E.164 form (+ and up to 15 digits).
func IsE164(s string) bool { return e164Pattern.MatchString(s) }

// IsCustomID reports whether s is a valid BonyChat custom contact ID.
func IsCustomID(s string) bool { return customIDPattern.MatchString(s) }

// ValidContactID reports whether id is a valid contact ID for the ID type.
func ValidContactID(id string, t IDType) bool {
	if t == IDTypePhone {
		return IsE164(id)
	}
	return IsCustomID(id)
}

// ValidateMessageRequest checks a decoded /message body against every rule of
// the protocol for a channel of the given ID type.
func ValidateMessageRequest(r *MessageRequest, t IDType) error {
	fields := structErrors(validate.Struct(r))
	if r.ContactID != "" && !ValidContactID(r.ContactID, t) {
		fields = append(fields, contactIDError("contactId", t))
	}
	return orNil(fields)
}

// ValidatePayload checks a webhook payload before it is posted, so BonyChat
// never receives what it would refuse.
func ValidatePayload(p *WebhookPayload, t IDType) error {
	fields := structErrors(validate.Struct(p))
	if p.ContactID != "" && !ValidContactID(p.ContactID, t) {
		fields = append(fields, contactIDError("contactId", t))
	}
	for i, e := range p.Events {
		fields = append(fields, eventShapeErrors(fmt.Sprintf("events[%d]", i), e)...)
	}
	return orNil(fields)
}

// ValidateMessage checks one message object alone (used for inbound events).
func ValidateMessage(m *Message) error {
	return orNil(structErrors(validate.Struct(m)))
}

func orNil(fields []FieldError) error {
	if len(fields) == 0 {
		return nil
	}
	return invalid(fields...)
}

func contactIDError(field string, t IDType) FieldError {
	if t == IDTypePhone {
		return FieldError{Field: field, Rule: "e164", Message: "must be an E.164 phone number: + and up to 15 digits"}
	}
	return FieldError{Field: field, Rule: "contact_id", Limit: limit(MaxContactID),
		Message: "must be 1 to 50 characters of A-Z a-z 0-9 _ = + / @"}
}

func eventShapeErrors(path string, e Event) []FieldError {
	switch e.Type {
	case EventMessage, EventMessageEcho:
		if e.Message == nil {
			return []FieldError{{Field: path + ".message", Rule: "required", Message: "is required"}}
		}
		if e.Status != nil {
			return []FieldError{{Field: path + ".status", Rule: "not_allowed", Message: "only message_status events carry a status"}}
		}
	case EventMessageStatus:
		if e.Status == nil {
			return []FieldError{{Field: path + ".status", Rule: "required", Message: "is required"}}
		}
		if e.Message != nil {
			return []FieldError{{Field: path + ".message", Rule: "not_allowed", Message: "message_status events carry no message"}}
		}
	}
	return nil
}

func limit(n float64) *float64 { return &n }

// ValidateStruct checks v's validate tags (this package's rules: httpurl,
// extension, locale, besides the validator's own) and names every broken
// one as a FieldError with its JSON path: for the other JSON requests
// (console inbound), so their 400s carry details like /message's.
func ValidateStruct(v any) error {
	return orNil(structErrors(validate.Struct(v)))
}

// structErrors turns validator errors into FieldErrors with JSON paths.
func structErrors(err error) []FieldError {
	if err == nil {
		return nil
	}
	var verrs validator.ValidationErrors
	if !errors.As(err, &verrs) {
		return []FieldError{{Field: "", Rule: "invalid", Message: err.Error()}}
	}
	out := make([]FieldError, 0, len(verrs))
	typeInvalid := map[string]bool{}
	for _, fe := range verrs {
		if strings.HasSuffix(fe.StructNamespace(), "Message.Type") && fe.Tag() == "oneof" {
			typeInvalid[parentPath(jsonPath(fe.Namespace()))] = true
		}
	}
	for _, fe := range verrs {
		path := jsonPath(fe.Namespace())
		// With an unknown type, "required for type X" says nothing useful.
		if typeInvalid[parentPath(path)] && fe.Field() != "type" {
			continue
		}
		out = append(out, describe(path, fe))
	}
	return out
}

// jsonPath drops the root struct name: "MessageRequest.message.text" → "message.text".
func jsonPath(ns string) string {
	_, rest, found := strings.Cut(ns, ".")
	if !found {
		return ns
	}
	return rest
}

func parentPath(p string) string {
	i := strings.LastIndex(p, ".")
	if i < 0 {
		return ""
	}
	return p[:i]
}

func describe(path string, fe validator.FieldError) FieldError {
	f := FieldError{Field: path, Rule: fe.Tag()}
	param := fe.Param()
	switch fe.Tag() {
	case "required", "required_if":
		f.Rule, f.Message = "required", "is required"
	case "excluded_unless", "not_allowed":
		f.Rule, f.Message = "not_allowed", notAllowedMessage(fe)
	case "max":
		f.Limit, f.Message = parseLimit(param), maxMessage(fe, param)
	case "min":
		f.Limit, f.Message = parseLimit(param), minMessage(fe, param)
	case "len":
		f.Limit, f.Message = parseLimit(param), "must be exactly "+param+" characters"
	case "gte", "gt":
		f.Limit, f.Message = parseLimit(param), "must be at least "+param
	case "lte", "lt":
		f.Limit, f.Message = parseLimit(param), "must be at most "+param
	case "oneof":
		f.Message = "must be one of: " + strings.ReplaceAll(param, " ", ", ")
	case "httpurl":
		f.Rule, f.Message = "url", "must be an absolute http or https URL"
	case "extension":
		f.Message = "must end with a file extension, e.g. report.pdf"
	case "printascii":
		f.Message = "must be printable ASCII"
	default:
		f.Message = "fails rule " + fe.Tag()
	}
	return f
}

func notAllowedMessage(fe validator.FieldError) string {
	if fe.Field() == "description" {
		return "is only allowed when attachment.type is image"
	}
	return "is not allowed for this message type"
}

func maxMessage(fe validator.FieldError, p string) string {
	if fe.Kind() == reflect.Slice {
		return "must have at most " + p + " items"
	}
	return "must be at most " + p + " characters"
}

func minMessage(fe validator.FieldError, p string) string {
	if fe.Kind() == reflect.Slice {
		return "must have at least " + p + " item(s)"
	}
	if p == "1" {
		return "must not be empty"
	}
	return "must be at least " + p + " characters"
}

func parseLimit(p string) *float64 {
	n, err := strconv.ParseFloat(p, 64)
	if err != nil {
		return nil
	}
	return &n
}
