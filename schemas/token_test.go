package schemas

import (
	"strings"
	"testing"
	"unicode"
)

func TestEncodeToken(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"", "="},
		{"demo", "demo"},
		{"123456789", "123456789"},
		{"C01AB-x_y", "C01AB-x_y"},
		{"#general", "=23general"},
		{"a.b", "a=2Eb"},
		{"a b", "a=20b"},
		{"*", "=2A"},
		{">", "=3E"},
		{"=", "=3D"},
		{"é", "=C3=A9"},
	}
	for _, tt := range tests {
		got := EncodeToken(tt.in)
		if got != tt.want {
			t.Errorf("EncodeToken(%q) = %q, want %q", tt.in, got, tt.want)
		}
		back, err := DecodeToken(got)
		if err != nil || back != tt.in {
			t.Errorf("DecodeToken(%q) = %q, %v; want %q", got, back, err, tt.in)
		}
	}
}

func TestDecodeTokenRejects(t *testing.T) {
	for _, bad := range []string{"", "a.b", "a b", "=4", "=zz", "=41", "a=", "*", ">", "=3d"} {
		if _, err := DecodeToken(bad); err == nil {
			t.Errorf("DecodeToken(%q) accepted a token EncodeToken never makes", bad)
		}
	}
}

// FuzzToken checks that every string encodes to one valid subject token and
// decodes back exactly, and that decoding never accepts two spellings.
func FuzzToken(f *testing.F) {
	for _, s := range []string{"", "demo", "#general", "a.b.c", "=", "=41", "\x00", "日本"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok := EncodeToken(s)
		if tok == "" || strings.ContainsAny(tok, ".*>") || strings.IndexFunc(tok, unicode.IsSpace) >= 0 {
			t.Fatalf("EncodeToken(%q) = %q is not a subject token", s, tok)
		}
		back, err := DecodeToken(tok)
		if err != nil || back != s {
			t.Fatalf("round trip %q -> %q -> %q, %v", s, tok, back, err)
		}
		// Any token that decodes must re-encode to itself: one spelling per string.
		if dec, err := DecodeToken(s); err == nil && EncodeToken(dec) != s {
			t.Fatalf("DecodeToken(%q) = %q re-encodes to %q", s, dec, EncodeToken(dec))
		}
	})
}

func BenchmarkEncodeToken(b *testing.B) {
	for _, s := range []string{"123456789", "#general chat"} {
		b.Run(s, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				EncodeToken(s)
			}
		})
	}
}
