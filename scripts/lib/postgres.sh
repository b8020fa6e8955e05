# shellcheck shell=bash
# Makes sure PostgreSQL answers at DATABASE_URL and that its database exists. A local cluster that
# is installed but stopped is started; a remote server is only checked.

POSTGRES_STARTED=""

ensure_postgres() {
  if (cd "$PROJECT_ROOT" && node dist/scripts/ensure-database.js 2>/dev/null); then return 0; fi
  local host
  host="$(node -e 'console.log(new URL(process.argv[1]).hostname)' "$DATABASE_URL")"
  if [[ "$host" =~ ^(127\.0\.0\.1|localhost|::1|\[::1\])$ ]] && command -v pg_ctlcluster >/dev/null; then
    local version
    version="$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)"
    if [[ -n "$version" ]] && ! pg_lsclusters -h 2>/dev/null | grep -q " online"; then
      step "starting the local PostgreSQL $version cluster"
      pg_ctlcluster --skip-systemctl-redirect "$version" main start && POSTGRES_STARTED="$version"
      wait_for "pg_isready -h 127.0.0.1 -q" 30 || true
    fi
  fi
  # Second attempt prints its one-line reason when it still fails.
  (cd "$PROJECT_ROOT" && node dist/scripts/ensure-database.js) || exit 1
}

stop_postgres_if_started() {
  if [[ -n "$POSTGRES_STARTED" ]]; then
    pg_ctlcluster --skip-systemctl-redirect "$POSTGRES_STARTED" main stop || true
  fi
}

apply_migrations() {
  (cd "$PROJECT_ROOT" && node dist/scripts/migrate.js) || exit 1
}
