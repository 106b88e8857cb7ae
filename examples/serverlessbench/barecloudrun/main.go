// Command barecloudrun is the baseline for the Cloud Run example's
// measurements: a bare net/http service that does the same job the usual
// hand-written way. Every request reads the access token from one Secret
// Manager secret (SECRET, a version name such as
// projects/P/secrets/S/versions/latest, JSON {"access_token": "..."}) and
// calls API_URL with it. It never refreshes the token.
package main

import (
	"context"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"os"

	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

func main() {
	ctx := context.Background()
	var copts []option.ClientOption
	if ep := os.Getenv("CLOUDTOKENS_GCP_ENDPOINT"); ep != "" {
		copts = append(copts, option.WithEndpoint(ep), option.WithoutAuthentication(),
			option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())))
	}
	client, err := secretmanager.NewClient(ctx, copts...)
	if err != nil {
		log.Fatal(err)
	}
	secret, apiURL := os.Getenv("SECRET"), os.Getenv("API_URL")
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		out, err := client.AccessSecretVersion(r.Context(), &secretmanagerpb.AccessSecretVersionRequest{Name: secret})
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		if err := json.Unmarshal(out.GetPayload().GetData(), &tok); err != nil {
			http.Error(w, "the secret is not a token", http.StatusInternalServerError)
			return
		}
		req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, apiURL, nil)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]int{"status": resp.StatusCode})
	})
	log.Fatal(http.ListenAndServe(":"+port, nil))
}
