// Package bench is the performance harness of cloudtokens: the targets
// (the memory store, AWS Secrets Manager on moto_server or LocalStack,
// Vault, and the GCP Secret Manager emulator), each with its official SDK
// client instrumented to count every request at the transport, and the
// raw SDK calls that each store operation reduces to.
//
// Every store a [Target] opens gets a counting casstore.Backend wrapper
// (through the adapters' WithBackendWrapper), so the harness sees both
// what the engine asks for (Backend calls: reads, creates, updates, the
// index buckets a split creates, compare-and-swap writes that lost) and
// what goes over the wire (requests). [Track] gives an operation a
// context whose calls count in its own [Tally], so operations can be
// measured one by one even while others run. [StoreOptions].Wrap puts a
// casstoretest wrapper (StaleBackend, QuotaBackend) under the counter,
// and [Target.OpenEngine] builds the engine directly on an adapter's
// backend when a run needs an engine option that the adapters do not
// offer (a simulated clock).
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
