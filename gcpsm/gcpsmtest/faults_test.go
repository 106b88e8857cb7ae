package gcpsmtest

import (
	"context"
	"errors"
	"testing"
	"time"

	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cloudtokens/cloudtokens/faultinject"
)

// Each fault reaches the official client as its real counterpart would,
// and the emulator sees exactly the calls that a real server would have.
func TestFaultInterceptor(t *testing.T) {
	srv := Start(t)
	inj := faultinject.New(faultinject.Config{MaxDelay: time.Minute})
	c, err := secretmanager.NewClient(t.Context(), append(srv.ClientOptions(), FaultClientOption(inj, "AddSecretVersion", "AccessSecretVersion"))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	// AddSecretVersion has no retry in the client's defaults: every
	// attempt is visible.
	ctx := t.Context()
	sec := createSecret(t, c, "faults", nil) // CreateSecret is not in methods: untouched
	add := func(ctx context.Context) error {
		_, err := c.AddSecretVersion(ctx, &secretmanagerpb.AddSecretVersionRequest{
			Parent: sec.GetName(), Payload: &secretmanagerpb.SecretPayload{Data: []byte("x")}})
		return err
	}
	for _, tc := range []struct {
		kind    faultinject.Kind
		code    codes.Code
		applied bool
	}{
		{faultinject.Drop, codes.Unavailable, false},
		{faultinject.LoseResponse, codes.Unavailable, true},
		{faultinject.ServerError, codes.Internal, false},
		{faultinject.Throttle, codes.ResourceExhausted, false},
		{faultinject.None, codes.OK, true},
	} {
		before := srv.CallCount("AddSecretVersion")
		inj.Script(tc.kind)
		err := add(ctx)
		if status.Code(err) != tc.code {
			t.Errorf("%v: %v, want %v", tc.kind, err, tc.code)
		}
		if got := srv.CallCount("AddSecretVersion") - before; got != map[bool]int{false: 0, true: 1}[tc.applied] {
			t.Errorf("%v: the server saw %d calls", tc.kind, got)
		}
	}
	// Two versions were applied: the lost one and the clean one.
	it := c.ListSecretVersions(ctx, &secretmanagerpb.ListSecretVersionsRequest{Parent: sec.GetName()})
	n := 0
	for {
		_, err := it.Next()
		if err != nil {
			break
		}
		n++
	}
	if n != 2 {
		t.Errorf("%d versions, want 2", n)
	}
	// A delay past the deadline ends with the context's status.
	inj.Script(faultinject.Delay)
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := add(short); status.Code(err) != codes.DeadlineExceeded && !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("delayed past the deadline: %v", err)
	}
	cnt := inj.Counts()
	if cnt.Requests != 6 || cnt.Faults() != 5 {
		t.Errorf("counts %v, want 6 requests and 5 faults", cnt)
	}
}
