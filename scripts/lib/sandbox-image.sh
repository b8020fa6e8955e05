# shellcheck shell=bash
# Builds SANDBOX_IMAGE from sandbox/Dockerfile unless an image built from the same inputs exists.
# Where a registry answers, the base is debian:bookworm-slim; where none does, the base is made here
# from a debootstrap root filesystem and `docker import`. SANDBOX_BASE=registry|debootstrap forces one.

SANDBOX_PACKAGES="bash,coreutils,git,ca-certificates,python3,nodejs,procps,passwd"
SANDBOX_HASH_LABEL="agent-orchestrator.sandbox-hash"

registry_answers() { timeout 30 docker pull debian:bookworm-slim >/dev/null 2>&1; }

# Sets SANDBOX_BASE_IMAGE to a local image made from a debootstrap root filesystem.
debootstrap_base_image() {
  local tag="agent-sandbox-base:bookworm-$(echo "$SANDBOX_PACKAGES" | sha256sum | cut -c1-12)"
  SANDBOX_BASE_IMAGE="$tag"
  if docker image inspect "$tag" >/dev/null 2>&1; then return 0; fi
  if ! command -v debootstrap >/dev/null; then
    step "installing debootstrap"
    quietly "apt-get update" apt-get update
    DEBIAN_FRONTEND=noninteractive quietly "apt-get install debootstrap" apt-get install -y --no-install-recommends debootstrap
  fi
  local mirror rootfs
  # The machine's own Debian mirror: the first enabled source whose path ends in /debian.
  mirror="$( { cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null || true; } \
    | grep -E '^(URIs:|deb )' | grep -oE 'https?://[^ ]+/debian/?( |$)' | head -n 1 | tr -d ' ' || true)"
  mirror="${mirror:-http://deb.debian.org/debian}"
  rootfs="$(mktemp -d "${TMPDIR:-/tmp}/sandbox-rootfs.XXXXXX")"
  step "bootstrapping the sandbox root filesystem from $mirror (first time only)"
  quietly "debootstrap" debootstrap --variant=minbase --include="$SANDBOX_PACKAGES" bookworm "$rootfs" "$mirror"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  quietly "docker import" bash -c "tar -C '$rootfs' -c . | docker import - '$tag'"
  rm -rf "$rootfs"
}

ensure_sandbox_image() {
  local want current base
  want="$(sha_of "$PROJECT_ROOT/sandbox/Dockerfile" "$PROJECT_ROOT/scripts/lib/sandbox-image.sh")"
  current="$(docker image inspect --format "{{ index .Config.Labels \"$SANDBOX_HASH_LABEL\" }}" "$SANDBOX_IMAGE" 2>/dev/null || true)"
  if [[ "$current" == "$want" ]]; then return 0; fi

  local network=default
  case "${SANDBOX_BASE:-auto}" in
    registry) base="debian:bookworm-slim" ;;
    debootstrap) debootstrap_base_image; base="$SANDBOX_BASE_IMAGE"; network=none ;;
    auto)
      if registry_answers; then base="debian:bookworm-slim"
      else debootstrap_base_image; base="$SANDBOX_BASE_IMAGE"; network=none; fi ;;
    *) die "SANDBOX_BASE must be registry, debootstrap or auto" ;;
  esac
  step "building the sandbox image $SANDBOX_IMAGE from $base"
  quietly "docker build of the sandbox image" docker build --network "$network" \
    --build-arg "BASE_IMAGE=$base" --label "$SANDBOX_HASH_LABEL=$want" \
    -t "$SANDBOX_IMAGE" -f "$PROJECT_ROOT/sandbox/Dockerfile" "$PROJECT_ROOT/sandbox"
}
