package providers

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/bonychat/bonychat-adapter/schema"
)

// ErrorBody is the JSON error shape of every endpoint.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail carries a readable message and, for validation, one entry per field.
type ErrorDetail struct {
	Message string              `json:"message"`
	Details []schema.FieldError `json:"details,omitempty"`
}

// WriteJSON writes v as a JSON response.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// WriteError writes the JSON error shape.
func WriteError(w http.ResponseWriter, status int, message string, details ...schema.FieldError) {
	WriteJSON(w, status, ErrorBody{Error: ErrorDetail{Message: message, Details: details}})
}

// WriteInvalid writes a 400 for a validation error, or the generic message.
func WriteInvalid(w http.ResponseWriter, err error) {
	var verr *schema.ValidationError
	if errors.As(err, &verr) {
		WriteError(w, http.StatusBadRequest, InvalidSummary(verr.Fields), verr.Fields...)
		return
	}
	WriteError(w, http.StatusBadRequest, err.Error())
}

// InvalidSummary is the message of a 400 that lists fields in its details:
// the first problem in words (the message may be all a BonyChat agent
// sees), and how many more the details hold.
func InvalidSummary(fields []schema.FieldError) string {
	if len(fields) == 0 {
		return "invalid request"
	}
	first := fields[0]
	msg := "invalid request: " + first.Message
	if first.Field != "" {
		msg = "invalid request: " + first.Field + ": " + first.Message
	}
	switch n := len(fields) - 1; n {
	case 0:
		return msg
	case 1:
		return msg + " (and 1 more problem, see details)"
	default:
		return fmt.Sprintf("%s (and %d more problems, see details)", msg, n)
	}
}

// ReadJSONBody checks that a request carries JSON and reads its body, whose
// size the adapter has already capped. It writes the error answer (415 or
// 400) itself and reports false when the request must stop here. A body
// over the cap is a 400 naming "body" (PROTOCOL: refused like any other
// out-of-bounds input).
func ReadJSONBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if !IsJSON(r.Header.Get("Content-Type")) {
		WriteError(w, http.StatusUnsupportedMediaType, "Content-Type must be application/json")
		return nil, false
	}
	body, err := io.ReadAll(r.Body)
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		limit := float64(tooBig.Limit)
		tooLarge := schema.FieldError{Field: "body", Rule: "max", Limit: &limit,
			Message: fmt.Sprintf("is larger than %d bytes", tooBig.Limit)}
		WriteError(w, http.StatusBadRequest, InvalidSummary([]schema.FieldError{tooLarge}), tooLarge)
		return nil, false
	case err != nil:
		WriteError(w, http.StatusBadRequest, "could not read the request body")
		return nil, false
	}
	return body, true
}

// IsJSON reports whether a Content-Type header names JSON.
func IsJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && (mt == "application/json" || (len(mt) > 5 && mt[len(mt)-5:] == "+json"))
}

// NewMID returns a new message ID: a ULID, 26 characters, unique and sortable
// by creation time.
func NewMID() string { return ulid.Make().String() }

// NowMillis is the current time as the protocol's timestamps want it.
func NowMillis() int64 { return time.Now().UnixMilli() }

// IngestError is an Ingester failure with the HTTP status a webhook should
// answer, so the provider retries (5xx) or the caller learns what is wrong.
type IngestError struct {
	Status  int
	Message string
	Err     error
}

func (e *IngestError) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

func (e *IngestError) Unwrap() error { return e.Err }

// IngestStatus gives the status and readable message for an Ingest error.
func IngestStatus(err error) (int, string) {
	var ie *IngestError
	if errors.As(err, &ie) {
		return ie.Status, ie.Message
	}
	return http.StatusServiceUnavailable, "events could not be taken; try again"
}

// IsHTTPURL reports whether s is an absolute http or https URL with a host.
func IsHTTPURL(s string) bool { return schema.IsHTTPURL(s) }
