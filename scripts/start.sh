#!/usr/bin/env bash
# Brings the whole system up on this machine: dependencies, Temporal dev server + Web UI, the API and
# the worker. Ctrl-C stops everything this script started, and nothing else.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
source "$PROJECT_ROOT/scripts/lib/temporal-dev-server.sh"

API_PID="" WORKER_PID="" INTERRUPTED=""

cleanup() {
  trap - EXIT INT TERM
  # After a failure its one-line reason stays the last line; after Ctrl-C say what happens.
  if [[ -n "$INTERRUPTED" ]]; then step "stopping what this start started"; fi
  stop_pid "$API_PID" 15
  stop_pid "$WORKER_PID" 15
  stop_temporal_dev_server
  stop_docker_engine_if_started
  stop_postgres_if_started
}
trap cleanup EXIT
trap 'INTERRUPTED=1; exit 130' INT TERM

setup_machine
start_temporal_dev_server
(cd "$PROJECT_ROOT" && node dist/scripts/preflight.js) || exit 1

# Each process gets its own session, so Ctrl-C reaches only this script, which then stops them in order.
step "starting the worker (log: $DATA_DIR/logs/worker.log)"
(cd "$PROJECT_ROOT" && exec setsid node dist/workers/main.js >"$DATA_DIR/logs/worker.log" 2>&1 < /dev/null) &
WORKER_PID=$!
step "starting the API (log: $DATA_DIR/logs/api.log)"
(cd "$PROJECT_ROOT" && exec setsid node dist/api/server.js >"$DATA_DIR/logs/api.log" 2>&1 < /dev/null) &
API_PID=$!

API_URL="http://$API_HOST:$API_PORT"
if ! wait_for "node -e \"fetch(process.argv[1]).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))\" $API_URL/health" 30; then
  tail -n 5 "$DATA_DIR/logs/api.log" "$DATA_DIR/logs/worker.log" >&2
  die "the API did not answer at $API_URL/health within 30 s"
fi

cat <<INFO

  API:              $API_URL   (readiness: $API_URL/health/ready, OpenAPI: $API_URL/openapi.json)
  Temporal Web UI:  $TEMPORAL_UI_URL   (find a run: AgentId, TaskId, AgentState, AgentType, RemoteInstance, ...)
  Metrics:          $API_URL/metrics (API), http://$WORKER_METRICS_ADDRESS/metrics (worker and Temporal SDK)
  Logs:             $DATA_DIR/logs/

  Press Ctrl-C to stop.
INFO

# If either process dies, say which and stop the rest.
set +e
wait -n "$API_PID" "$WORKER_PID"
status=$?
for name in api worker; do
  pid_var="${name^^}_PID"
  if ! kill -0 "${!pid_var}" 2>/dev/null; then
    printf 'error: the %s stopped unexpectedly; last lines of %s:\n' "$name" "$DATA_DIR/logs/$name.log" >&2
    tail -n 10 "$DATA_DIR/logs/$name.log" >&2
  fi
done
exit "$status"
