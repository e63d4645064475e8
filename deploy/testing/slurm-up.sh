#!/usr/bin/env bash
# slurm-up.sh DIR — start a throw-away single-node Slurm cluster whose config, state, spool, pid and log
# files all live in DIR. Must run as root (SlurmUser=SlurmdUser=root). Prints `export SLURM_CONF=DIR/slurm.conf`
# on stdout as its last line (everything else goes to stderr), so callers can `eval "$(slurm-up.sh DIR)"`.
#
# Needs the Debian packages slurm-wlm and munge (apt-get update && apt-get install -y slurm-wlm munge).
# munged is the system one (socket /run/munge/munge.socket.2, key /etc/munge/munge.key): reused if it already
# answers, otherwise started as user munge and recorded in DIR/munged.started so slurm-down.sh stops it.
#
# Idempotent: if the daemons recorded in DIR are alive and sinfo answers, it just prints the export line.
# Stop everything with slurm-down.sh DIR.
#
# Environment knobs (optional):
#   SLURM_UP_TIMEOUT   seconds to wait for the node to become idle (default 60)
#   SLURM_UP_PORT      SlurmctldPort to use (SlurmdPort = +1); default: a free random port in 40000-59999
#   SLURM_UP_CRED_EXPIRE  AuthInfo cred_expire seconds, >= 5 (default 10; Slurm's default 120). A requeued job stays
#                      PENDING (Reason=BeginTime) for this long before it may run again.
#   SLURM_UP_SCHED_PARAMS  SchedulerParameters (default batch_sched_delay=0,sched_interval=1,bf_interval=1)
#   SLURM_UP_EXTRA     extra slurm.conf lines appended verbatim (e.g. "SchedulerParameters=...")
set -euo pipefail

die() { echo "slurm-up: ERROR: $*" >&2; exit 1; }
log() { echo "slurm-up: $*" >&2; }

[[ $# -eq 1 ]] || die "usage: $0 DIR"
[[ $EUID -eq 0 ]] || die "must run as root (SlurmUser=root, munged is started as user munge)"
for b in slurmctld slurmd sinfo scontrol munge unmunge /usr/sbin/munged; do
    command -v "$b" >/dev/null || die "missing $b — apt-get install -y slurm-wlm munge"
done

mkdir -p "$1"
DIR=$(realpath "$1")
CONF=$DIR/slurm.conf
HOST=$(hostname -s)
TIMEOUT=${SLURM_UP_TIMEOUT:-60}
CRED_EXPIRE=${SLURM_UP_CRED_EXPIRE:-10}
# Slurm rejects cred_expire < 5 only with a log line and silently keeps 120 s — catch it here.
[[ $CRED_EXPIRE =~ ^[0-9]+$ ]] && ((CRED_EXPIRE >= 5)) || die "SLURM_UP_CRED_EXPIRE must be an integer >= 5"

pid_alive() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

# ---------- already running? (idempotency) ----------
if [[ -f $CONF ]] && pid_alive "$DIR/run/slurmctld.pid" && pid_alive "$DIR/run/slurmd.pid" \
   && SLURM_CONF=$CONF timeout 10 sinfo -h >/dev/null 2>&1; then
    log "cluster in $DIR already running"
    echo "export SLURM_CONF=$CONF"
    exit 0
fi
# Half-started leftovers (one daemon dead) are stopped first so we start clean.
if pid_alive "$DIR/run/slurmctld.pid" || pid_alive "$DIR/run/slurmd.pid"; then
    log "stale daemons in $DIR — stopping them first"
    "$(dirname "$(realpath "$0")")/slurm-down.sh" "$DIR" >&2
fi

# On failure: show the log tails and stop whatever we started, so nothing is left behind.
STARTED=0
on_err() {
    local rc=$?
    log "failed (rc=$rc); log tails follow"
    for f in "$DIR"/log/*.log; do [[ -f $f ]] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }; done
    if [[ $STARTED -eq 1 ]]; then
        "$(dirname "$(realpath "$0")")/slurm-down.sh" "$DIR" >&2 || true
    fi
    exit "$rc"
}
trap on_err ERR

# ---------- munge ----------
if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    log "munged already running — reusing it"
else
    [[ -r /etc/munge/munge.key ]] || die "/etc/munge/munge.key missing (reinstall munge or run mungekey -c)"
    install -d -o munge -g munge -m 0755 /run/munge
    install -d -o munge -g munge -m 0700 /var/log/munge /var/lib/munge
    # munged refuses to start if a stale socket/pid from a killed instance is present; -f would force,
    # removing just our own stale files is cleaner.
    rm -f /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock /run/munge/munged.pid
    su -s /bin/sh munge -c /usr/sbin/munged || die "munged did not start (see /var/log/munge/munged.log)"
    for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
    munge -n | unmunge >/dev/null || die "munged started but 'munge -n | unmunge' fails"
    cat /run/munge/munged.pid > "$DIR/munged.started"   # marker: slurm-down.sh stops it
    log "started munged (pid $(cat /run/munge/munged.pid))"
fi

# ---------- ports ----------
port_free() { ! ss -Htln "sport = :$1" | grep -q .; }
if [[ -n ${SLURM_UP_PORT:-} ]]; then
    PORT=$SLURM_UP_PORT
    port_free "$PORT" && port_free $((PORT + 1)) || die "SLURM_UP_PORT=$PORT or +1 is in use"
else
    PORT=
    for _ in $(seq 100); do
        p=$((40000 + RANDOM % 20000))
        if port_free "$p" && port_free $((p + 1)); then PORT=$p; break; fi
    done
    [[ -n $PORT ]] || die "no free port pair found in 40000-59999"
fi

# ---------- node size ----------
CPUS=$(nproc)
MEM_MB=$(awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo)
# slurmd drains the node if RealMemory exceeds what it measures: stay well below (80%).
REALMEM=$((MEM_MB * 8 / 10))

# ---------- config ----------
mkdir -p "$DIR"/{state,spool,run,log}
cat > "$CONF" <<EOF
# generated by deploy/testing/slurm-up.sh — single-node throw-away cluster; everything lives in $DIR
ClusterName=vqtok-test
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
AuthType=auth/munge
# cred_expire also delays a requeued job's restart (default 120 s) — short for tests
AuthInfo=cred_expire=$CRED_EXPIRE
CredType=cred/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
# Fast scheduling for tests (a 1-node cluster, so the cost is nil):
#  batch_sched_delay=0  start batch jobs right away (default: may delay them up to 3 s)
#  sched_interval=1, bf_interval=1  periodic passes every second (defaults 60 s / 30 s): a requeued job
#                       becomes eligible after cred_expire, but only a periodic pass starts it
SchedulerParameters=${SLURM_UP_SCHED_PARAMS:-batch_sched_delay=0,sched_interval=1,bf_interval=1}
SwitchType=switch/none
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
ReturnToService=2
MaxArraySize=100001
MaxJobCount=200000
# finished jobs vanish from squeue/scontrol after MinJobAge seconds
MinJobAge=60
KillWait=5
# no mail on this box (default /bin/mail missing → an error line in the log)
MailProg=/bin/true
InactiveLimit=0
NodeName=$HOST CPUs=$CPUS RealMemory=$REALMEM State=UNKNOWN
PartitionName=main Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
${SLURM_UP_EXTRA:-}
EOF
log "wrote $CONF (ports $PORT/$((PORT + 1)), CPUs=$CPUS RealMemory=$REALMEM)"

# ---------- daemons ----------
export SLURM_CONF=$CONF
STARTED=1
# -c: clear saved state from an earlier run in the same DIR (fresh cluster every time).
slurmctld -c -f "$CONF"
slurmd -f "$CONF"

deadline=$((SECONDS + TIMEOUT))
state=
while ((SECONDS < deadline)); do
    state=$(sinfo -h -N -n "$HOST" -o %T 2>/dev/null || true)
    [[ $state == idle ]] && break
    sleep 0.5
done
[[ $state == idle ]] || { log "node state '$state' after ${TIMEOUT}s"; false; }
trap - ERR
log "node $HOST idle ($(sinfo -h -o '%P %D %C' | head -1))"
echo "export SLURM_CONF=$CONF"
