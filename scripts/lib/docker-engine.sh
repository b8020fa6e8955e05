# shellcheck shell=bash
# Makes sure a Docker engine answers at DOCKER_HOST. At the standard local socket, installs Debian's
# docker.io and starts dockerd when none answers; any other DOCKER_HOST is only checked.
# With gVisor wanted (SANDBOX_RUNTIME=runsc, or the test command in CI, which runs the escape tests
# under both runtimes), Debian's runsc is installed and registered as the Docker runtime "runsc".

DOCKERD_STARTED=""
DOCKER_DAEMON_CONFIG="$TOOLS_DIR/docker-daemon.json"

docker_answers() { timeout 10 docker info >/dev/null 2>&1; }
docker_has_runsc() { timeout 10 docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q '"runsc"'; }

# gVisor needs --network=none among its runtime arguments: sandboxes run with network none.
write_docker_daemon_config() {
  mkdir -p "$TOOLS_DIR"
  if command -v runsc >/dev/null; then
    printf '{ "runtimes": { "runsc": { "path": "%s", "runtimeArgs": ["--network=none"] } } }\n' "$(command -v runsc)" >"$DOCKER_DAEMON_CONFIG"
  else
    printf '{}\n' >"$DOCKER_DAEMON_CONFIG"
  fi
}

start_dockerd() {
  step "starting dockerd (log: $DATA_DIR/logs/dockerd.log)"
  mkdir -p "$DATA_DIR/logs"
  write_docker_daemon_config
  # No bridge or iptables: sandboxes run with network none, and these machines have no iptables setup.
  # Live restore: restarting the engine leaves running sandboxes running (agents go on).
  setsid dockerd --config-file "$DOCKER_DAEMON_CONFIG" --iptables=false --ip-masq=false --bridge=none --storage-driver=overlay2 --live-restore \
    --host "${DOCKER_HOST}" --pidfile /var/run/docker.pid >"$DATA_DIR/logs/dockerd.log" 2>&1 < /dev/null &
  DOCKERD_STARTED=$!
  wait_for "timeout 5 docker info" 60 || { tail -n 20 "$DATA_DIR/logs/dockerd.log" >&2; die "dockerd did not come up within 60 s"; }
}

# $1: "runsc" when gVisor must be available.
ensure_docker_engine() {
  local runtime="${1:-runc}"
  if [[ "$runtime" == runsc ]] && ! command -v runsc >/dev/null; then install_debian_package runsc; fi
  if docker_answers; then
    if [[ "$runtime" == runsc ]] && ! docker_has_runsc; then
      die "the running Docker engine has no runsc runtime: register /usr/bin/runsc with the runtime argument --network=none in its daemon.json and restart it"
    fi
    return 0
  fi
  if [[ "$DOCKER_HOST" != "unix:///var/run/docker.sock" ]]; then
    die "Docker engine at $DOCKER_HOST is unreachable (only an engine at unix:///var/run/docker.sock is started here)"
  fi
  command -v dockerd >/dev/null || install_debian_package docker.io
  command -v docker >/dev/null || die "the docker client is missing (install docker.io)"
  start_dockerd
}

stop_docker_engine_if_started() { stop_pid "$DOCKERD_STARTED" 30; }
