#!/usr/bin/env bash
# Start the real test backends on loopback: moto_server (AWS Secrets Manager)
# and a Vault dev server (built by scripts/build-vault.sh).
#
# Sourced (what scripts/test.sh does):
#   source scripts/backends.sh
#   backends_start || exit 1     # starts both, exports the variables below
#   trap backends_stop EXIT
#
# Run directly, for working by hand: it starts both, prints the export
# lines, and keeps them running until Ctrl-C:
#   ./scripts/backends.sh            # then paste the printed exports
# With fixed ports and token, the lines the READMEs show work as written:
#   CLOUDTOKENS_MOTO_PORT=5000 CLOUDTOKENS_VAULT_PORT=8200 CLOUDTOKENS_VAULT_ROOT_TOKEN=cloudtokens-dev ./scripts/backends.sh
#
# Exports:
#   CLOUDTOKENS_AWS_ENDPOINT=http://127.0.0.1:PORT
#   AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
#   CLOUDTOKENS_VAULT_ADDR / VAULT_ADDR=http://127.0.0.1:PORT
#   CLOUDTOKENS_VAULT_TOKEN / VAULT_TOKEN=the root token         (KV v2 at secret/)
#   CLOUDTOKENS_VAULT_RAW=1   the dev server serves sys/raw (raw_storage_endpoint),
#                             with which vault's TestCutShortPurge plants the state a
#                             killed client leaves; never enable it in production
#
# Settings:
#   CLOUDTOKENS_BACKENDS="aws vault"   which backends to start
#   CLOUDTOKENS_MOTO_PORT=5000         moto_server's port (default: a free port)
#   CLOUDTOKENS_VAULT_PORT=8200        the Vault dev server's port (default: a free port)
#   CLOUDTOKENS_VAULT_ROOT_TOKEN=...   its root token (default: root-<32 random hex digits>);
#                                      a dev server keeps everything in memory, on loopback
#   A fixed port that is taken is an error that names the setting (no
#   other port is tried: the printed address must be the one asked for).
#   CLOUDTOKENS_VAULT_BIN=/path/vault  use this vault binary instead of building one
#   CI=true                            a backend that cannot start is an error
#                                      (always so when run directly);
#                                      otherwise it is reported and left unset
#                                      (its tests then skip)
#   CLOUDTOKENS_BACKENDS_KEEP_LOGS=1   keep the log directory after stopping
#
# Logs go to $CLOUDTOKENS_BACKENDS_DIR (a temp dir); on a failed start the
# tail of the server's log is printed.

_backends_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
_backends_pids=()

_backends_log() { echo "backends: $*" >&2; }

_backends_ci() { [[ "${CI:-}" == "true" || "${CI:-}" == "1" ]]; }

# A free TCP port on 127.0.0.1 (the kernel picks it).
_backends_free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# _backends_port NAME SETTING: the port to try: $SETTING if set (checked to
# be a free port number), else a free one. Returns 1 with a message that
# names SETTING when the fixed port is not usable.
_backends_port() {
	local name=$1 setting=$2 port=${!2:-}
	if [[ -z "$port" ]]; then
		_backends_free_port
		return
	fi
	if ! [[ "$port" =~ ^[0-9]+$ ]] || ((port < 1 || port > 65535)); then
		_backends_log "$setting=$port is not a port number"
		return 1
	fi
	if ! python3 -c 'import socket, sys; s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.close()' "$port" 2>/dev/null; then
		_backends_log "$name: port $port ($setting) is in use, by an earlier server or another program: stop it, or pick another $setting"
		return 1
	fi
	echo "$port"
}

# _backends_wait_http URL PID TIMEOUT_SECONDS: wait until URL answers with HTTP
# 200 while PID is alive.
_backends_wait_http() {
	local url=$1 pid=$2 timeout=$3 deadline code
	deadline=$(($(date +%s) + timeout))
	while (($(date +%s) < deadline)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			_backends_log "process $pid exited before $url answered"
			return 1
		fi
		code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$url" 2>/dev/null || true)
		[[ "$code" == 200 ]] && return 0
		sleep 0.2
	done
	_backends_log "$url did not answer 200 within ${timeout}s (last status ${code:-none})"
	return 1
}

# _backends_spawn LOG CMD...: start CMD in its own process group (setsid execs
# in place, so the PID is the server's); its PID goes to _backends_last_pid.
_backends_spawn() {
	local log=$1
	shift
	if command -v setsid >/dev/null; then
		setsid "$@" </dev/null >"$log" 2>&1 &
	else
		"$@" </dev/null >"$log" 2>&1 &
	fi
	_backends_last_pid=$!
}

_backends_kill() {
	local pid=$1
	kill -0 "$pid" 2>/dev/null || return 0
	# setsid made the server a group leader: end the group, else the process.
	kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
	for _ in $(seq 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

_backends_fail_log() {
	local name=$1 log=$2
	_backends_log "$name failed to start; last lines of $log:"
	tail -n 40 "$log" >&2 || true
}

backends_start_aws() {
	local port pid log
	if ! command -v moto_server >/dev/null; then
		_backends_log "moto_server not found on PATH (pip install 'moto[server]')"
		return 1
	fi
	log="$CLOUDTOKENS_BACKENDS_DIR/moto.log"
	for _ in 1 2 3; do
		port=$(_backends_port moto_server CLOUDTOKENS_MOTO_PORT) || return 1
		_backends_spawn "$log" moto_server -H 127.0.0.1 -p "$port"
		pid=$_backends_last_pid
		if _backends_wait_http "http://127.0.0.1:$port/moto-api/data.json" "$pid" 60; then
			_backends_pids+=("$pid")
			export CLOUDTOKENS_AWS_ENDPOINT="http://127.0.0.1:$port"
			export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
			export AWS_DEFAULT_REGION=us-east-1
			_backends_log "moto_server (moto $(python3 -c 'import moto; print(moto.__version__)' 2>/dev/null)) pid $pid at $CLOUDTOKENS_AWS_ENDPOINT (log $log)"
			return 0
		fi
		_backends_kill "$pid"
		[[ -z "${CLOUDTOKENS_MOTO_PORT:-}" ]] || break # the fixed port, or nothing
		grep -qi 'address already in use' "$log" 2>/dev/null || break
	done
	_backends_fail_log moto_server "$log"
	return 1
}

backends_start_vault() {
	local bin port pid log token
	bin=${CLOUDTOKENS_VAULT_BIN:-}
	if [[ -z "$bin" ]]; then
		bin=$("$_backends_root/scripts/build-vault.sh") || {
			_backends_log "building vault failed"
			return 1
		}
	fi
	log="$CLOUDTOKENS_BACKENDS_DIR/vault.log"
	# sys/raw for the tests that plant storage states (loopback, in memory).
	echo 'raw_storage_endpoint = true' >"$CLOUDTOKENS_BACKENDS_DIR/vault.hcl"
	token=${CLOUDTOKENS_VAULT_ROOT_TOKEN:-"root-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"}
	for _ in 1 2 3; do
		port=$(_backends_port vault CLOUDTOKENS_VAULT_PORT) || return 1
		# env -u: a VAULT_* from the caller must not steer the dev server.
		_backends_spawn "$log" env -u VAULT_ADDR -u VAULT_TOKEN -u VAULT_NAMESPACE \
			"$bin" server -dev -dev-no-store-token -config="$CLOUDTOKENS_BACKENDS_DIR/vault.hcl" \
			-dev-root-token-id="$token" -dev-listen-address="127.0.0.1:$port"
		pid=$_backends_last_pid
		if _backends_wait_http "http://127.0.0.1:$port/v1/sys/health" "$pid" 60; then
			_backends_pids+=("$pid")
			export CLOUDTOKENS_VAULT_ADDR="http://127.0.0.1:$port" CLOUDTOKENS_VAULT_TOKEN="$token" CLOUDTOKENS_VAULT_RAW=1
			export VAULT_ADDR="$CLOUDTOKENS_VAULT_ADDR" VAULT_TOKEN="$token"
			_backends_log "vault $("$bin" version 2>/dev/null | head -n1) pid $pid at $VAULT_ADDR (log $log)"
			return 0
		fi
		_backends_kill "$pid"
		[[ -z "${CLOUDTOKENS_VAULT_PORT:-}" ]] || break # the fixed port, or nothing
		grep -qi 'address already in use' "$log" 2>/dev/null || break
	done
	_backends_fail_log vault "$log"
	return 1
}

# backends_start: start the backends in $CLOUDTOKENS_BACKENDS (default both).
# Returns non-zero if one fails to start and CI=true; otherwise a failed
# backend is reported and its variables are left unset.
backends_start() {
	local b failed=0
	if [[ -z "${CLOUDTOKENS_BACKENDS_DIR:-}" ]]; then
		CLOUDTOKENS_BACKENDS_DIR=$(mktemp -d "${TMPDIR:-/tmp}/cloudtokens-backends.XXXXXX")
		export CLOUDTOKENS_BACKENDS_DIR
		_backends_own_dir=1
	fi
	for b in ${CLOUDTOKENS_BACKENDS:-aws vault}; do
		if ! "backends_start_$b"; then
			if _backends_ci || [[ -n "${_backends_strict:-}" ]]; then
				_backends_log "ERROR: backend $b did not start"
				failed=1
			else
				_backends_log "WARNING: backend $b did not start; its tests will be skipped"
			fi
		fi
	done
	return $failed
}

# backends_stop: stop every server this shell started; remove the log dir
# unless CLOUDTOKENS_BACKENDS_KEEP_LOGS=1.
backends_stop() {
	local pid
	for pid in "${_backends_pids[@]}"; do
		_backends_kill "$pid"
	done
	_backends_pids=()
	if [[ -n "${_backends_own_dir:-}" && -n "${CLOUDTOKENS_BACKENDS_DIR:-}" ]]; then
		if [[ "${CLOUDTOKENS_BACKENDS_KEEP_LOGS:-}" == 1 ]]; then
			_backends_log "logs kept in $CLOUDTOKENS_BACKENDS_DIR"
		else
			rm -rf "$CLOUDTOKENS_BACKENDS_DIR"
		fi
		unset CLOUDTOKENS_BACKENDS_DIR _backends_own_dir
	fi
}

backends_exports() {
	local v
	for v in CLOUDTOKENS_AWS_ENDPOINT AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION \
		CLOUDTOKENS_VAULT_ADDR CLOUDTOKENS_VAULT_TOKEN CLOUDTOKENS_VAULT_RAW VAULT_ADDR VAULT_TOKEN; do
		[[ -n "${!v:-}" ]] && printf 'export %s=%q\n' "$v" "${!v}"
	done
	return 0
}

# Run directly: start, print exports, wait for Ctrl-C.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
	set -uo pipefail
	_backends_strict=1 # asked for by hand: a backend that cannot start is an error
	trap 'backends_stop; kill "${_backends_sleep:-}" 2>/dev/null; exit 130' INT TERM
	trap backends_stop EXIT
	backends_start || exit 1
	backends_exports
	echo "# servers running; Ctrl-C to stop" >&2
	# wait, unlike a foreground sleep, lets a TERM stop the servers at once.
	while :; do
		sleep 3600 &
		_backends_sleep=$!
		wait "$_backends_sleep"
	done
fi
