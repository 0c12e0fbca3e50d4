#!/usr/bin/env bash
# Installs from Debian what the test suite drives for real: curl (the mobile client),
# openssl (certificates in tests), redis-server/redis-sentinel (the Redis store and multi-node
# tests), chromium (the admin page's browser tests), iproute2 (network namespaces), systemd
# (systemd-analyze verify of the unit files).
set -euo pipefail
pkgs=(curl openssl redis-server redis-sentinel redis-tools chromium iproute2 procps ca-certificates systemd openssh-server openssh-client nginx)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# The packaged redis-server starts a system instance; the tests start their own on free ports.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet redis-server 2>/dev/null; then systemctl stop redis-server || true; fi
echo "test dependencies present: ${pkgs[*]}"
