#!/usr/bin/env bash
# The soak (issue 19): brings up what it needs like the test command, then runs hub and spoke under
# load through injected faults for SOAK_MINUTES (default 30) and prints the checks' table; results and
# the processes' logs land in data/soak/. SOAK_SCALE=smoke runs the CI-sized version. Extra arguments go to jest.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

stop_started_services_on_exit

setup_machine
export TEMPORAL_CLI_PATH="$TEMPORAL_CLI"
cd "$PROJECT_ROOT"
step "soak (${SOAK_SCALE:-full}, ${SOAK_MINUTES:-default} minutes of load)"
"$PROJECT_ROOT/node_modules/.bin/jest" --config soak/jest.config.js --silent=false "$@"
