// Package gcpsmtest provides an in-process GCP Secret Manager v1 emulator.
package gcpsmtest

import (
	_ "cloud.google.com/go/secretmanager/apiv1"
	_ "cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	_ "google.golang.org/api/option"
	_ "google.golang.org/grpc"
	_ "google.golang.org/grpc/credentials/insecure"
)
