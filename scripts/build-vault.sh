#!/usr/bin/env bash
# Build the real HashiCorp Vault server (pinned in integration/tools/vault)
# once per machine and print the path of the binary.
#
#   ./scripts/build-vault.sh            # build if needed, print path
#   CLOUDTOKENS_CACHE=/some/dir ./scripts/build-vault.sh
#
# The binary lives in ${CLOUDTOKENS_CACHE:-$HOME/.cache/cloudtokens}/vault-<version>/vault
# and is rebuilt when the version or the hash of the tools module's
# go.mod/go.sum/main.go changes (recorded in vault.key beside it).
# Cold build: several minutes on 2 cores. Progress goes to stderr; only the
# path goes to stdout.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tooldir="$root/integration/tools/vault"

version=$(sed -n -E 's#^(require)?[[:space:]]*github.com/hashicorp/vault (v[^ ]+).*#\2#p' "$tooldir/go.mod" | head -n1)
if [[ -z "$version" ]]; then
	echo "build-vault: cannot find the github.com/hashicorp/vault version in $tooldir/go.mod" >&2
	exit 1
fi
key="$version $(cat "$tooldir/go.mod" "$tooldir/go.sum" "$tooldir/main.go" | sha256sum | cut -c1-64) $(go env GOOS GOARCH | tr '\n' ' ')"

cache=${CLOUDTOKENS_CACHE:-$HOME/.cache/cloudtokens}
outdir="$cache/vault-$version"
bin="$outdir/vault"
mkdir -p "$outdir"

fresh() { [[ -x "$bin" && -f "$outdir/vault.key" && "$(cat "$outdir/vault.key")" == "$key" ]]; }

if ! fresh; then
	# Serialise concurrent builds (e.g. two test runs at once).
	exec 9>"$outdir/.lock"
	flock 9
	if ! fresh; then
		echo "build-vault: building vault $version into $bin (slow: several minutes on 2 cores)..." >&2
		start=$(date +%s)
		tmp="$outdir/vault.tmp.$$"
		trap 'rm -f "$tmp"' EXIT
		(cd "$tooldir" && go build -mod=readonly -buildvcs=false -trimpath -ldflags "-s -w" -o "$tmp" .)
		"$tmp" version >&2
		mv -f "$tmp" "$bin"
		printf '%s' "$key" >"$outdir/vault.key"
		echo "build-vault: built in $(($(date +%s) - start))s, $(du -h "$bin" | cut -f1)" >&2
	fi
	flock -u 9
fi

echo "$bin"
