# shellcheck shell=bash
# Makes sure a Docker engine answers at DOCKER_HOST. At the standard local socket, installs Debian's
# docker.io and starts dockerd when none answers; any other DOCKER_HOST is only checked.

DOCKERD_STARTED=""

docker_answers() { timeout 10 docker info >/dev/null 2>&1; }

ensure_docker_engine() {
  if docker_answers; then return 0; fi
  if [[ "$DOCKER_HOST" != "unix:///var/run/docker.sock" ]]; then
    die "Docker engine at $DOCKER_HOST is unreachable (only an engine at unix:///var/run/docker.sock is started here)"
  fi
  if ! command -v dockerd >/dev/null; then
    [[ "$(id -u)" == 0 ]] || die "no Docker engine answers at $DOCKER_HOST and installing one needs root"
    step "installing Debian's docker.io"
    quietly "apt-get update" apt-get update
    DEBIAN_FRONTEND=noninteractive quietly "apt-get install docker.io" apt-get install -y --no-install-recommends docker.io
  fi
  command -v docker >/dev/null || die "the docker client is missing (install docker.io)"
  step "starting dockerd (log: $DATA_DIR/logs/dockerd.log)"
  mkdir -p "$DATA_DIR/logs"
  # No bridge or iptables: sandboxes run with network none, and these machines have no iptables setup.
  setsid dockerd --iptables=false --ip-masq=false --bridge=none --storage-driver=overlay2 \
    --host "${DOCKER_HOST}" --pidfile /var/run/docker.pid >"$DATA_DIR/logs/dockerd.log" 2>&1 < /dev/null &
  DOCKERD_STARTED=$!
  wait_for "timeout 5 docker info" 60 || { tail -n 20 "$DATA_DIR/logs/dockerd.log" >&2; die "dockerd did not come up within 60 s"; }
}

stop_docker_engine_if_started() { stop_pid "$DOCKERD_STARTED" 30; }
