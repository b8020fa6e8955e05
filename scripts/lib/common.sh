# Shared helpers for the project's shell scripts. Source it; do not run it.
# shellcheck shell=bash

PROJECT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TOOLS_DIR="$PROJECT_ROOT/.tools"
TEMPORAL_CLI="$TOOLS_DIR/bin/temporal"
TEMPORAL_CLI_VERSION="v1.5.1"

# Prisma's native engines cannot be downloaded here; the client engine and the WebAssembly schema
# engine need none, and this stops the CLI from trying to fetch the query engine.
export PRISMA_QUERY_ENGINE_LIBRARY="${PRISMA_QUERY_ENGINE_LIBRARY:-/dev/null}"
export PRISMA_HIDE_UPDATE_MESSAGE=1
export NPM_CONFIG_UPDATE_NOTIFIER=false NPM_CONFIG_FUND=false NPM_CONFIG_AUDIT=false

# No silent exits under `set -e`: name the command that failed.
set -E
trap 'printf "error: command failed (exit %s): %s\n" "$?" "$BASH_COMMAND" >&2' ERR

step() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Runs a command quietly; on failure prints its last output lines and the one-line reason.
quietly() {
  local what="$1"; shift
  local log; log="$(mktemp)"
  if ! "$@" >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    rm -f "$log"
    die "$what failed"
  fi
  rm -f "$log"
}

sha_of() { cat "$@" 2>/dev/null | sha256sum | cut -c1-16; }

# Waits up to $2 seconds for command $1 (a string for bash -c) to succeed.
wait_for() {
  local check="$1" seconds="$2" i
  for ((i = 0; i < seconds * 5; i++)); do
    if bash -c "$check" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  return 1
}

# Stops process $1 (if set and alive): SIGTERM, then SIGKILL after $2 seconds.
stop_pid() {
  local pid="$1" seconds="$2"
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    wait_for "! kill -0 $pid" "$seconds" || kill -KILL "$pid" 2>/dev/null || true
  fi
}

install_debian_package() {
  local package="$1"
  [[ "$(id -u)" == 0 ]] || die "$package is needed and installing it needs root"
  step "installing Debian's $package"
  quietly "apt-get update" apt-get update
  DEBIAN_FRONTEND=noninteractive quietly "apt-get install $package" apt-get install -y --no-install-recommends "$package"
}
