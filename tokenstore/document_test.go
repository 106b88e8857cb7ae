package tokenstore_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cloudtokens/cloudtokens/tokenstore"
)

func fullToken() *tokenstore.Token {
	return &tokenstore.Token{
		ID: "abc123", UserName: "Zoë@example.com", ClientID: "1000.CID", ClientSecret: "cs",
		RefreshToken: "rt", AccessToken: "at", GrantToken: "gt",
		Expiry:      time.Date(2030, 1, 2, 3, 4, 5, 678_000_000, time.UTC),
		RedirectURL: "https://app.example.com/cb", APIDomain: "https://www.zohoapis.com",
	}
}

func TestDocumentRoundTrip(t *testing.T) {
	for name, in := range map[string]*tokenstore.Token{
		"full":    fullToken(),
		"minimal": {ID: "x", AccessToken: "a"},
		"unicode": {ID: "u", UserName: "東京 🚀", RefreshToken: "r\u0000\"\\"},
	} {
		b, err := tokenstore.MarshalDocument(in)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out, err := tokenstore.UnmarshalDocument(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !out.Expiry.Equal(in.Expiry) {
			t.Fatalf("%s: expiry %v, want %v", name, out.Expiry, in.Expiry)
		}
		out.Expiry = in.Expiry
		if *out != *in {
			t.Fatalf("%s: round trip gave %#v, want %#v", name, out, in)
		}
	}
}

// TestDocumentWireFormat pins the field names and units a Python or Java
// reader relies on.
func TestDocumentWireFormat(t *testing.T) {
	b, err := tokenstore.MarshalDocument(fullToken())
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"format": 1.0, "id": "abc123", "user_name": "Zoë@example.com", "client_id": "1000.CID",
		"client_secret": "cs", "refresh_token": "rt", "access_token": "at", "grant_token": "gt",
		"expiry_time":  float64(time.Date(2030, 1, 2, 3, 4, 5, 678_000_000, time.UTC).UnixMilli()),
		"redirect_url": "https://app.example.com/cb", "api_domain": "https://www.zohoapis.com",
	}
	if len(m) != len(want) {
		t.Fatalf("document has fields %v, want %v", m, want)
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("field %q = %v, want %v", k, m[k], v)
		}
	}
	// A document written by another language decodes.
	py := `{"format":1,"id":"py1","user_name":"u","access_token":"a","expiry_time":1700000000000,"extra_field":"ignored"}`
	got, err := tokenstore.UnmarshalDocument([]byte(py))
	if err != nil || got.UserName != "u" || got.Expiry.UnixMilli() != 1700000000000 {
		t.Fatalf("foreign document: %v, %v", got, err)
	}
}

func TestDocumentErrors(t *testing.T) {
	cases := map[string]struct {
		in   string
		want error
	}{
		"empty":             {"", tokenstore.ErrMalformed},
		"not json":          {"secret-token-value", tokenstore.ErrMalformed},
		"array":             {`["at"]`, tokenstore.ErrMalformed},
		"no format":         {`{"id":"a","access_token":"at"}`, tokenstore.ErrMalformed},
		"newer format":      {`{"format":2,"id":"a"}`, tokenstore.ErrUnsupportedVersion},
		"wrong type":        {`{"format":1,"expiry_time":"soon"}`, tokenstore.ErrMalformed},
		"trailing data":     {`{"format":1,"id":"a"} {"x":1}`, tokenstore.ErrMalformed},
		"bad id":            {`{"format":1,"id":"../etc"}`, tokenstore.ErrMalformed},
		"truncated":         {`{"format":1,"access_token":"SECRETVALUE`, tokenstore.ErrMalformed},
		"format not number": {`{"format":"1"}`, tokenstore.ErrMalformed},
	}
	for name, c := range cases {
		_, err := tokenstore.UnmarshalDocument([]byte(c.in))
		if !errors.Is(err, c.want) {
			t.Errorf("%s: error %v, want %v", name, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "SECRETVALUE") {
			t.Errorf("%s: error quotes the input: %v", name, err)
		}
	}
	if !errors.Is(tokenstore.ErrUnsupportedVersion, tokenstore.ErrMalformed) {
		t.Error("ErrUnsupportedVersion should wrap ErrMalformed")
	}
}

func TestDocumentSizeLimit(t *testing.T) {
	tok := &tokenstore.Token{ID: "a", AccessToken: strings.Repeat("x", tokenstore.MaxDocumentSize)}
	if _, err := tokenstore.MarshalDocument(tok); !errors.Is(err, tokenstore.ErrTooLarge) {
		t.Fatalf("oversized document: %v", err)
	}
	tok.AccessToken = strings.Repeat("x", 60_000)
	if _, err := tokenstore.MarshalDocument(tok); err != nil {
		t.Fatalf("60 KB document: %v", err)
	}
}

func FuzzDocument(f *testing.F) {
	b, _ := tokenstore.MarshalDocument(fullToken())
	f.Add(b)
	f.Add([]byte(`{"format":1}`))
	f.Add([]byte(`{"format":9,"id":"a"}`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tok, err := tokenstore.UnmarshalDocument(data)
		if err != nil {
			if !errors.Is(err, tokenstore.ErrMalformed) {
				t.Fatalf("decode error %v does not wrap ErrMalformed", err)
			}
			return
		}
		// Whatever decodes must re-encode and decode to the same token.
		again, err := tokenstore.MarshalDocument(tok)
		if errors.Is(err, tokenstore.ErrTooLarge) {
			return
		}
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		back, err := tokenstore.UnmarshalDocument(again)
		if err != nil {
			t.Fatalf("decode of re-encoded document: %v", err)
		}
		if !back.Expiry.Equal(tok.Expiry) {
			t.Fatalf("expiry changed: %v vs %v", back.Expiry, tok.Expiry)
		}
		back.Expiry = tok.Expiry
		if *back != *tok {
			t.Fatalf("round trip changed the token")
		}
	})
}
