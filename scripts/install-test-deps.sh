#!/usr/bin/env bash
# Installs the Debian packages the test suite drives for real, only those missing:
#   openssh-client  (sftp, ssh-keygen: the real SSH client of the tests)
#   lftp, python3-paramiko (Debian 12's paramiko 2.12 on the system Python)  (more real SFTP clients:
#                    tests/gateway/test_sftp_clients.py; curl's sftp:// and Debian's rclone 1.60 are there too)
#   postgresql      (a throwaway cluster when $DATABASE_URL is not set)
#   curl, litmus, cadaver, rclone  (the real WebDAV clients of tests/gateway/test_webdav*.py; webdav4 is in
#                   pyproject's test extra), openssl (PKCS#12 client certificates for cadaver)
#   slapd, ldap-utils (the real directory), libldap2-dev libsasl2-dev (to build python-ldap)
#   haproxy         (a real TCP load balancer sending PROXY v2 headers: tests/gateway/test_proxy_protocol.py)
#   chromium        (the real browser Playwright drives in tests/gateway/test_console_browser.py; Playwright
#                    never downloads a browser here)
# Never starts a system service: a policy-rc.d forbids service starts during the install.
set -euo pipefail

packages=(openssh-client lftp python3-paramiko postgresql curl litmus cadaver rclone openssl slapd ldap-utils
          libldap2-dev libsasl2-dev chromium haproxy)
missing=()
for pkg in "${packages[@]}"; do
    dpkg -s "$pkg" 2>/dev/null | grep -q '^Status: install ok installed' || missing+=("$pkg")
done
[ "${#missing[@]}" -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "install-test-deps: installing ${missing[*]}" >&2
policy=/usr/sbin/policy-rc.d
restore_policy() { if [ -e "$policy.instpages-save" ]; then $SUDO mv "$policy.instpages-save" "$policy"; else $SUDO rm -f "$policy"; fi; }
[ -e "$policy" ] && $SUDO cp -p "$policy" "$policy.instpages-save"
trap restore_policy EXIT
printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
$SUDO chmod 755 "$policy"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq || true
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
