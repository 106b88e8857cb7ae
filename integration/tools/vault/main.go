// Command vault builds the real HashiCorp Vault server from its Go module so
// that integration tests can run against `vault server -dev` without Docker.
// It is pinned in this directory's go.mod and built by scripts/build-vault.sh;
// it is not part of any other module's build.
package main

import (
	"os"

	"github.com/hashicorp/vault/command"
)

func main() {
	os.Exit(command.Run(os.Args[1:]))
}
