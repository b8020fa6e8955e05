#!/usr/bin/env bash
# Runs every check: lint, type check, unit and integration tests (jest). Starts what the tests need
# (Docker engine, PostgreSQL, the Temporal CLI and the sandbox image); the tests start their own
# ephemeral Temporal server and database. Extra arguments go to jest.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
source "$PROJECT_ROOT/scripts/lib/browser.sh"
source "$PROJECT_ROOT/scripts/lib/ssh-server.sh"

stop_started_services_on_exit

# In CI the sandbox escape tests run under gVisor (runsc) too, which setup then installs and registers.
if [[ -n "${CI:-}" ]]; then export SANDBOX_RUNTIME_NEEDED=runsc; fi
setup_machine
# The browser test opens the Temporal Web UI in Debian's Chromium.
ensure_chromium
# The delivery tests push over ssh to OpenSSH's server.
ensure_sshd
export TEMPORAL_CLI_PATH="$TEMPORAL_CLI"
# The runtimes the escape tests run under: runc always, runsc wherever the engine has it (always in CI).
TEST_SANDBOX_RUNTIMES="runc"
if docker_has_runsc; then TEST_SANDBOX_RUNTIMES="runc runsc"; fi
export TEST_SANDBOX_RUNTIMES
cd "$PROJECT_ROOT"
step "lint (eslint)"
"$PROJECT_ROOT/node_modules/.bin/eslint" . || die "lint failed"
step "formatting (prettier)"
"$PROJECT_ROOT/node_modules/.bin/prettier" --check --log-level warn . || die "formatting differs: npm run format fixes it"
step "type check (tsc)"
"$PROJECT_ROOT/node_modules/.bin/tsc" -p tsconfig.json --noEmit || die "type check failed"
step "tests (jest)"
results="$DATA_DIR/jest-results.json"
rm -f "$results"
status=0
"$PROJECT_ROOT/node_modules/.bin/jest" ${CI:+--ci} --json --outputFile="$results" "$@" || status=$?
# One plain closing line that CI tools read: "jest: N passed, N failed".
if [[ -f "$results" ]]; then
  node -e 'const r = require(process.argv[1]); console.log(`jest: ${r.numPassedTests} passed, ${r.numFailedTests + r.numRuntimeErrorTestSuites} failed`)' "$results"
fi
exit "$status"
