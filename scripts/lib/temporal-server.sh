# shellcheck shell=bash
# Builds the Temporal server and its SQL schema tool from the server's Go module into .tools/bin when
# missing (no prebuilt binary can be downloaded on these machines), for tests that need a server on
# PostgreSQL as docker-compose.yml runs it (temporalio/auto-setup) rather than the dev server.

# Usable on its own (`source scripts/lib/temporal-server.sh; build_temporal_server`): it needs
# TOOLS_DIR, step, quietly and die from common.sh, which the project's scripts have already sourced.
if ! declare -F quietly >/dev/null || [[ -z "${TOOLS_DIR:-}" ]]; then
  # shellcheck source=scripts/lib/common.sh
  source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
fi

# The version docker-compose.yml runs (temporalio/auto-setup); its schema must match the binaries.
TEMPORAL_SERVER_VERSION="v1.29.1"
TEMPORAL_SERVER="$TOOLS_DIR/bin/temporal-server"
TEMPORAL_SQL_TOOL="$TOOLS_DIR/bin/temporal-sql-tool"

# Prints the directory of the PostgreSQL schema that temporal-sql-tool applies.
build_temporal_server() {
  command -v go >/dev/null || die "the Temporal server is missing and Go is not installed to build it"
  if [[ ! -x "$TEMPORAL_SERVER" || ! -x "$TEMPORAL_SQL_TOOL" ]]; then
    step "building the Temporal server $TEMPORAL_SERVER_VERSION with go install (first time only, takes minutes)"
    mkdir -p "$TOOLS_DIR/bin"
    # go install names a binary after its package's folder (server, sql): too generic for .tools/bin,
    # so both are installed apart and renamed.
    local gobin
    gobin="$(mktemp -d)"
    GOBIN="$gobin" GOFLAGS=-mod=mod quietly "go install Temporal server" \
      go install "go.temporal.io/server/cmd/server@$TEMPORAL_SERVER_VERSION" \
      "go.temporal.io/server/cmd/tools/sql@$TEMPORAL_SERVER_VERSION"
    mv "$gobin/server" "$TEMPORAL_SERVER"
    mv "$gobin/sql" "$TEMPORAL_SQL_TOOL"
    rm -rf "$gobin"
  fi
  # The schema directory is the module's source in the module cache, which a cleaned cache no longer
  # holds even when the binaries are still here.
  local schema
  schema="$(go env GOMODCACHE)/go.temporal.io/server@$TEMPORAL_SERVER_VERSION/schema/postgresql/v12"
  if [[ ! -d "$schema" ]]; then
    quietly "go mod download Temporal server" go mod download "go.temporal.io/server@$TEMPORAL_SERVER_VERSION"
  fi
  [[ -d "$schema" ]] || die "the Temporal schema is missing at $schema"
  printf '%s\n' "$schema"
}
