package progress

import (
	"bytes"
	"strconv"
	"testing"
)

// The bar itself is tested on a real terminal (tty_linux_test.go).
func TestPlainLines(t *testing.T) {
	var b bytes.Buffer
	r := New(&b, false)
	r.Start("copying", 25)
	for range 25 {
		r.Add(1)
	}
	r.Done()
	want := "copying: 0/25\n"
	for _, n := range []int{2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 25} {
		want += "copying: " + strconv.Itoa(n) + "/25\n"
	}
	if b.String() != want {
		t.Fatalf("got:\n%s\nwant:\n%s", b.String(), want)
	}
	// Nothing to do: nothing printed.
	b.Reset()
	r.Start("copying", 0)
	r.Done()
	if b.Len() != 0 {
		t.Fatalf("empty task printed %q", b.String())
	}
}
