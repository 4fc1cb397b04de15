package adapter

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// The contract: every exchange a handler test makes is checked against
// openapi.yaml, so the spec cannot drift from the code.

var (
	specOnce   sync.Once
	specDoc    *openapi3.T
	specRouter routers.Router
	specErr    error
)

func contractSpec(t testing.TB) (*openapi3.T, routers.Router) {
	t.Helper()
	specOnce.Do(func() {
		loader := openapi3.NewLoader()
		specDoc, specErr = loader.LoadFromFile("../openapi.yaml")
		if specErr == nil {
			specErr = specDoc.Validate(context.Background())
		}
		if specErr == nil {
			specRouter, specErr = gorillamux.NewRouter(specDoc)
		}
	})
	if specErr != nil {
		t.Fatalf("openapi.yaml: %v", specErr)
	}
	return specDoc, specRouter
}

// specHost is the server URL of openapi.yaml; spec routing matches on it.
const specHost = "http://127.0.0.1:8080"

// checkExchange validates one request/response pair against the spec:
// the response must be documented for its route and match its schema; a
// request the spec refuses must not be accepted, and an accepted request
// must be one the spec allows.
func checkExchange(t testing.TB, basePath, method, path string, header http.Header, reqBody []byte, rec *httptest.ResponseRecorder) {
	t.Helper()
	_, router := contractSpec(t)
	specPath := strings.TrimPrefix(path, basePath)
	if basePath != "" && !strings.HasPrefix(path, basePath) {
		specPath = "/__outside_base_path__" + path
	}
	req, _ := http.NewRequest(method, specHost+specPath, bytes.NewReader(reqBody))
	req.Header = header.Clone()
	route, params, err := router.FindRoute(req)
	if err != nil {
		checkUnroutedResponse(t, method, path, rec)
		return
	}
	opts := &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	reqErr := openapi3filter.ValidateRequest(context.Background(), in)
	status := rec.Code
	if status < 300 && reqErr != nil {
		t.Errorf("contract: %s %s answered %d to a request openapi.yaml refuses: %v", method, path, status, reqErr)
	}
	respOpts := &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true,
		// Media bodies are bytes of any type; their status and headers are still checked.
		ExcludeResponseBody: !strings.Contains(rec.Header().Get("Content-Type"), "json")}
	rin := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: status, Header: rec.Header(),
		Options: respOpts}
	rin.SetBodyBytes(rec.Body.Bytes())
	if err := openapi3filter.ValidateResponse(context.Background(), rin); err != nil {
		t.Errorf("contract: %s %s response %d does not match openapi.yaml: %v\nbody: %s", method, path, status, err, rec.Body.String())
	}
}

// checkUnroutedResponse: a path the spec lacks must be answered 404 or 405
// with the documented error body.
func checkUnroutedResponse(t testing.TB, method, path string, rec *httptest.ResponseRecorder) {
	t.Helper()
	if rec.Code != http.StatusNotFound && rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("contract: %s %s is not in openapi.yaml but answered %d", method, path, rec.Code)
		return
	}
	validateSchema(t, "ErrorResponse", rec.Body.Bytes())
}

// validateSchema checks a JSON document against a components schema.
func validateSchema(t testing.TB, name string, doc []byte) {
	t.Helper()
	spec, _ := contractSpec(t)
	ref := spec.Components.Schemas[name]
	if ref == nil {
		t.Fatalf("contract: openapi.yaml has no schema %s", name)
	}
	var v any
	if err := json.Unmarshal(doc, &v); err != nil {
		t.Errorf("contract: %s is not JSON: %v", name, err)
		return
	}
	if err := ref.Value.VisitJSON(v, openapi3.EnableJSONSchema2020(), openapi3.MultiErrors()); err != nil {
		t.Errorf("contract: document does not match %s: %v\n%s", name, err, doc)
	}
}

// TestContractEveryRouteIsInSpec fails when the server has a route that
// openapi.yaml does not describe.
func TestContractEveryRouteIsInSpec(t *testing.T) {
	spec, _ := contractSpec(t)
	h := newHarness(t, func(c *Config) { c.Demo.Platform = true })
	for _, r := range h.srv.engine.Routes() {
		path := gorillaPath(r.Path)
		item := spec.Paths.Find(path)
		if item == nil || item.GetOperation(r.Method) == nil {
			t.Errorf("route %s %s is served but not described in openapi.yaml", r.Method, r.Path)
		}
	}
}

// TestContractSpecDescribesOnlyServedRoutes fails when openapi.yaml
// describes an operation the server does not serve.
func TestContractSpecDescribesOnlyServedRoutes(t *testing.T) {
	spec, _ := contractSpec(t)
	h := newHarness(t, func(c *Config) { c.Demo.Platform = true })
	served := map[string]bool{}
	for _, r := range h.srv.engine.Routes() {
		served[r.Method+" "+gorillaPath(r.Path)] = true
	}
	for path, item := range spec.Paths.Map() {
		for method := range item.Operations() {
			if !served[method+" "+path] {
				t.Errorf("openapi.yaml describes %s %s, which the server does not serve", method, path)
			}
		}
	}
}

// gorillaPath turns gin's ":param" segments into OpenAPI's "{param}".
func gorillaPath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		if strings.HasPrefix(s, ":") {
			parts[i] = "{" + s[1:] + "}"
		}
	}
	return strings.Join(parts, "/")
}

// TestContractSpecFileIsTheOneServed guards against testing a stale copy.
func TestContractSpecFileIsTheOneServed(t *testing.T) {
	raw, err := os.ReadFile("../openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(raw, []byte("openapi: 3.1")) {
		t.Fatal("openapi.yaml must be OpenAPI 3.1")
	}
	spec, _ := contractSpec(t)
	if spec.Webhooks == nil || spec.Webhooks["bonychatWebhook"] == nil {
		t.Fatal("openapi.yaml must describe the BonyChat webhook under webhooks:")
	}
}

func readAll(t testing.TB, r io.Reader) []byte {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
