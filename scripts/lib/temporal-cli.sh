# shellcheck shell=bash
# Builds the official Temporal CLI (dev server + Web UI) from Go modules into .tools/bin when missing:
# no prebuilt binary can be downloaded on these machines.

ensure_temporal_cli() {
  if [[ -x "$TEMPORAL_CLI" ]]; then return 0; fi
  command -v go >/dev/null || die "the Temporal CLI is missing and Go is not installed to build it"
  step "building the Temporal CLI $TEMPORAL_CLI_VERSION with go install (first time only, takes minutes)"
  mkdir -p "$TOOLS_DIR/bin"
  GOBIN="$TOOLS_DIR/bin" GOFLAGS=-mod=mod quietly "go install temporal CLI" \
    go install "github.com/temporalio/cli/cmd/temporal@$TEMPORAL_CLI_VERSION"
}
