#!/usr/bin/env bash
# Prove that the released modules can be consumed the way a user consumes
# them: from a module proxy, at the version the go.mod files name, with no
# replace directive. CI runs it (.ci/run); run it by hand before a release:
#
#   ./scripts/consume-check.sh
#
# 1. Builds a file-based GOPROXY from HEAD (committed files only) with
#    integration/tools/release (golang.org/x/mod/zip, the zips the go
#    command makes from tags): every released module at the version its
#    siblings require (RELEASING.md). GOPROXY is that directory, then this
#    machine's module cache, then `go env GOPROXY`; GONOSUMDB skips the
#    checksum database for github.com/cloudtokens only (the versions are
#    not published), everything else is verified as usual.
# 2. In a fresh module outside the repository, with no replace, runs
#    `go get` of each adapter and the root module at that version, and
#    checks that the build list holds exactly those versions.
# 3. Builds and vets scripts/consume/testdata/main.go there (each adapter
#    with tokensource) and runs it: login, refresh, API call and revoke on
#    the gcpsmtest emulator, on moto_server and on a Vault dev server,
#    started by scripts/backends.sh (CLOUDTOKENS_SKIP_SERVERS=1: use the
#    endpoints in the environment; without them AWS and Vault are skipped
#    unless CI=true, where a missing backend fails).
# 4. Copies examples/lambda (from HEAD) out of the repository, drops its
#    replace lines, and runs go mod tidy, go build and go vet; the binary
#    must name the released versions.
#
# It uses a module cache of its own (CLOUDTOKENS_CONSUME_CACHE, default
# ~/.cache/cloudtokens/consume), kept between runs so that builds stay
# cached, with its github.com/cloudtokens entries removed first: the same
# version built from another commit must never be taken from a cache.
# Exit status 0 only if every step passed; the failing step is named.
set -euo pipefail
exec </dev/null

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
start=$(date +%s)
step_name="setup"

step() {
	step_name=$*
	echo
	echo "=== consume-check: $* ($(($(date +%s) - start))s)"
}

reported=false
fail() {
	echo >&2
	echo "consume-check: FAIL in step \"$step_name\": $*" >&2
	reported=true
	exit 1
}

ci=false
[[ "${CI:-}" == "true" || "${CI:-}" == "1" ]] && ci=true

cache=${CLOUDTOKENS_CONSUME_CACHE:-$HOME/.cache/cloudtokens/consume}
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9 # one run at a time per cache

work=$(mktemp -d "${TMPDIR:-/tmp}/consume-check.XXXXXX")
cleanup() {
	if declare -F backends_stop >/dev/null; then backends_stop; fi
	rm -rf "$work"
}
trap 'rc=$?; cleanup; ((rc == 0)) || $reported || echo "consume-check: FAIL in step \"$step_name\" (exit $rc)" >&2' EXIT

# --- 1. the proxy -------------------------------------------------------------
step "1. file GOPROXY from HEAD ($(git rev-parse --short HEAD))"
go -C integration/tools/release test -count=1 ./... || fail "the release tool's own tests fail"
version=$(go -C integration/tools/release run . -root "$root" version) || fail "the go.mod files do not agree on one version"
go -C integration/tools/release run . -root "$root" proxy -o "$work/proxy" || fail "could not build the proxy"

host_cache=$(go env GOMODCACHE)
export GOPROXY="file://$work/proxy,file://$host_cache/cache/download,$(go env GOPROXY)"
export GONOSUMDB="github.com/cloudtokens${GONOSUMDB:+,$GONOSUMDB}"
export GOMODCACHE="$cache/mod"
export GOFLAGS="$(go env GOFLAGS) -modcacherw"
export GOWORK=off
# The go command indexes the packages of each module in the module cache
# once, in GOCACHE, keyed by its directory, since a version never changes:
# here the same version is rebuilt from every commit, so an index from an
# earlier run would miss packages added since ("cannot find module
# providing package"). goindex=0 turns the index off.
export GODEBUG="goindex=0${GODEBUG:+,$GODEBUG}"
# Never the modules of an earlier run, which may hold other code.
rm -rf "$GOMODCACHE/github.com/cloudtokens" "$GOMODCACHE/cache/download/github.com/cloudtokens"
echo "version $version; GOPROXY=$GOPROXY GONOSUMDB=$GONOSUMDB GOMODCACHE=$GOMODCACHE"

# --- 2. go get ----------------------------------------------------------------
step "2. go get in a fresh module outside the repository"
consumer="$work/consumer"
mkdir -p "$consumer"
cd "$consumer"
go mod init example.com/consumer >/dev/null 2>&1
mapfile -t released < <(go -C "$root/integration/tools/release" run . -root "$root" modules | awk -F'\t' '$3 == "released" {print $2}')
for m in "${released[@]}"; do
	go get "$m@$version" || fail "go get $m@$version"
done
if grep -q '^replace' go.mod; then fail "the consumer's go.mod has a replace directive"; fi
got=$(go list -m -f '{{.Path}} {{.Version}}{{if .Replace}} => {{.Replace}}{{end}}' all | grep '^github.com/cloudtokens/' | sort)
want=$(printf '%s\n' "${released[@]}" | sed "s|\$| $version|" | sort)
echo "$got"
[[ "$got" == "$want" ]] || fail "the build list holds other cloudtokens modules or versions than: $(echo $want)"

# --- 3. a program on every adapter --------------------------------------------
step "3. build, vet and run scripts/consume/testdata/main.go (each adapter with tokensource)"
git -C "$root" show HEAD:scripts/consume/testdata/main.go >main.go
go mod tidy || fail "go mod tidy of the consumer"
go vet . || fail "go vet of the consumer"
go build -o consumer . || fail "go build of the consumer"
go version -m consumer | awk '$1 == "dep" && $2 ~ /^github.com\/cloudtokens\// {print "  " $2, $3}'
if go version -m consumer | awk '$1 == "dep" && $2 ~ /^github.com\/cloudtokens\// && $3 != v {bad = 1} END {exit !bad}' v="$version"; then
	fail "the binary names other cloudtokens versions than $version"
fi
require=""
if [[ "${CLOUDTOKENS_SKIP_SERVERS:-}" != 1 ]]; then
	# shellcheck source=scripts/backends.sh
	source "$root/scripts/backends.sh"
	if ! backends_start; then
		fail "the backends did not start"
	fi
fi
$ci && require=aws,vault
./consumer -require="$require" || fail "the consumer program failed"
if declare -F backends_stop >/dev/null; then backends_stop; fi

# --- 4. examples/lambda out of the repository ---------------------------------
step "4. examples/lambda copied out of the repository, without its replace lines"
lambda="$work/lambda"
mkdir -p "$lambda"
git -C "$root" archive HEAD examples/lambda | tar -x -C "$lambda" --strip-components=2
cd "$lambda"
for r in $(go mod edit -json | python3 -c 'import json, sys; print(" ".join(r["Old"]["Path"] for r in json.load(sys.stdin).get("Replace") or []))'); do
	go mod edit -dropreplace="$r"
done
if grep -q '^replace\|=>' go.mod; then fail "examples/lambda/go.mod still has a replace"; fi
go mod tidy || fail "go mod tidy of the copied examples/lambda"
go build -o bootstrap . || fail "go build of the copied examples/lambda"
go vet ./... || fail "go vet of the copied examples/lambda"
go version -m bootstrap | awk '$1 == "dep" && $2 ~ /^github.com\/cloudtokens\// {print "  " $2, $3}'
if go version -m bootstrap | awk '$1 == "dep" && $2 ~ /^github.com\/cloudtokens\// && $3 != v {bad = 1} $1 == "=>" {bad = 1} END {exit !bad}' v="$version"; then
	fail "the lambda binary names other cloudtokens versions than $version, or a replacement"
fi

step_name="done"
echo
echo "consume-check: ok: ${released[*]} at $version consumed from a proxy, in $(($(date +%s) - start))s"
