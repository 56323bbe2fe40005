#!/usr/bin/env bash
# A one-node SLURM cluster for the tests (and for trying the SLURM profile by hand), without systemd.
#
#   tests/slurm/start.sh [DIR]     (default DIR: /tmp/isobench-slurm)
#
# Idempotent: installs Debian's slurm and munge packages when missing, writes DIR/etc/slurm.conf (one node,
# one GRES gpu backed by a character device: it tests scheduling, not CUDA), starts a private munged,
# slurmctld and slurmd, and waits until the node takes jobs. Running it again with the cluster up does
# nothing. Every file lives under DIR; nothing is written to /etc. The client commands need
# SLURM_CONF=DIR/etc/slurm.conf: DIR/bin holds wrappers that set it (put DIR/bin first on PATH; job steps
# need them too, because the jobstep plugin clears SLURM_CONF before its srun). Stop with stop.sh DIR.
# Prints DIR/bin on success; exits non-zero, saying why on one line, when the cluster cannot start.
set -euo pipefail
DIR=$(realpath -m "${1:-/tmp/isobench-slurm}")
CONF="$DIR/etc/slurm.conf"
fail() { echo "slurm: $*" >&2; exit 1; }

if [ "$(id -u)" != 0 ]; then
    SUDO=$(command -v sudo || true)
    [ -n "$SUDO" ] && $SUDO -n true 2>/dev/null || fail "needs root (or passwordless sudo) for slurmd and munged"
else
    SUDO=""
fi

up() { SLURM_CONF="$CONF" timeout 10 scontrol ping 2>/dev/null | grep -q UP &&
       SLURM_CONF="$CONF" timeout 10 sinfo -h -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)'; }
if [ -f "$CONF" ] && command -v scontrol >/dev/null && up; then
    echo "$DIR/bin"; exit 0
fi

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null ||
   ! command -v munged >/dev/null; then
    command -v apt-get >/dev/null || fail "slurm packages missing and no apt-get to install them"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get install -y -q --no-install-recommends slurmctld slurmd slurm-client munge >"${DIR%/*}/isobench-slurm-apt.log" 2>&1 ||
        { $SUDO apt-get update -q >/dev/null 2>&1 &&
          $SUDO apt-get install -y -q --no-install-recommends slurmctld slurmd slurm-client munge >"${DIR%/*}/isobench-slurm-apt.log" 2>&1; } ||
        fail "apt-get install of slurm and munge failed (see ${DIR%/*}/isobench-slurm-apt.log)"
fi

"$(dirname "$0")/stop.sh" "$DIR" >/dev/null 2>&1 || true   # leftovers of an earlier, broken start
mkdir -p "$DIR"/{etc,munge,state,spool,log,run,bin}
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
    real=$(command -v "$cmd" || true)
    [ -n "$real" ] || continue
    printf '#!/bin/sh\nSLURM_CONF=%s exec %s "$@"\n' "$CONF" "$real" >"$DIR/bin/$cmd"
    chmod 0755 "$DIR/bin/$cmd"
done

$SUDO slurmctld -f "$CONF" || fail "slurmctld did not start (see $DIR/log/slurmctld.log)"
$SUDO slurmd -f "$CONF" -N "$HOST" || fail "slurmd did not start (see $DIR/log/slurmd.log)"
for _ in $(seq 60); do
    up && { echo "$DIR/bin"; exit 0; }
    sleep 0.5
done
fail "the node did not come up in 30 s: $(SLURM_CONF="$CONF" sinfo -h -o '%t %E' 2>&1 | head -1) (see $DIR/log)"
