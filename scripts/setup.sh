#!/usr/bin/env bash
# Makes this machine ready to run the system and its tests; idempotent and fast the second time.
# Sourced by start.sh and test.sh (which then own cleanup of what it started), or run on its own.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
source "$PROJECT_ROOT/scripts/lib/node-deps.sh"
source "$PROJECT_ROOT/scripts/lib/docker-engine.sh"
source "$PROJECT_ROOT/scripts/lib/postgres.sh"
source "$PROJECT_ROOT/scripts/lib/sandbox-image.sh"
source "$PROJECT_ROOT/scripts/lib/temporal-cli.sh"

setup_machine() {
  command -v node >/dev/null || die "Node.js 20 or newer is required"
  ensure_node_deps
  ensure_prisma_client
  build_typescript
  load_app_config
  mkdir -p "$DATA_DIR/logs"
  ensure_temporal_cli
  # The test command in CI also needs gVisor: the escape tests run under both runtimes there.
  ensure_docker_engine "${SANDBOX_RUNTIME_NEEDED:-$SANDBOX_RUNTIME}"
  ensure_postgres
  apply_migrations
  ensure_sandbox_image
}

# For a command that runs on a machine it set up: on exit, stops the Docker engine and PostgreSQL if
# this run started them.
stop_started_services_on_exit() {
  cleanup() {
    trap - EXIT INT TERM
    stop_docker_engine_if_started
    stop_postgres_if_started
  }
  trap cleanup EXIT
  trap 'exit 130' INT TERM
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  setup_machine
  step "ready"
fi
