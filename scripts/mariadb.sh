#!/usr/bin/env bash
# A private MariaDB server on loopback, for the tests that import the Zoho
# SDK's DBStore table from MySQL (cmd/cloudtokens). It runs as the current
# user from a temporary data directory on a free port, and is gone after
# mariadb_stop: nothing of the machine's own MySQL/MariaDB is touched.
#
# Sourced (what scripts/test.sh does):
#   source scripts/mariadb.sh
#   mariadb_start || exit 1     # exports CLOUDTOKENS_MYSQL_DSN
#   trap mariadb_stop EXIT
#
# Run directly, for working by hand: it starts the server, prints the
# export line and keeps it running until Ctrl-C:
#   ./scripts/mariadb.sh
#
# Exports:
#   CLOUDTOKENS_MYSQL_DSN=cloudtokens:PASSWORD@tcp(127.0.0.1:PORT)/cloudtokens
#     a go-sql-driver/mysql DSN for a user with all privileges on the
#     (empty) database "cloudtokens"; the CLI reads it as
#     zoho-sql:mysql://$CLOUDTOKENS_MYSQL_DSN
#
# Needs mariadbd and mariadb-install-db (Debian: mariadb-server). When they
# are missing, mariadb_start installs mariadb-server with apt-get if it runs
# as root (or sudo works without a password); CLOUDTOKENS_MARIADB_INSTALL=0
# forbids that. A server that cannot start is an error (return 1); the
# caller decides whether that fails the run (scripts/test.sh: with CI=true).

# The process helpers (_backends_free_port, _backends_spawn, _backends_kill)
# are scripts/backends.sh's; source it unless the caller did.
if ! declare -F _backends_kill >/dev/null; then
	# shellcheck source=scripts/backends.sh
	source "$(dirname "${BASH_SOURCE[0]}")/backends.sh"
fi

_mariadb_pid=""
_mariadb_dir=""

_mariadb_log() { echo "mariadb: $*" >&2; }

_mariadb_bins() {
	_mariadb_server=$(command -v mariadbd || command -v mysqld || ls /usr/sbin/mariadbd 2>/dev/null) || return 1
	_mariadb_installdb=$(command -v mariadb-install-db || command -v mysql_install_db) || return 1
	_mariadb_client=$(command -v mariadb || command -v mysql) || return 1
	[[ -n "$_mariadb_server" ]]
}

_mariadb_install() {
	if [[ "${CLOUDTOKENS_MARIADB_INSTALL:-1}" == 0 ]]; then
		_mariadb_log "mariadbd not found and CLOUDTOKENS_MARIADB_INSTALL=0"
		return 1
	fi
	local sudo=()
	if [[ $(id -u) != 0 ]]; then
		if ! sudo -n true 2>/dev/null; then
			_mariadb_log "mariadbd not found; install mariadb-server (apt-get install mariadb-server)"
			return 1
		fi
		sudo=(sudo -n)
	fi
	_mariadb_log "installing mariadb-server with apt-get"
	# policy-rc.d keeps the package from starting the system service
	# where there is no init (containers); we start our own server anyway.
	if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends mariadb-server >&2; then
		"${sudo[@]}" apt-get update >&2 &&
			"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends mariadb-server >&2 || return 1
	fi
	_mariadb_bins
}

# mariadb_start: start the server and export CLOUDTOKENS_MYSQL_DSN.
mariadb_start() {
	local user port pw sock log data i
	_mariadb_bins || _mariadb_install || return 1
	user=$(id -un)
	_mariadb_dir=$(mktemp -d "${TMPDIR:-/tmp}/cloudtokens-mariadb.XXXXXX") || return 1
	data="$_mariadb_dir/data" sock="$_mariadb_dir/mysqld.sock" log="$_mariadb_dir/error.log"
	# root@localhost authenticates by the socket's peer: this user.
	if ! "$_mariadb_installdb" --no-defaults --datadir="$data" --user="$user" \
		--auth-root-authentication-method=socket --auth-root-socket-user="$user" \
		--skip-test-db >"$_mariadb_dir/install.log" 2>&1; then
		_mariadb_log "mariadb-install-db failed:"
		tail -n 30 "$_mariadb_dir/install.log" >&2
		rm -rf "$_mariadb_dir"
		_mariadb_dir=""
		return 1
	fi
	for _ in 1 2 3; do
		port=$(_backends_free_port) || return 1
		_backends_spawn "$_mariadb_dir/stdout.log" "$_mariadb_server" --no-defaults --datadir="$data" \
			--socket="$sock" --port="$port" --bind-address=127.0.0.1 --skip-name-resolve \
			--pid-file="$_mariadb_dir/mysqld.pid" --log-error="$log" --tmpdir="$_mariadb_dir" \
			--user="$user" --innodb-buffer-pool-size=32M --skip-log-bin
		_mariadb_pid=$_backends_last_pid
		for i in $(seq 300); do
			kill -0 "$_mariadb_pid" 2>/dev/null || break
			"$_mariadb_client" --no-defaults -S "$sock" -u root -e 'SELECT 1' >/dev/null 2>&1 && break
			sleep 0.1
		done
		if "$_mariadb_client" --no-defaults -S "$sock" -u root -e 'SELECT 1' >/dev/null 2>&1; then
			break
		fi
		_backends_kill "$_mariadb_pid"
		_mariadb_pid=""
		if ! grep -qi 'address already in use' "$log" 2>/dev/null; then
			_mariadb_log "mariadbd did not start; last lines of $log:"
			tail -n 30 "$log" >&2
			rm -rf "$_mariadb_dir"
			_mariadb_dir=""
			return 1
		fi
	done
	if [[ -z "$_mariadb_pid" ]]; then
		_mariadb_log "mariadbd did not start: no free port"
		return 1
	fi
	pw=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
	if ! "$_mariadb_client" --no-defaults -S "$sock" -u root -e "
		CREATE DATABASE cloudtokens;
		CREATE USER 'cloudtokens'@'127.0.0.1' IDENTIFIED BY '$pw';
		GRANT ALL PRIVILEGES ON cloudtokens.* TO 'cloudtokens'@'127.0.0.1';" >&2; then
		_mariadb_log "creating the test database failed"
		mariadb_stop
		return 1
	fi
	export CLOUDTOKENS_MYSQL_DSN="cloudtokens:$pw@tcp(127.0.0.1:$port)/cloudtokens"
	_mariadb_log "$("$_mariadb_server" --version 2>/dev/null | head -n1) pid $_mariadb_pid at 127.0.0.1:$port (data in $_mariadb_dir)"
}

# mariadb_stop: stop the server mariadb_start started and remove its data.
mariadb_stop() {
	if [[ -n "$_mariadb_pid" ]]; then
		_backends_kill "$_mariadb_pid"
		_mariadb_pid=""
	fi
	if [[ -n "$_mariadb_dir" ]]; then
		rm -rf "$_mariadb_dir"
		_mariadb_dir=""
	fi
	unset CLOUDTOKENS_MYSQL_DSN
}

# Run directly: start, print the export, wait for Ctrl-C.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
	set -uo pipefail
	trap 'mariadb_stop; exit 130' INT TERM
	trap mariadb_stop EXIT
	mariadb_start || exit 1
	printf 'export CLOUDTOKENS_MYSQL_DSN=%q\n' "$CLOUDTOKENS_MYSQL_DSN"
	echo "# server running; Ctrl-C to stop" >&2
	# wait, unlike a foreground sleep, lets the traps run at once.
	while :; do
		sleep 3600 &
		wait $!
	done
fi
