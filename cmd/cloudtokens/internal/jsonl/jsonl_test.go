package jsonl

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cloudtokens/cloudtokens/tokenstore"
)

func TestWriteReadRoundTrip(t *testing.T) {
	tokens := []*tokenstore.Token{
		{ID: "zz", UserName: "zed", RefreshToken: "rt-z", ClientID: "C", ClientSecret: "S"},
		{ID: "aa", UserName: "ann", AccessToken: "at-a", Expiry: time.UnixMilli(1767225600000).UTC(), APIDomain: "https://api"},
	}
	var first bytes.Buffer
	if err := Write(&first, tokens); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(first.String(), "\n"), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `"id":"aa"`) {
		t.Fatalf("not one sorted document per line:\n%s", first.String())
	}
	items, err := Read(bytes.NewReader(first.Bytes()))
	if err != nil || len(items) != 2 {
		t.Fatalf("Read: %d items, %v", len(items), err)
	}
	var back []*tokenstore.Token
	for _, it := range items {
		if it.Err != nil {
			t.Fatalf("%s: %v", it.Pos, it.Err)
		}
		back = append(back, it.Token)
	}
	var second bytes.Buffer
	if err := Write(&second, back); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first.Bytes(), second.Bytes()) {
		t.Fatalf("round trip changed the bytes:\n%s\n%s", first.String(), second.String())
	}
}

func TestReadBadLines(t *testing.T) {
	long := `{"format":1,"id":"big","access_token":"` + strings.Repeat("x", tokenstore.MaxDocumentSize) + `"}`
	in := strings.Join([]string{
		`{"format":1,"id":"a1","access_token":"at"}`,
		``,
		`{"format":1,"id":"a2","access_token":"secret-value"`, // truncated
		long,
		`{"format":9,"id":"a3","access_token":"at"}`,
		`{"format":1,"id":"a4","refresh_token":"rt"}`,
	}, "\r\n")
	items, err := Read(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 5 {
		t.Fatalf("got %d items, want 5 (the blank line skipped)", len(items))
	}
	want := []struct {
		pos string
		bad bool
	}{{"line 1", false}, {"line 3", true}, {"line 4", true}, {"line 5", true}, {"line 6", false}}
	for i, w := range want {
		if items[i].Pos != w.pos || (items[i].Err != nil) != w.bad {
			t.Errorf("item %d: %s err=%v, want %s bad=%v", i, items[i].Pos, items[i].Err, w.pos, w.bad)
		}
		if items[i].Err != nil {
			if !errors.Is(items[i].Err, ErrBadLine) || strings.Contains(items[i].Err.Error(), "secret-value") {
				t.Errorf("item %d: error %v", i, items[i].Err)
			}
		}
	}
	if items[4].Token.ID != "a4" {
		t.Errorf("last item %+v", items[4])
	}
}
