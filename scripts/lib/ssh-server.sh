# shellcheck shell=bash
# The delivery tests push over ssh to OpenSSH's own server on loopback: installs Debian's
# openssh-server when missing (without starting its service) and exports SSHD_PATH for the test.

ensure_sshd() {
  if [[ ! -x /usr/sbin/sshd ]]; then
    # policy-rc.d keeps the package from starting a system-wide sshd: the tests start their own.
    local policy=/usr/sbin/policy-rc.d created=0
    if [[ ! -e "$policy" ]]; then
      printf '#!/bin/sh\nexit 101\n' >"$policy"
      chmod +x "$policy"
      created=1
    fi
    install_debian_package openssh-server
    if [[ "$created" == 1 ]]; then rm -f "$policy"; fi
  fi
  SSHD_PATH=/usr/sbin/sshd
  export SSHD_PATH
}
