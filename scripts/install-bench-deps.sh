#!/usr/bin/env bash
# Installs what bench/sftp_bench.py needs from Debian: the OpenSSH client (sftp, ssh, ssh-keygen)
# and the OpenSSH server (/usr/sbin/sshd, whose internal-sftp is the reference peer).
# Installs only what is missing, and never leaves the system sshd service running:
# a policy-rc.d that forbids service starts is in place for the duration of the install.
set -euo pipefail

missing=()
for pkg in openssh-client openssh-server; do
    if ! dpkg -s "$pkg" 2>/dev/null | grep -q '^Status: install ok installed'; then
        missing+=("$pkg")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "install-bench-deps: openssh-client and openssh-server already installed"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

policy=/usr/sbin/policy-rc.d
had_policy=0
if [ -e "$policy" ]; then
    had_policy=1
    $SUDO cp -p "$policy" "$policy.bench-save"
fi
restore_policy() {
    if [ "$had_policy" -eq 1 ]; then
        $SUDO mv -f "$policy.bench-save" "$policy"
    else
        $SUDO rm -f "$policy"
    fi
}
trap restore_policy EXIT
# Exit code 101 = "action forbidden": invoke-rc.d will not start sshd after installing it.
printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
$SUDO chmod 755 "$policy"

echo "install-bench-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y --no-install-recommends "${missing[@]}"; then
    $SUDO apt-get update
    $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi

# Belt and braces: if something started the system sshd anyway (no policy-rc.d honoured,
# e.g. a systemd machine), stop it again -- the bench runs its own sshd on a free port.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    $SUDO systemctl stop ssh.service ssh.socket 2>/dev/null || true
    $SUDO systemctl disable ssh.service ssh.socket 2>/dev/null || true
fi
test -x /usr/sbin/sshd
echo "install-bench-deps: done ($(/usr/sbin/sshd -V 2>&1 | head -n1 || true))"
