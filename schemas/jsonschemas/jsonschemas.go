// Package jsonschemas generates the JSON Schema files of the public envelopes
// from their Go types and validates outside JSON against the checked-in copies.
// The files are checked in so that code in any language can validate against
// them; a test fails when they drift from the Go types.
package jsonschemas

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"path"
	"sort"
	"sync"

	"github.com/invopop/jsonschema"
	sjsonschema "github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/waddlebot/waddlebot/schemas"
)

// BaseURL prefixes every schema's $id.
const BaseURL = "https://waddlebot.dev/schemas/"

// Envelopes names each public envelope's schema file after the type.
var Envelopes = map[string]any{
	"event":        &schemas.Event{},
	"invocation":   &schemas.Invocation{},
	"result":       &schemas.Result{},
	"reply":        &schemas.Reply{},
	"overlay_item": &schemas.OverlayItem{},
	"dead_letter":  &schemas.DeadLetter{},
	"api_request":  &schemas.APIRequest{},
	"api_response": &schemas.APIResponse{},
	"manifest":     &schemas.Manifest{},
}

// Names lists the envelope names in a stable order.
func Names() []string {
	names := make([]string, 0, len(Envelopes))
	for n := range Envelopes {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// FileName is the schema file of an envelope.
func FileName(name string) string { return name + ".schema.json" }

// Generate renders the schema of every envelope. With withComments, it must run
// in this package's directory (as its test does): the schemas package's Go
// doc comments, read from "..", become descriptions.
func Generate(withComments bool) (map[string][]byte, error) {
	r := &jsonschema.Reflector{ExpandedStruct: true}
	if withComments {
		// The library joins this base with the walked directory, so ".." from
		// here names github.com/waddlebot/waddlebot/schemas.
		if err := r.AddGoComments("github.com/waddlebot/waddlebot/schemas/jsonschemas", ".."); err != nil {
			return nil, fmt.Errorf("jsonschemas: unable to read comments: %w", err)
		}
	}
	out := make(map[string][]byte, len(Envelopes))
	for _, name := range Names() {
		s := r.Reflect(Envelopes[name])
		s.ID = jsonschema.ID(BaseURL + FileName(name))
		s.Title = name
		b, err := json.MarshalIndent(s, "", "  ")
		if err != nil {
			return nil, fmt.Errorf("jsonschemas: unable to render %s: %w", name, err)
		}
		out[FileName(name)] = append(b, '\n')
	}
	return out, nil
}

//go:embed *.schema.json
var files embed.FS

// File returns a checked-in schema file.
func File(name string) ([]byte, error) { return files.ReadFile(FileName(name)) }

var (
	compileOnce sync.Once
	compiled    map[string]*sjsonschema.Schema
	compileErr  error
)

func compileAll() {
	c := sjsonschema.NewCompiler()
	compiled = map[string]*sjsonschema.Schema{}
	for _, name := range Names() {
		b, err := File(name)
		if err != nil {
			compileErr = fmt.Errorf("jsonschemas: missing %s: %w", FileName(name), err)
			return
		}
		doc, err := sjsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			compileErr = fmt.Errorf("jsonschemas: unable to parse %s: %w", FileName(name), err)
			return
		}
		if err := c.AddResource(BaseURL+FileName(name), doc); err != nil {
			compileErr = fmt.Errorf("jsonschemas: unable to add %s: %w", FileName(name), err)
			return
		}
	}
	for _, name := range Names() {
		s, err := c.Compile(BaseURL + FileName(name))
		if err != nil {
			compileErr = fmt.Errorf("jsonschemas: unable to compile %s: %w", FileName(name), err)
			return
		}
		compiled[name] = s
	}
}

// Validate checks raw JSON from outside code against the named envelope's
// checked-in schema. It is for boundaries (external modules' results, events
// published by hand); the hot path uses the Go types' Validate.
func Validate(name string, data []byte) error {
	compileOnce.Do(compileAll)
	if compileErr != nil {
		return compileErr
	}
	s, ok := compiled[name]
	if !ok {
		return fmt.Errorf("jsonschemas: no schema named %q", name)
	}
	doc, err := sjsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("%w: not JSON: %v", schemas.ErrInvalid, err)
	}
	if err := s.Validate(doc); err != nil {
		return fmt.Errorf("%w: %s: %v", schemas.ErrInvalid, path.Base(name), err)
	}
	return nil
}
