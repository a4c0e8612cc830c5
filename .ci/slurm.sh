#!/bin/bash
# A one-node Slurm cluster for the scale-out test (root needed; Debian 12: slurmd slurmctld slurm-client munge).
#   bash .ci/slurm.sh up [DIR]    generates DIR/slurm.conf, starts munged (as user munge), slurmctld and slurmd, waits
#                                 until the node is idle, and prints the line to export SLURM_CONF
#   bash .ci/slurm.sh down [DIR]  stops the daemons by pid
set -euo pipefail
cmd=${1:?up or down}
dir=${2:-/tmp/diffcircuits-slurm}
case "$cmd" in
up)
  rm -rf "$dir/state" "$dir/spool"   # no jobs of an earlier cluster
  mkdir -p "$dir/state" "$dir/spool" "$dir/log"
  host=$(hostname -s)
  cpus=$(nproc)
  mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
  cat > "$dir/slurm.conf" <<CONF
ClusterName=diffcircuits
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
MpiDefault=none
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
  if [ ! -s /etc/munge/munge.key ]; then mungekey --create --keyfile=/etc/munge/munge.key; fi
  chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
  mkdir -p /run/munge /var/log/munge /var/lib/munge && chown munge:munge /run/munge /var/log/munge /var/lib/munge
  pgrep -x munged > /dev/null || runuser -u munge -- munged
  slurmctld -f "$dir/slurm.conf"
  slurmd -f "$dir/slurm.conf"
  for _ in $(seq 60); do
    state=$(SLURM_CONF="$dir/slurm.conf" sinfo -h -o %T 2>/dev/null || true)
    if [ "$state" = idle ]; then echo "export SLURM_CONF=$dir/slurm.conf"; exit 0; fi
    sleep 1
  done
  echo "slurm.sh: the node did not become idle (state '$state'); logs in $dir/log" >&2
  exit 1
  ;;
down)
  for pid in "$dir/slurmd.pid" "$dir/slurmctld.pid"; do
    if [ -s "$pid" ]; then kill "$(cat "$pid")" 2>/dev/null || true; fi
  done
  if [ -s /run/munge/munged.pid ]; then kill "$(cat /run/munge/munged.pid)" 2>/dev/null || true; fi
  ;;
*) echo "usage: slurm.sh up|down [DIR]" >&2; exit 2 ;;
esac
