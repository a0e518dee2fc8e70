#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, to try examples/slurm/sweep.sbatch without a
# cluster (tests/sweep_cluster.rs uses it): Debian's slurm-wlm, no systemd, no munge
# (auth/none), no cgroups; configuration, state, spool and logs under DIR. Run as root.
#
#   examples/slurm/local-cluster.sh start DIR   # then: export SLURM_CONF=DIR/slurm.conf
#   examples/slurm/local-cluster.sh stop DIR    # stops both daemons by their pids
set -euo pipefail

usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
dir=$(realpath -m "$2")

stop() {
  for d in slurmd slurmctld; do
    if [ -s "$dir/$d.pid" ]; then
      pid=$(cat "$dir/$d.pid")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
      rm -f "$dir/$d.pid"
    fi
  done
}

# a TCP port nobody listens on
free_port() {
  local p
  for p in $(shuf -i 20000-40000 -n 50); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  echo "no free port found" >&2; exit 1
}

case $1 in
start)
  command -v slurmctld >/dev/null || { echo "slurmctld is missing: apt-get install slurm-wlm" >&2; exit 1; }
  mkdir -p "$dir/state" "$dir/spool" "$dir/log"
  # the node as slurmd sees it: CPUs and memory
  hw=$(slurmd -C | head -1)
  cpus=$(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<<"$hw")
  mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$hw")
  user=$(id -un)
  cat >"$dir/slurm.conf" <<CONF
ClusterName=gpunn-local
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
SlurmUser=$user
AuthType=auth/none
CredType=cred/none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MailProg=/bin/true
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=local Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
  export SLURM_CONF="$dir/slurm.conf"
  trap 'stop' ERR
  # in the foreground of a background shell, so $! is the daemon's pid
  slurmctld -D -i >"$dir/log/slurmctld.out" 2>&1 &
  echo $! >"$dir/slurmctld.pid"
  slurmd -D -N localhost >"$dir/log/slurmd.out" 2>&1 &
  echo $! >"$dir/slurmd.pid"
  # up when the node takes jobs
  for _ in $(seq 300); do
    state=$(sinfo -h -n localhost -o %t 2>/dev/null || true)
    case $state in idle*|mix*|alloc*) echo "export SLURM_CONF=$SLURM_CONF"; exit 0 ;; esac
    sleep 0.1
  done
  echo "the local Slurm cluster did not come up (node state '${state:-}'); logs in $dir/log:" >&2
  tail -n 5 "$dir"/log/*.log "$dir"/log/*.out >&2 || true
  stop
  exit 1
  ;;
stop) stop ;;
*) usage ;;
esac
