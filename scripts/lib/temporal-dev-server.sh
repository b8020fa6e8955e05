# shellcheck shell=bash
# Runs the Temporal dev server (embedded SQLite kept under DATA_DIR, Web UI) with the project's
# custom search attributes registered, when TEMPORAL_ADDRESS is on this machine and nothing answers
# there. A remote address is left to the preflight check.

TEMPORAL_DEV_SERVER_PID=""

temporal_answers() { timeout 5 "$TEMPORAL_CLI" operator cluster health --address "$TEMPORAL_ADDRESS" 2>/dev/null | grep -q SERVING; }

start_temporal_dev_server() {
  local host="${TEMPORAL_ADDRESS%:*}" port="${TEMPORAL_ADDRESS##*:}" ui_port
  if [[ ! "$host" =~ ^(127\.[0-9.]+|localhost)$ ]]; then return 0; fi
  if temporal_answers; then
    step "a Temporal server already answers at $TEMPORAL_ADDRESS; using it"
    return 0
  fi
  ui_port="$(node -e 'console.log(new URL(process.argv[1]).port || 80)' "$TEMPORAL_UI_URL")"
  local -a dev_server_args
  mapfile -t dev_server_args < <(cd "$PROJECT_ROOT" && node dist/temporal/dev-server-args.js)
  mkdir -p "$DATA_DIR/temporal" "$DATA_DIR/logs"
  step "starting the Temporal dev server on $TEMPORAL_ADDRESS (log: $DATA_DIR/logs/temporal.log)"
  setsid "$TEMPORAL_CLI" server start-dev --ip "$host" --port "$port" --ui-port "$ui_port" \
    --namespace "$TEMPORAL_NAMESPACE" --db-filename "$DATA_DIR/temporal/dev.sqlite" \
    --log-level warn "${dev_server_args[@]}" >"$DATA_DIR/logs/temporal.log" 2>&1 < /dev/null &
  TEMPORAL_DEV_SERVER_PID=$!
  if ! wait_for "timeout 5 \"$TEMPORAL_CLI\" operator cluster health --address $TEMPORAL_ADDRESS | grep -q SERVING" 60; then
    tail -n 20 "$DATA_DIR/logs/temporal.log" >&2
    die "the Temporal dev server did not come up on $TEMPORAL_ADDRESS within 60 s"
  fi
}

stop_temporal_dev_server() { stop_pid "$TEMPORAL_DEV_SERVER_PID" 20; }
