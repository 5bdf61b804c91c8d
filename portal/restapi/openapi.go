package restapi

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"

	"github.com/invopop/jsonschema"
)

// OpenAPI renders the OpenAPI 3.1 document of the API from the route
// table the server serves, so the two cannot drift apart.
func (s *Server) OpenAPI() map[string]any {
	r := &jsonschema.Reflector{DoNotReference: true, ExpandedStruct: true, AllowAdditionalProperties: false}
	schemaOf := func(v any) any {
		if m, ok := v.(map[string]any); ok && len(m) == 0 {
			return map[string]any{"type": "object", "description": "the module's settings, as its JSON Schema describes them"}
		}
		sch := r.ReflectFromType(reflect.TypeOf(v))
		sch.Version = ""
		sch.ID = ""
		return sch
	}
	errRef := map[string]any{"$ref": "#/components/schemas/Error"}
	errResp := func(desc string) any {
		return map[string]any{"description": desc, "content": map[string]any{"application/json": map[string]any{"schema": errRef}}}
	}
	paths := map[string]map[string]any{}
	for _, rt := range s.routes {
		op := map[string]any{
			"operationId": operationID(rt),
			"summary":     rt.Summary,
			"description": describe(rt),
			"security":    []any{map[string]any{"apiKey": []string{}}},
			"x-scopes":    []string{rt.Scope},
		}
		var params []any
		for _, seg := range strings.Split(rt.Path, "/") {
			if strings.HasPrefix(seg, "{") {
				params = append(params, map[string]any{"name": strings.Trim(seg, "{}"), "in": "path", "required": true,
					"schema": map[string]any{"type": "string"}})
			}
		}
		if rt.List {
			params = append(params,
				map[string]any{"name": "limit", "in": "query", "schema": map[string]any{"type": "integer", "minimum": 1, "maximum": maxLimit, "default": defaultLimit}},
				map[string]any{"name": "cursor", "in": "query", "description": "next_cursor of the previous page", "schema": map[string]any{"type": "string"}})
		}
		if params != nil {
			op["parameters"] = params
		}
		if rt.Body != nil {
			op["requestBody"] = map[string]any{"required": true,
				"content": map[string]any{"application/json": map[string]any{"schema": schemaOf(rt.Body)}}}
		}
		ok := map[string]any{"description": "done"}
		if rt.Out != nil {
			out := schemaOf(rt.Out)
			if rt.List {
				out = map[string]any{"type": "object", "required": []string{"items"}, "properties": map[string]any{
					"items": map[string]any{"type": "array", "items": out}, "next_cursor": map[string]any{"type": "string"}}}
			}
			ok["content"] = map[string]any{"application/json": map[string]any{"schema": out}}
		}
		responses := map[string]any{
			"401": errResp("no API key, or an unknown, expired or revoked one"),
			"403": errResp("the key lacks the scope, belongs to another community, or its owner lacks the role"),
			"429": map[string]any{"description": "the key's rate limit is spent; see Retry-After",
				"headers": map[string]any{"Retry-After": map[string]any{"schema": map[string]any{"type": "integer"}}},
				"content": map[string]any{"application/json": map[string]any{"schema": errRef}}},
		}
		switch rt.Method {
		case http.MethodPost:
			responses["201"] = ok
		case http.MethodDelete:
			responses["204"] = map[string]any{"description": "done"}
		default:
			responses["200"] = ok
		}
		if rt.Body != nil || rt.List {
			responses["400"] = errResp("bad JSON, unknown fields, or a bad limit or cursor")
		}
		if rt.Body != nil {
			responses["422"] = errResp("the input breaks a rule; details name the fields")
			responses["409"] = errResp("the change conflicts with what is there")
		}
		if strings.Contains(rt.Path, "{") {
			responses["404"] = errResp("no such community or item")
		}
		op["responses"] = responses
		p := Base + rt.Path
		if paths[p] == nil {
			paths[p] = map[string]any{}
		}
		paths[p][strings.ToLower(rt.Method)] = op
	}
	paths[Base+"/openapi.json"] = map[string]any{"get": map[string]any{"operationId": "openapi", "summary": "This document",
		"security": []any{}, "responses": map[string]any{"200": map[string]any{"description": "the OpenAPI document",
			"content": map[string]any{"application/json": map[string]any{"schema": map[string]any{"type": "object"}}}}}}}
	return map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{"title": "WaddleBot API", "version": "1.0.0",
			"description": "Manage WaddleBot communities with an API key made in the portal (/portal/apikeys). " +
				"Errors are {\"error\": {\"code\", \"message\", \"details\"}}; lists are paged with limit and cursor."},
		"paths": paths,
		"components": map[string]any{
			"securitySchemes": map[string]any{"apiKey": map[string]any{"type": "http", "scheme": "bearer", "bearerFormat": "wbk_…"}},
			"schemas": map[string]any{"Error": map[string]any{"type": "object", "required": []string{"error"},
				"properties": map[string]any{"error": map[string]any{"type": "object", "required": []string{"code", "message"},
					"properties": map[string]any{"code": map[string]any{"type": "string"}, "message": map[string]any{"type": "string"},
						"details": map[string]any{"type": "object"}}}}}},
		},
	}
}

func describe(rt route) string {
	d := "Needs scope " + rt.Scope + "."
	if rt.Role != "" {
		d += " The key's owner needs the " + rt.Role + " role (or super-admin) in the community."
	}
	return d
}

func operationID(rt route) string {
	var b strings.Builder
	b.WriteString(strings.ToLower(rt.Method))
	for _, seg := range strings.Split(rt.Path, "/") {
		seg = strings.Trim(seg, "{}")
		if seg == "" {
			continue
		}
		b.WriteString(strings.ToUpper(seg[:1]) + seg[1:])
	}
	return b.String()
}

func (s *Server) openAPIHandler(w http.ResponseWriter, r *http.Request) {
	s.openAPIOnce.Do(func() { s.openAPIDoc, s.openAPIErr = json.MarshalIndent(s.OpenAPI(), "", "  ") })
	if s.openAPIErr != nil {
		s.log.Error("restapi: unable to render the OpenAPI document", "error", s.openAPIErr)
		writeError(w, fail(http.StatusInternalServerError, "internal", "The document could not be rendered.", nil))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(s.openAPIDoc)
}
