#!/usr/bin/env bash
# The benchmark (issue 12): brings up what it needs like the test command (Docker engine, PostgreSQL,
# the Temporal CLI, the sandbox image), then measures every figure beside its baseline from the same
# run and prints the table; results.json, results.md and latency.svg land in data/bench/.
# BENCH_SCALE=smoke runs the small version. Extra arguments go to jest.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

stop_started_services_on_exit

setup_machine
export TEMPORAL_CLI_PATH="$TEMPORAL_CLI"
cd "$PROJECT_ROOT"
step "benchmark (${BENCH_SCALE:-full}; the full run takes about seven minutes)"
"$PROJECT_ROOT/node_modules/.bin/jest" --config bench/jest.config.js --silent=false "$@"
