#!/bin/sh
# Installs the comparison relays and load tools the benchmark rows use (Debian 12 packages:
# haproxy 2.6, socat 1.7, iperf3 3.12) and valgrind for scripts/check-native-memory.sh.
# The benchmark skips a row whose tool is missing, so this is optional. Needs root (or sudo).
set -eu
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends haproxy socat iperf3 valgrind gcc make
# The Debian haproxy package starts a system service on install; the benchmark runs its own
# instance on loopback ports, so the idle system one is stopped where systemd is running.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  $SUDO systemctl disable --now haproxy >/dev/null 2>&1 || true
fi
for t in haproxy socat iperf3 valgrind; do
  printf '%s: %s\n' "$t" "$(command -v "$t" || echo missing)"
done
