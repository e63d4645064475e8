#!/usr/bin/env bash
# slurm-down.sh DIR — stop the cluster started by slurm-up.sh DIR and leave nothing running:
#   1. cancel all jobs (while the daemons still run, so job processes are killed the normal way),
#   2. stop slurmctld and slurmd by their pid files, and munged only if slurm-up.sh started it (marker
#      DIR/munged.started) and no other slurm-up.sh cluster still runs (the marker then moves to that
#      cluster's DIR) — TERM to all at once, KILL after 10 s,
#   3. kill stray slurmstepd processes of this cluster (found by SLURM_CONF=DIR/slurm.conf in their
#      environment, inherited from slurmd) together with their children.
# Files in DIR are kept (logs are useful); rm -rf DIR afterwards if wanted. Safe to run twice.
set -euo pipefail

die() { echo "slurm-down: ERROR: $*" >&2; exit 1; }
log() { echo "slurm-down: $*" >&2; }

[[ $# -eq 1 ]] || die "usage: $0 DIR"
[[ $EUID -eq 0 ]] || die "must run as root"
[[ -d $1 ]] || { log "$1 does not exist — nothing to stop"; exit 0; }
DIR=$(realpath "$1")
CONF=$DIR/slurm.conf

pid_alive() { kill -0 "$1" 2>/dev/null; }

# stop_all NAME=PID ... : TERM all at once (slurmctld and munged each take ~2 s to exit, so doing them in
# parallel halves the time), wait up to 10 s, then KILL whatever is left.
stop_all() {
    local np name pid left
    for np in "$@"; do pid_alive "${np#*=}" && kill -TERM "${np#*=}" 2>/dev/null || true; done
    for _ in $(seq 100); do
        left=0
        for np in "$@"; do pid_alive "${np#*=}" && left=1; done
        ((left)) || break
        sleep 0.1
    done
    for np in "$@"; do
        name=${np%%=*} pid=${np#*=}
        if pid_alive "$pid"; then
            log "$name ($pid) ignored TERM for 10 s — KILL"
            kill -KILL "$pid" 2>/dev/null || true
        else
            log "stopped $name ($pid)"
        fi
    done
}

# 1. cancel jobs
if [[ -f $CONF && -s $DIR/run/slurmctld.pid ]] && pid_alive "$(cat "$DIR/run/slurmctld.pid")"; then
    export SLURM_CONF=$CONF
    jobs=$(timeout 10 squeue -h -o %i 2>/dev/null || true)
    if [[ -n $jobs ]]; then
        log "cancelling jobs: $(echo $jobs)"
        timeout 10 scancel --full $jobs 2>/dev/null || true
        for _ in $(seq 40); do
            [[ -z $(timeout 5 squeue -h -t R,CG,PD -o %i 2>/dev/null) ]] && break
            sleep 0.25
        done
    fi
fi

# 2. daemons (+ munged if slurm-up.sh started it: marker DIR/munged.started holds its pid)
procs=()
add_proc() { # add_proc NAME PIDFILE — only if that pid is still a process called NAME (pid reuse)
    local pid
    [[ -s $2 ]] || return 0
    pid=$(cat "$2")
    [[ $(cat "/proc/$pid/comm" 2>/dev/null || true) == "$1" ]] && procs+=("$1=$pid")
    return 0
}
add_proc slurmd "$DIR/run/slurmd.pid"
add_proc slurmctld "$DIR/run/slurmctld.pid"
# munged is shared by every cluster on this host (one socket in /run/munge). If another slurm-up.sh cluster
# still runs, hand the "started by us" marker over to it instead of stopping munged under its feet.
if [[ -f $DIR/munged.started ]]; then
    for opid in $(pgrep -x slurmctld || true); do
        oconf=$(tr '\0' '\n' 2>/dev/null < "/proc/$opid/environ" | sed -n 's/^SLURM_CONF=//p' || true)
        odir=$(dirname "${oconf:-/nonexistent/x}")
        if [[ -n $oconf && $oconf != "$CONF" && -f $oconf && $(cat "$odir/run/slurmctld.pid" 2>/dev/null) == "$opid" ]]; then
            mv "$DIR/munged.started" "$odir/munged.started"
            log "munged still needed by the cluster in $odir — left running (its slurm-down.sh will stop it)"
            break
        fi
    done
fi
add_proc munged "$DIR/munged.started"
if ((${#procs[@]})); then stop_all "${procs[@]}"; fi
rm -f "$DIR/run/slurmd.pid" "$DIR/run/slurmctld.pid" "$DIR/munged.started"

# 3. stray slurmstepd of THIS cluster (and their process trees)
descendants() { local c; for c in $(pgrep -P "$1" || true); do descendants "$c"; echo "$c"; done; }
for pid in $(pgrep -x slurmstepd || true); do
    if tr '\0' '\n' 2>/dev/null < "/proc/$pid/environ" | grep -qxF "SLURM_CONF=$CONF"; then
        kids=$(descendants "$pid")
        log "killing stray slurmstepd $pid and children: $(echo $kids)"
        kill -KILL $kids "$pid" 2>/dev/null || true
    fi
done

log "done"
