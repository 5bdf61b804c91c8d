package jsonschemas

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the checked-in schema files")

// TestSchemasMatchGoTypes fails when the checked-in schema files drift from
// the Go types. Run `go generate ./schemas/...` (or this test with -update)
// after changing an envelope.
func TestSchemasMatchGoTypes(t *testing.T) {
	got, err := Generate(true)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range got {
		if *update {
			if err := os.WriteFile(name, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		have, err := os.ReadFile(name)
		if err != nil {
			t.Fatalf("%s missing: run go generate ./schemas/... (%v)", name, err)
		}
		if !bytes.Equal(have, want) {
			t.Errorf("%s is out of date with the Go types: run go generate ./schemas/...", name)
		}
	}
	files, _ := filepath.Glob("*.schema.json")
	if len(files) != len(got) {
		t.Errorf("%d schema files on disk, %d envelopes: remove stale files", len(files), len(got))
	}
}
