// Command barelambda is the baseline for the Lambda example's
// measurements: a bare aws-lambda-go function that does the same job the
// usual hand-written way. Every invocation reads the access token from one
// Secrets Manager secret (SECRET_ID, JSON {"access_token": "..."}) and
// calls API_URL with it. It never refreshes the token.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

type response struct {
	Status int `json:"status"`
}

func main() {
	cfg, err := config.LoadDefaultConfig(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	sm := secretsmanager.NewFromConfig(cfg)
	secretID, apiURL := os.Getenv("SECRET_ID"), os.Getenv("API_URL")
	lambda.Start(func(ctx context.Context, _ json.RawMessage) (*response, error) {
		out, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(secretID)})
		if err != nil {
			return nil, err
		}
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		if err := json.Unmarshal([]byte(aws.ToString(out.SecretString)), &tok); err != nil {
			return nil, fmt.Errorf("the secret is not a token: %w", err)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, apiURL, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return &response{Status: resp.StatusCode}, nil
	})
}
