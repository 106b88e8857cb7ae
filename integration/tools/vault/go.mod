// Build-only module for the Vault dev server used by the integration tests.
// See scripts/build-vault.sh. Not imported by any other module.
module github.com/cloudtokens/cloudtokens/integration/tools/vault

go 1.25

require github.com/hashicorp/vault v1.21.0

replace (
	github.com/99designs/keyring => github.com/Jeffail/keyring v1.2.3
	github.com/hashicorp/vault/api => github.com/hashicorp/vault/api v1.22.0
	github.com/hashicorp/vault/sdk => github.com/hashicorp/vault/sdk v0.20.0
	github.com/ma314smith/signedxml v1.1.1 => github.com/moov-io/signedxml v1.1.1
)
