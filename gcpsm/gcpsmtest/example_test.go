package gcpsmtest_test

import (
	"context"
	"fmt"
	"log"
	"strconv"
	"strings"
	"time"

	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/cloudtokens/cloudtokens/gcpsm/gcpsmtest"
)

// Start the emulator, point the official client at it, create a secret, add a
// version and read it back through the "latest" alias. In a test, use
// gcpsmtest.Start(t) instead of New/Close.
func Example() {
	ctx := context.Background()
	srv, err := gcpsmtest.New()
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	client, err := secretmanager.NewClient(ctx, srv.ClientOptions()...)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	secret, err := client.CreateSecret(ctx, &secretmanagerpb.CreateSecretRequest{
		Parent:   "projects/my-project",
		SecretId: "oauth-token",
		Secret: &secretmanagerpb.Secret{
			Replication: &secretmanagerpb.Replication{
				Replication: &secretmanagerpb.Replication_Automatic_{Automatic: &secretmanagerpb.Replication_Automatic{}},
			},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	version, err := client.AddSecretVersion(ctx, &secretmanagerpb.AddSecretVersionRequest{
		Parent:  secret.Name,
		Payload: &secretmanagerpb.SecretPayload{Data: []byte(`{"access_token":"ya29.example"}`)},
	})
	if err != nil {
		log.Fatal(err)
	}
	resp, err := client.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{
		Name: secret.Name + "/versions/latest",
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(version.Name)
	fmt.Println(string(resp.Payload.Data))
	fmt.Println("AccessSecretVersion calls:", srv.CallCount("AccessSecretVersion"))
	// Output:
	// projects/my-project/secrets/oauth-token/versions/1
	// {"access_token":"ya29.example"}
	// AccessSecretVersion calls: 1
}

// WithEventualConsistency on a simulated clock: right after the alias
// moves, reads through the alias still see the old version, while access
// by version number sees the new one at once, as the Secret Manager
// documentation allows. Once the clock has moved past the lag, every read
// is fresh.
func ExampleWithEventualConsistency() {
	ctx := context.Background()
	clock := gcpsmtest.NewManualClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	srv, err := gcpsmtest.New(gcpsmtest.WithClock(clock.Now), gcpsmtest.WithEventualConsistency(2*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	client, err := secretmanager.NewClient(ctx, srv.ClientOptions()...)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	secret, err := client.CreateSecret(ctx, &secretmanagerpb.CreateSecretRequest{
		Parent:   "projects/my-project",
		SecretId: "token",
		Secret: &secretmanagerpb.Secret{Replication: &secretmanagerpb.Replication{
			Replication: &secretmanagerpb.Replication_Automatic_{Automatic: &secretmanagerpb.Replication_Automatic{}},
		}},
	})
	if err != nil {
		log.Fatal(err)
	}
	setCurrent := func(data string) {
		v, err := client.AddSecretVersion(ctx, &secretmanagerpb.AddSecretVersionRequest{
			Parent: secret.Name, Payload: &secretmanagerpb.SecretPayload{Data: []byte(data)},
		})
		if err != nil {
			log.Fatal(err)
		}
		n, _ := strconv.ParseInt(v.Name[strings.LastIndexByte(v.Name, '/')+1:], 10, 64)
		secret, err = client.UpdateSecret(ctx, &secretmanagerpb.UpdateSecretRequest{
			Secret:     &secretmanagerpb.Secret{Name: secret.Name, Etag: secret.Etag, VersionAliases: map[string]int64{"current": n}},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"version_aliases"}},
		})
		if err != nil {
			log.Fatal(err)
		}
	}
	read := func(version string) string {
		r, err := client.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: secret.Name + "/versions/" + version})
		if err != nil {
			return status.Code(err).String()
		}
		return string(r.Payload.Data)
	}

	setCurrent("one")
	clock.Advance(time.Minute)
	setCurrent("two")
	fmt.Println("current:", read("current"), "| version 2:", read("2"))
	clock.Advance(2 * time.Second)
	fmt.Println("current:", read("current"))
	// Output:
	// current: one | version 2: two
	// current: two
}
