# shellcheck shell=bash
# npm ci when package-lock.json changed since the last install; prisma generate when the schema changed;
# then an incremental TypeScript build.

ensure_node_deps() {
  local stamp="$PROJECT_ROOT/node_modules/.install-stamp" want
  want="$(sha_of "$PROJECT_ROOT/package-lock.json")"
  if [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
    step "installing npm dependencies (npm ci)"
    (cd "$PROJECT_ROOT" && quietly "npm ci" npm ci --no-audit --no-fund)
    echo "$want" >"$stamp"
  fi
}

ensure_prisma_client() {
  local stamp="$PROJECT_ROOT/prisma/generated/.schema-stamp" want
  want="$(sha_of "$PROJECT_ROOT/prisma/schema.prisma" "$PROJECT_ROOT/package-lock.json")"
  if [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
    step "generating the Prisma client"
    (cd "$PROJECT_ROOT" && quietly "prisma generate" "$PROJECT_ROOT/node_modules/.bin/prisma" generate)
    echo "$want" >"$stamp"
  fi
}

build_typescript() {
  step "building TypeScript"
  (cd "$PROJECT_ROOT" && "$PROJECT_ROOT/node_modules/.bin/tsc" -p tsconfig.build.json) || die "TypeScript build failed"
}

# Evaluates the app's config schema (config/env.ts) and exports the resolved settings.
load_app_config() {
  local exports
  exports="$(cd "$PROJECT_ROOT" && node dist/scripts/print-config.js)" || exit 1
  eval "$exports"
}
