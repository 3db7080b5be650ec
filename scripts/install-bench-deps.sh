#!/usr/bin/env bash
# Installs what the benchmarks in bench/ need from Debian:
#   bench/sftp_bench.py: the OpenSSH client (sftp, ssh, ssh-keygen) and the OpenSSH server (/usr/sbin/sshd,
#                        whose internal-sftp is the reference peer);
#   bench/dav_bench.py:  nginx with the WebDAV PROPFIND/OPTIONS module (libnginx-mod-http-dav-ext) as the
#                        reference peer, wrk (concurrent load) and curl (single transfers), openssl (test
#                        certificate and htpasswd).
# Installs only what is missing, and never leaves a system service (sshd, nginx on port 80) running:
# a policy-rc.d that forbids service starts is in place for the duration of the install, and anything that
# was started anyway is stopped and disabled afterwards. The benches run their own servers on free ports.
set -euo pipefail

PACKAGES=(openssh-client openssh-server nginx libnginx-mod-http-dav-ext wrk curl openssl)

missing=()
for pkg in "${PACKAGES[@]}"; do
    if ! dpkg -s "$pkg" 2>/dev/null | grep -q '^Status: install ok installed'; then
        missing+=("$pkg")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "install-bench-deps: ${PACKAGES[*]} already installed"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

# Was the system nginx running before we started? Then it is not ours to stop.
nginx_pid_file=/run/nginx.pid
nginx_was_running=0
if [ -s "$nginx_pid_file" ] && kill -0 "$(cat "$nginx_pid_file")" 2>/dev/null; then
    nginx_was_running=1
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
# Exit code 101 = "action forbidden": invoke-rc.d will not start sshd or nginx after installing them.
printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
$SUDO chmod 755 "$policy"

echo "install-bench-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y --no-install-recommends "${missing[@]}"; then
    $SUDO apt-get update
    $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi

# Belt and braces: if something started the system services anyway (no policy-rc.d honoured, e.g. a
# systemd machine), stop and disable them again -- the benches run their own servers on free ports.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    $SUDO systemctl stop ssh.service ssh.socket 2>/dev/null || true
    $SUDO systemctl disable ssh.service ssh.socket 2>/dev/null || true
    if [ "$nginx_was_running" -eq 0 ]; then
        $SUDO systemctl stop nginx.service 2>/dev/null || true
        $SUDO systemctl disable nginx.service 2>/dev/null || true
    fi
elif [ "$nginx_was_running" -eq 0 ] && [ -x /etc/init.d/nginx ]; then
    # sysvinit (or no init at all, as in a container): no boot-time start, and no nginx left on port 80
    $SUDO update-rc.d nginx disable >/dev/null 2>&1 || true
fi
if [ "$nginx_was_running" -eq 0 ] && [ -s "$nginx_pid_file" ]; then
    pid="$(cat "$nginx_pid_file")"
    # only the master whose pid the system nginx wrote, and only if it really is nginx
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && grep -q nginx "/proc/$pid/cmdline" 2>/dev/null; then
        echo "install-bench-deps: stopping the system nginx (pid $pid) that the install started"
        $SUDO kill -QUIT "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
    fi
fi

test -x /usr/sbin/sshd
test -x /usr/sbin/nginx
test -x /usr/bin/wrk
test -x /usr/bin/curl
test -f /usr/lib/nginx/modules/ngx_http_dav_ext_module.so
echo "install-bench-deps: done ($(/usr/sbin/sshd -V 2>&1 | head -n1 || true); $(/usr/sbin/nginx -v 2>&1 || true);" \
     "$(/usr/bin/wrk -v 2>&1 | head -n1 || true))"
