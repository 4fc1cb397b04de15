package adapter

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/routers"

	"github.com/bonychat/bonychat-adapter/internal/contract"
)

// The contract: every exchange a handler test makes is checked against
// openapi.yaml (internal/contract), so the spec cannot drift from the code.

func contractSpec(t testing.TB) (*openapi3.T, routers.Router) { return contract.Spec(t) }

// specHost is the server URL of openapi.yaml; spec routing matches on it.
const specHost = contract.Host

func checkExchange(t testing.TB, basePath, method, path string, header http.Header, reqBody []byte, rec *httptest.ResponseRecorder) {
	t.Helper()
	contract.Check(t, contract.Exchange{BasePath: basePath, Method: method, RequestURI: path, Header: header, Body: reqBody,
		Status: rec.Code, RespHeader: rec.Header(), RespBody: rec.Body.Bytes()})
}

func validateSchema(t testing.TB, name string, doc []byte) { contract.ValidateSchema(t, name, doc) }

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
	raw, err := os.ReadFile(contract.SpecPath())
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
