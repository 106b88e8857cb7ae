#!/usr/bin/env bash
# Run every test of every module against real backends:
#
#   ./scripts/test.sh [go test flags...]     e.g. ./scripts/test.sh -run Conformance -v
#
# 1. starts moto_server (AWS Secrets Manager) and a Vault dev server (built
#    once per machine by scripts/build-vault.sh, then cached) on loopback and
#    exports CLOUDTOKENS_AWS_ENDPOINT, AWS_*, CLOUDTOKENS_VAULT_ADDR/_TOKEN,
#    VAULT_ADDR/VAULT_TOKEN (see scripts/backends.sh); when cmd/cloudtokens
#    is among the modules, also a private MariaDB (scripts/mariadb.sh, which
#    installs mariadb-server if missing) and exports CLOUDTOKENS_MYSQL_DSN;
# 2. runs `go test -count=1 -race` over ./... in every module (each directory
#    with a go.mod, except integration/tools/*; integration's aws, gcp and
#    vault packages, which spawn processes against the servers, without
#    -race), going on past failures;
# 3. prints a per-module summary and a closing count line; exits non-zero if
#    any module failed.
#
# Settings:
#   CLOUDTOKENS_SKIP_SERVERS=1   start nothing; use the endpoints already in the environment
#   CLOUDTOKENS_RACE=0           no -race (default: on when cgo works)
#   CLOUDTOKENS_TEST_TIMEOUT=20m go test -timeout per test binary
#   CLOUDTOKENS_MODULES="awssm vault"  only these module dirs ("." is the root)
#   CI=true                      a backend that cannot start fails the run (and
#                                tests fail rather than skip without one)
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit 1

ci=false
[[ "${CI:-}" == "true" || "${CI:-}" == "1" ]] && ci=true

# --- modules -----------------------------------------------------------------
if [[ -n "${CLOUDTOKENS_MODULES:-}" ]]; then
	read -r -a modules <<<"$CLOUDTOKENS_MODULES"
else
	mapfile -t modules < <(
		find . \( -name .git -o -name node_modules -o -name testdata -o -name vendor \
			-o -path ./integration/tools \) -prune -o -name go.mod -print |
			sed -e 's|^\./||' -e 's|/\?go\.mod$||' -e 's|^$|.|' |
			awk '{ o = ($0 == ".") ? 0 : ($0 ~ /^integration/) ? 2 : ($0 ~ /^examples/) ? 3 : 1; print o "\t" $0 }' |
			sort -k1,1n -k2 | cut -f2
	)
fi
if ((${#modules[@]} == 0)); then
	echo "test.sh: no go.mod found" >&2
	exit 1
fi

# --- backends ----------------------------------------------------------------
# MariaDB (scripts/mariadb.sh) only when cmd/cloudtokens is tested: its
# import of the Zoho DBStore table from MySQL needs it.
need_mysql=false
printf '%s\n' "${modules[@]}" | grep -qx 'cmd/cloudtokens' && need_mysql=true
if [[ "${CLOUDTOKENS_SKIP_SERVERS:-}" == 1 ]]; then
	echo "test.sh: CLOUDTOKENS_SKIP_SERVERS=1: using endpoints from the environment" >&2
else
	# shellcheck source=scripts/backends.sh
	source "$root/scripts/backends.sh"
	# shellcheck source=scripts/mariadb.sh
	source "$root/scripts/mariadb.sh"
	trap 'backends_stop; mariadb_stop' EXIT
	trap 'exit 130' INT TERM
	if ! backends_start; then
		echo "test.sh: FAIL: backends did not start" >&2
		exit 1
	fi
	if $need_mysql && ! mariadb_start; then
		if $ci; then
			echo "test.sh: FAIL: MariaDB did not start (CI=true)" >&2
			exit 1
		fi
		echo "test.sh: WARNING: MariaDB did not start; the MySQL import tests will skip" >&2
	fi
fi
server_vars=(CLOUDTOKENS_AWS_ENDPOINT CLOUDTOKENS_VAULT_ADDR)
$need_mysql && server_vars+=(CLOUDTOKENS_MYSQL_DSN)
for v in "${server_vars[@]}"; do
	if [[ -n "${!v:-}" ]]; then
		val=${!v}
		[[ $v == CLOUDTOKENS_MYSQL_DSN ]] && val="${val%%:*}:xxx@${val#*@}" # no password in logs
		echo "test.sh: $v=$val" >&2
	else
		echo "test.sh: $v unset: those tests will $($ci && echo FAIL || echo skip)" >&2
	fi
done

# --- go test -----------------------------------------------------------------
flags=(-count=1 "-timeout=${CLOUDTOKENS_TEST_TIMEOUT:-20m}")
# norace_flags: the runs below that leave -race out on purpose.
norace_flags=("${flags[@]}")
if [[ "${CLOUDTOKENS_RACE:-1}" != 0 && "$(go env CGO_ENABLED)" == 1 ]] && command -v "$(go env CC)" >/dev/null 2>&1; then
	flags+=(-race)
fi

# Formats `go test -json` like plain `go test` (output of passing tests
# hidden, failures and skip reasons shown) and prints a count line to fd 3.
summarize='
import json, sys
counts = {"pass": 0, "fail": 0, "skip": 0}
buf = {}
slow = []  # tests of 30 s or more: (seconds, package.Test)
def out(s):
    sys.stdout.write(s); sys.stdout.flush()
for line in sys.stdin:
    try:
        ev = json.loads(line)
    except ValueError:
        out(line); continue
    act, pkg, test, text = ev.get("Action"), ev.get("Package") or ev.get("ImportPath", ""), ev.get("Test"), ev.get("Output", "")
    if act == "build-output":
        out(text); continue
    if test:
        key = (pkg, test)
        if act == "output":
            buf.setdefault(key, []).append(text)
        elif act in counts:
            counts[act] += 1
            if "/" not in test and ev.get("Elapsed", 0) >= 30:
                slow.append((ev["Elapsed"], pkg.rsplit("/", 1)[-1] + "." + test))
            lines = buf.pop(key, [])
            if act != "pass":
                out("".join(lines))
        continue
    if act == "output":
        if text.strip() != "PASS":
            out(text)
    elif act in ("pass", "fail", "skip"):
        # Tests cut short (panic, timeout) never report: show what they said.
        for k in [k for k in buf if k[0] == pkg]:
            out("".join(buf.pop(k)))
if slow:
    slow.sort(reverse=True)
    out("slowest tests: " + ", ".join("%s %.0fs" % (name, secs) for secs, name in slow[:8]) + "\n")
with open(3, "w") as f:
    f.write("%d %d %d\n" % (counts["pass"], counts["fail"], counts["skip"]))
'
use_json=true
command -v python3 >/dev/null || use_json=false

summary=()
total_pass=0 total_fail=0 total_skip=0 failed_modules=0
start_all=$(date +%s)
countfile=$(mktemp)
# run_tests LABEL DIR GO-TEST-ARGS...: one go test run, summarised.
run_tests() {
	local name=$1 dir=$2
	shift 2
	echo
	echo "=== $name: go test $*"
	local start rc p f s secs status
	start=$(date +%s)
	if $use_json; then
		: >"$countfile"
		(cd "$dir" && go test -json "$@") 2>&1 | python3 -u -c "$summarize" 3>"$countfile"
		rc=${PIPESTATUS[0]}
		read -r p f s <"$countfile" || { p=0 f=0 s=0; }
	else
		(cd "$dir" && go test "$@")
		rc=$?
		p=0 f=0 s=0
	fi
	secs=$(($(date +%s) - start))
	# A build failure, panic or timeout fails a module without a failed test
	# being reported: count it as one failure so the count line says so.
	((rc != 0 && f == 0)) && f=1
	total_pass=$((total_pass + p)) total_fail=$((total_fail + f)) total_skip=$((total_skip + s))
	if ((rc == 0)); then
		status=ok
	else
		status=FAIL
		failed_modules=$((failed_modules + 1))
	fi
	summary+=("$(printf '%-5s %-28s %5ss  %5d passed %4d failed %4d skipped' "$status" "$name" "$secs" "$p" "$f" "$s")")
}

for m in "${modules[@]}"; do
	name=$m
	[[ "$m" == . ]] && name="(root)"
	# The integration packages that run one backend each (aws, gcp, vault)
	# spawn processes that load a server (moto_server, Vault, gcpsmtest) at
	# once: under the race detector every one of them takes 5-10 times the
	# CPU, and on a 2-core machine the servers starve and the tests measure
	# the machine, not the store. They run without -race; the engine's and
	# the adapters' concurrency is race-tested in their own modules.
	if [[ "$m" == integration && " ${flags[*]} " == *" -race "* ]]; then
		mapfile -t race_pkgs < <(cd "$m" && dir=$(pwd) && go list -f '{{.Dir}}' ./... | grep -Ev "^$dir/(aws|gcp|vault)\$" | sed "s|^$dir|.|")
		run_tests "module $name" "$m" "${flags[@]}" "$@" "${race_pkgs[@]}"
		run_tests "$name aws gcp vault, no -race" "$m" "${norace_flags[@]}" "$@" ./aws/ ./gcp/ ./vault/
		continue
	fi
	run_tests "module $name" "$m" "${flags[@]}" "$@" ./...
	# The engine's scale tests skip under the race detector, which makes
	# them ten times slower: run them once more without it.
	if [[ "$m" == . && " ${flags[*]} " == *" -race "* && " $* " != *" -run"* ]]; then
		run_tests "(root) scale, no -race" . "${norace_flags[@]}" -run '^TestScale' "$@" ./tokenstore/casstore/
	fi
done
rm -f "$countfile"

echo
echo "=== summary (${#modules[@]} modules, $(($(date +%s) - start_all))s, go test ${flags[*]} $*)"
printf '%s\n' "${summary[@]}"
if ((failed_modules > 0)); then
	echo "test.sh: FAIL: $failed_modules of ${#summary[@]} test runs failed"
else
	echo "test.sh: ok: all ${#modules[@]} modules passed"
fi
# Counts are of tests and subtests that reported a result.
echo "tests: $total_pass passed, $total_fail failed, $total_skip skipped"
((failed_modules == 0))
