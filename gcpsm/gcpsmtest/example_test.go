package gcpsmtest_test

import (
	"context"
	"fmt"
	"log"

	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"

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
