#!/usr/bin/env bash
# Stops the cluster started by start.sh DIR (default /tmp/isobench-slurm): slurmd, slurmctld, munged, by
# their pid files; waits until they are gone. Idempotent; the files under DIR are kept.
set -uo pipefail
DIR=$(realpath -m "${1:-/tmp/isobench-slurm}")
SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
for daemon in slurmd slurmctld munged; do
    pidfile="$DIR/run/$daemon.pid"
    [ -s "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        $SUDO kill "$pid"
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && $SUDO kill -9 "$pid"
    fi
    rm -f "$pidfile"
done
exit 0
