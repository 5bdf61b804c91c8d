package portal_test

import (
	"encoding/json"
	"net/http"
	"testing"
)

// TestOpenAIEndpointMounted: the portal serves the OpenAI-compatible
// endpoint on the shared server, behind the same API keys.
func TestOpenAIEndpointMounted(t *testing.T) {
	e := newEnv(t, nil)
	for _, path := range []string{"/v1/models", "/v1/chat/completions"} {
		method := http.MethodGet
		if path == "/v1/chat/completions" {
			method = http.MethodPost
		}
		req, _ := http.NewRequest(method, e.url+path, nil)
		req.Header.Set("Authorization", "Bearer wbk_wrong")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Error struct{ Message, Type, Code string }
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusUnauthorized || body.Error.Type != "authentication_error" || body.Error.Code != "invalid_api_key" {
			t.Fatalf("%s: %d %+v %v", path, resp.StatusCode, body, err)
		}
	}
}
