package awssm

import (
	"crypto/rand"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

// throttlingCodes are the error codes that every call of this package adds
// to the client's retryer as retryable: Secrets Manager's answer to a rate
// quota (ThrottlingException) and to a request that the service cannot
// take at the moment (LimitExceededException). The standard retryer
// already retries both as throttling errors; a custom retryer may not.
var throttlingCodes = []string{"ThrottlingException", "LimitExceededException"}

// retryThrottling is a per-call option: it wraps the client's own retryer
// (its attempts, backoff and retry quota stay as configured) so that it
// also retries throttlingCodes.
func retryThrottling(o *secretsmanager.Options) {
	if o.Retryer != nil {
		o.Retryer = retry.AddWithErrorCodes(o.Retryer, throttlingCodes...)
	}
}

// newRequestToken returns a random version 4 UUID for a
// ClientRequestToken (AWS wants 32 to 64 characters and recommends a
// UUID).
func newRequestToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
