# shellcheck shell=bash
# The browser test drives Debian's Chromium with playwright-core (no browser can be downloaded
# here): installs the package when missing and exports CHROMIUM_PATH for the test.

ensure_chromium() {
  if ! command -v chromium >/dev/null; then install_debian_package chromium; fi
  CHROMIUM_PATH="$(command -v chromium)"
  export CHROMIUM_PATH
}
