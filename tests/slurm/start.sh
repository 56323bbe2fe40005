#!/usr/bin/env bash
# A one-node SLURM cluster for the tests (and for trying the SLURM profile by hand), without systemd.
#
#   tests/slurm/start.sh [DIR]     (default DIR: /tmp/isobench-slurm)
#
# Idempotent: installs Debian's slurm and munge packages when missing (apt log in DIR/log), writes
# DIR/etc/slurm.conf (one node, one GRES gpu backed by a character device: it tests scheduling, not CUDA),
# starts a private munged, slurmctld and slurmd, and waits until the node takes jobs. Running it again with
# the cluster up does nothing. Every file lives under DIR; nothing is written to /etc. The client commands need
# SLURM_CONF=DIR/etc/slurm.conf: DIR/bin holds wrappers that set it (put DIR/bin first on PATH; job steps
# need them too, because the jobstep plugin clears SLURM_CONF before its srun). Stop with stop.sh DIR.
# Prints DIR/bin on success. Exits 77, saying why on one line, when a cluster cannot be started on this machine
# (no root, no apt-get to install the packages, SLURM's ports taken by another cluster); 1 when starting failed
# (then whatever it had started is stopped again).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
DIR=$(realpath -m "${1:-/tmp/isobench-slurm}")
CONF="$DIR/etc/slurm.conf"
fail() { echo "slurm: $*" >&2; exit 1; }
cannot() { echo "slurm: $*" >&2; exit 77; }

if [ "$(id -u)" != 0 ]; then
    SUDO=$(command -v sudo || true)
    [ -n "$SUDO" ] && $SUDO -n true 2>/dev/null || cannot "needs root (or passwordless sudo) for slurmd and munged"
else
    SUDO=""
fi
# The real client commands, never our own wrappers (DIR/bin may already be first on PATH).
REAL_PATH=$(printf '%s' "$PATH" | tr ':' '\n' | grep -vxF "$DIR/bin" | paste -sd: -)

up() { SLURM_CONF="$CONF" PATH="$REAL_PATH" timeout 10 scontrol ping 2>/dev/null | grep -q UP &&
       SLURM_CONF="$CONF" PATH="$REAL_PATH" timeout 10 sinfo -h -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)'; }
if [ -f "$CONF" ] && PATH="$REAL_PATH" command -v scontrol >/dev/null && up; then
    echo "$DIR/bin"; exit 0
fi

mkdir -p "$DIR"/{etc,munge,state,spool,log,run,bin}
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null ||
   ! command -v munged >/dev/null; then
    command -v apt-get >/dev/null || cannot "slurm packages missing and no apt-get to install them"
    export DEBIAN_FRONTEND=noninteractive
    apt_install() { $SUDO apt-get install -y -q --no-install-recommends slurmctld slurmd slurm-client munge \
                    >"$DIR/log/apt.log" 2>&1; }
    apt_install || { $SUDO apt-get update -q >/dev/null 2>&1 && apt_install; } ||
        cannot "apt-get install of slurm and munge failed (see $DIR/log/apt.log)"
fi

"$HERE/stop.sh" "$DIR" >/dev/null 2>&1 || true   # leftovers of an earlier, broken start
for port in 6817 6818; do   # slurmctld's and slurmd's ports: another cluster on this machine holds them
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        cannot "port $port is taken (another SLURM on this machine? stop it, or stop.sh its folder)"
    fi
done
trap 'rc=$?; [ "$rc" = 0 ] || "$HERE/stop.sh" "$DIR" >/dev/null 2>&1; exit "$rc"' EXIT
chmod 0755 "$DIR" "$DIR/munge"                  # munged refuses a socket folder that is not 0755
HOST=$(hostname -s)

# munge: a private daemon with its own key and socket
if [ ! -s "$DIR/munge/munge.key" ]; then
    dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
fi
chmod 0600 "$DIR/munge/munge.key"
rm -f "$DIR/munge/munge.socket.2" "$DIR/munge/munge.socket.2.lock"
$SUDO munged --socket="$DIR/munge/munge.socket.2" --key-file="$DIR/munge/munge.key" \
    --pid-file="$DIR/run/munged.pid" --log-file="$DIR/log/munged.log" --seed-file="$DIR/munge/munged.seed" \
    || fail "munged did not start (see $DIR/log/munged.log)"

# the GPU: any character device will do for GRES
[ -c "$DIR/nvidia0" ] || $SUDO mknod "$DIR/nvidia0" c 1 3

NODE=$(slurmd -C | head -1 | awk '{for (i = 1; i <= NF; i++) if ($i ~ /^RealMemory=/) {
    split($i, kv, "="); $i = "RealMemory=" int(kv[2] * 0.95) } print}')   # a little below what slurmd sees
cat >"$CONF" <<CONF
ClusterName=isobench
SlurmctldHost=$HOST(127.0.0.1)
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/munge/munge.socket.2
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=3600
MailProg=/bin/true
MpiDefault=none
ReturnToService=2
GresTypes=gpu
$NODE Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
cat >"$DIR/etc/gres.conf" <<CONF
AutoDetect=off
NodeName=$HOST Name=gpu File=$DIR/nvidia0
CONF

for cmd in sbatch srun squeue scontrol scancel sinfo sacct sacctmgr; do
    real=$(PATH="$REAL_PATH" command -v "$cmd" || true)
    [ -n "$real" ] || continue
    case "$real" in "$DIR"/bin/*) fail "$real is one of our own wrappers";; esac
    printf '#!/bin/sh\nSLURM_CONF=%s exec %s "$@"\n' "$CONF" "$real" >"$DIR/bin/$cmd"
    chmod 0755 "$DIR/bin/$cmd"
done

$SUDO slurmctld -f "$CONF" || fail "slurmctld did not start (see $DIR/log/slurmctld.log)"
$SUDO slurmd -f "$CONF" -N "$HOST" || fail "slurmd did not start (see $DIR/log/slurmd.log)"
for _ in $(seq 60); do
    up && { echo "$DIR/bin"; exit 0; }
    sleep 0.5
done
fail "the node did not come up in 30 s: $(SLURM_CONF="$CONF" PATH="$REAL_PATH" timeout 10 sinfo -h -o '%t %E' 2>&1 | head -1) (see $DIR/log)"
