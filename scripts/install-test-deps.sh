#!/usr/bin/env bash
# Installs from Debian what the test suite drives for real: curl (the mobile client),
# openssl (certificates in tests), redis-server/redis-sentinel (the Redis store and multi-node
# tests), chromium (the admin page's browser tests), iproute2 (network namespaces), systemd
# (systemd-analyze verify of the unit files), gcc/g++/make/python3 (the native splice engine,
# built by npm ci or npm test), valgrind (scripts/check-native-memory.sh, run by CI) and pebble (the ACME test CA with
# pebble-challtestsrv, its DNS: test/helpers/pebble.ts).
# The pkgs list below is the one place test dependencies are named; `npm test` reads it too.
#   scripts/install-test-deps.sh            installs what is missing (root, or sudo)
#   scripts/install-test-deps.sh --missing  prints the missing packages on one line, installs nothing
set -euo pipefail
pkgs=(curl openssl redis-server redis-sentinel redis-tools chromium libnss3-tools iproute2 procps ca-certificates systemd gcc g++ make python3 valgrind openssh-server openssh-client nginx pebble)
missing=()
# One dpkg-query for all of them (a few ms): an installed package's status reads "ii" or "hi".
installed=" $(dpkg-query -W -f='${db:Status-Abbrev}|${Package}\n' "${pkgs[@]}" 2>/dev/null | awk -F'|' '$1 ~ /^.i/ { printf "%s ", $2 }' || true) "
for p in "${pkgs[@]}"; do [[ "$installed" == *" $p "* ]] || missing+=("$p"); done
if [ "${1:-}" = "--missing" ]; then
  echo "${missing[*]}"
  exit 0
fi
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# The packaged redis-server starts a system instance; the tests start their own on free ports.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet redis-server 2>/dev/null; then systemctl stop redis-server || true; fi
echo "test dependencies present: ${pkgs[*]}"
