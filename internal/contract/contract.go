// Package contract checks HTTP exchanges against openapi.yaml (with
// kin-openapi), so tests in any package keep the spec and the code in step.
// Only tests import it.
package contract

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// Host is the server URL of openapi.yaml; spec routing matches on it.
const Host = "http://127.0.0.1:8080"

var (
	once    sync.Once
	doc     *openapi3.T
	router  routers.Router
	loadErr error
)

// SpecPath is where openapi.yaml lives: the module root.
func SpecPath() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "openapi.yaml")
}

// Spec loads and validates openapi.yaml once.
func Spec(tb testing.TB) (*openapi3.T, routers.Router) {
	tb.Helper()
	once.Do(func() {
		// TwiML answers are XML text: check them as strings.
		openapi3filter.RegisterBodyDecoder("text/xml", openapi3filter.PlainBodyDecoder)
		doc, loadErr = openapi3.NewLoader().LoadFromFile(SpecPath())
		if loadErr == nil {
			loadErr = doc.Validate(context.Background())
		}
		if loadErr == nil {
			router, loadErr = gorillamux.NewRouter(doc)
		}
	})
	if loadErr != nil {
		tb.Fatalf("openapi.yaml: %v", loadErr)
	}
	return doc, router
}

// Exchange is one request and the answer it got.
type Exchange struct {
	BasePath   string // the configured base_path, stripped before matching
	Method     string
	RequestURI string // path and query as the server saw them
	Header     http.Header
	Body       []byte
	Status     int
	RespHeader http.Header
	RespBody   []byte
}

// Check validates an exchange: the response must be documented for its
// route and match its schema; a request the spec refuses must not be
// accepted. A route the spec lacks must answer 404 or 405 with the error body.
func Check(tb testing.TB, x Exchange) {
	tb.Helper()
	_, router := Spec(tb)
	specURI := strings.TrimPrefix(x.RequestURI, x.BasePath)
	if x.BasePath != "" && !strings.HasPrefix(x.RequestURI, x.BasePath) {
		specURI = "/__outside_base_path__" + x.RequestURI
	}
	req, _ := http.NewRequest(x.Method, Host+specURI, bytes.NewReader(x.Body))
	req.Header = x.Header.Clone()
	route, params, err := router.FindRoute(req)
	if err != nil {
		checkUnrouted(tb, x)
		return
	}
	opts := &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	reqErr := openapi3filter.ValidateRequest(context.Background(), in)
	if x.Status < 300 && reqErr != nil {
		tb.Errorf("contract: %s %s answered %d to a request openapi.yaml refuses: %v", x.Method, x.RequestURI, x.Status, reqErr)
	}
	respOpts := &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true,
		// Media bodies are bytes of any type; their status and headers are still checked.
		ExcludeResponseBody: strings.HasPrefix(specURI, "/media/")}
	rin := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: x.Status, Header: x.RespHeader,
		Options: respOpts}
	rin.SetBodyBytes(x.RespBody)
	if err := openapi3filter.ValidateResponse(context.Background(), rin); err != nil {
		tb.Errorf("contract: %s %s response %d does not match openapi.yaml: %v\nbody: %s", x.Method, x.RequestURI, x.Status, err, x.RespBody)
	}
}

func checkUnrouted(tb testing.TB, x Exchange) {
	tb.Helper()
	if x.Status != http.StatusNotFound && x.Status != http.StatusMethodNotAllowed {
		tb.Errorf("contract: %s %s is not in openapi.yaml but answered %d", x.Method, x.RequestURI, x.Status)
		return
	}
	ValidateSchema(tb, "ErrorResponse", x.RespBody)
}

// ValidateSchema checks a JSON document against a components schema.
func ValidateSchema(tb testing.TB, name string, document []byte) {
	tb.Helper()
	spec, _ := Spec(tb)
	ref := spec.Components.Schemas[name]
	if ref == nil {
		tb.Fatalf("contract: openapi.yaml has no schema %s", name)
	}
	var v any
	if err := json.Unmarshal(document, &v); err != nil {
		tb.Errorf("contract: %s is not JSON: %v", name, err)
		return
	}
	if err := ref.Value.VisitJSON(v, openapi3.EnableJSONSchema2020(), openapi3.MultiErrors()); err != nil {
		tb.Errorf("contract: document does not match %s: %v\n%s", name, err, document)
	}
}

// Handler wraps next so that every exchange it serves is checked.
func Handler(tb testing.TB, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		header := r.Header.Clone()
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		Check(tb, Exchange{Method: r.Method, RequestURI: r.URL.RequestURI(), Header: header, Body: body,
			Status: rec.Code, RespHeader: rec.Header(), RespBody: rec.Body.Bytes()})
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	})
}
