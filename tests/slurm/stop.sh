#!/usr/bin/env bash
# Stops the cluster started by start.sh DIR (default /tmp/isobench-slurm): cancels its jobs (and waits, at
# most 20 s, for them to end), then stops slurmd, slurmctld and munged by their pid files, each only if that
# pid is still the daemon it names. Idempotent; the files under DIR are kept.
set -uo pipefail
DIR=$(realpath -m "${1:-/tmp/isobench-slurm}")
CONF="$DIR/etc/slurm.conf"
SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
alive() { [ -s "$DIR/run/$1.pid" ] && pid=$(cat "$DIR/run/$1.pid") &&
          [ "$($SUDO cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ]; }

if alive slurmctld && [ -x "$DIR/bin/squeue" ]; then
    jobs=$(timeout 10 "$DIR/bin/squeue" -h -o %i 2>/dev/null | tr '\n' ' ')
    if [ -n "${jobs// /}" ]; then
        timeout 10 "$DIR/bin/scancel" --full $jobs 2>/dev/null
        for _ in $(seq 40); do
            [ -z "$(timeout 10 "$DIR/bin/squeue" -h -o %i 2>/dev/null)" ] && break
            sleep 0.5
        done
    fi
fi
for daemon in slurmd slurmctld munged; do
    if alive "$daemon"; then
        $SUDO kill "$pid"
        for _ in $(seq 50); do alive "$daemon" || break; sleep 0.1; done
        alive "$daemon" && $SUDO kill -9 "$pid"
    fi
    rm -f "$DIR/run/$daemon.pid"
done
exit 0
