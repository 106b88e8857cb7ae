// Package bench is the performance harness of cloudtokens: the targets
// (the memory store, AWS Secrets Manager on moto_server or LocalStack,
// Vault, and the GCP Secret Manager emulator), each with its official SDK
// client instrumented to count every request at the transport, and the
// raw SDK calls that each store operation reduces to.
//
// cmd/tokenbench uses it to print the tables of BENCHMARKS.md; its
// benchmarks (go test -bench . ./bench) time the hot paths of each
// adapter for benchstat:
//
//	go test -run '^$' -bench . -count 10 ./bench > new.txt
//	benchstat old.txt new.txt
//
// A benchmark whose backend is not configured is skipped (see
// CLOUDTOKENS_AWS_ENDPOINT, CLOUDTOKENS_VAULT_ADDR/CLOUDTOKENS_VAULT_TOKEN;
// the GCP emulator and the memory store always run).
package bench
