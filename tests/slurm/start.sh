#!/bin/bash
# DIS test copy of the single-node SLURM recipe (derived from shared/slurm/start-slurm.sh).
# Idempotent single-node SLURM (Debian 12 "bookworm", slurm-wlm 22.05) for tests.
# Installs (if needed), configures, starts munged [+ mariadb + slurmdbd], slurmctld, slurmd,
# then waits until `sinfo` shows the node idle.  Stop with stop-slurm.sh (PID files).
#
#   WITH_DBD=1 (default)  also run MariaDB + slurmdbd so that `sacct` works.  submitit polls
#                         sacct: without it, jobs that die without writing a result (scancel,
#                         time-out, OOM) stay in state UNKNOWN forever.
#   RESET=1               wipe job state / spool / accounting DB before starting.
#   SLURM_BASE=/tmp/dis-slurm   where state, logs and PID files go.
set -euo pipefail

BASE=${SLURM_BASE:-/tmp/dis-slurm}
S=$BASE/state
WITH_DBD=${WITH_DBD:-1}
RESET=${RESET:-0}
T0=$(date +%s.%N)
log() { printf '[start-slurm %6.2fs] %s\n' "$(echo "$(date +%s.%N) - $T0" | bc)" "$*"; }
# a PID file's process is alive when it runs and is that daemon: a stale file (a machine restarted with /tmp kept)
# may name a PID since reused by another process, and the daemon would then never be started
alive() { local pid; [ -s "$1" ] && pid=$(cat "$1") && kill -0 "$pid" 2>/dev/null &&
          [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "${2:-$(basename "$1" .pid)}" ]; }

# ---------------------------------------------------------------- install
PKGS="slurmctld slurmd slurm-client munge bc"
[ "$WITH_DBD" = 1 ] && PKGS="$PKGS slurmdbd mariadb-server"
missing=""
for p in $PKGS; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"; done
if [ -n "$missing" ]; then
  echo "[start-slurm] installing:$missing"
  # keep the package scripts from starting services themselves (no init system here)
  made_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; made_policy=1; fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
  [ "$made_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
fi
log "packages ok"

if [ "$RESET" = 1 ]; then
  for f in slurmd slurmctld slurmdbd; do alive "$S/run/$f.pid" && { echo "RESET=1 but $f is running: run stop-slurm.sh first" >&2; exit 1; }; done
  rm -rf "$S/ctld" "$S/d" "$S/mysql" "$S/log"
fi
mkdir -p "$S/ctld" "$S/d" "$S/log" "$S/run" "$S/mysqlrun"

# ---------------------------------------------------------------- munge
install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
install -d -o munge -g munge -m 0755 /run/munge
if [ ! -s /etc/munge/munge.key ]; then
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
fi
chown munge:munge /etc/munge/munge.key; chmod 0400 /etc/munge/munge.key   # munged refuses group/other-readable keys
if ! alive /run/munge/munged.pid; then
  runuser -u munge -- /usr/sbin/munged          # daemonizes, writes /run/munge/munged.pid
fi
munge -n | unmunge >/dev/null
log "munged up (pid $(cat /run/munge/munged.pid))"

# ---------------------------------------------------------------- mariadb + slurmdbd
if [ "$WITH_DBD" = 1 ]; then
  chown mysql:mysql "$S/mysqlrun"
  install -d -o mysql -g mysql -m 0755 /run/mysqld
  if [ ! -d "$S/mysql/mysql" ]; then
    install -d -o mysql -g mysql "$S/mysql"
    mariadb-install-db --user=mysql --datadir="$S/mysql" --auth-root-authentication-method=socket \
      --skip-test-db > "$S/mysqlrun/install-db.log" 2>&1
  fi
  if ! alive "$S/mysqlrun/mysqld.pid" mariadbd; then
    # unix socket only (no TCP); /run/mysqld/mysqld.sock is where slurmdbd's client library looks
    setsid /usr/sbin/mariadbd --no-defaults --user=mysql --datadir="$S/mysql" \
      --socket=/run/mysqld/mysqld.sock --pid-file="$S/mysqlrun/mysqld.pid" --skip-networking \
      --log-error="$S/mysqlrun/mariadb.log" --innodb-buffer-pool-size=64M </dev/null >/dev/null 2>&1 &
  fi
  for i in $(seq 1 100); do mariadb --no-defaults -uroot -e 'select 1' >/dev/null 2>&1 && break; sleep 0.1; done
  mariadb --no-defaults -uroot -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
    CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurmpw';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"
  log "mariadb up (pid $(cat "$S/mysqlrun/mysqld.pid"))"
  cat > /etc/slurm/slurmdbd.conf <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=root
DebugLevel=info
LogFile=$S/log/slurmdbd.log
PidFile=$S/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=slurmpw
StorageLoc=slurm_acct_db
EOF
  chmod 600 /etc/slurm/slurmdbd.conf            # slurmdbd refuses a world-readable conf
  listening() { (exec 3<>/dev/tcp/127.0.0.1/6819) 2>/dev/null; }
  # a first start creates the accounting tables (slow on a busy disk); a slurmdbd that exited is started again,
  # and one that never listens stops the set-up here (else sacct fails later, far from the cause)
  for attempt in 1 2 3; do
    alive "$S/run/slurmdbd.pid" || slurmdbd || true
    for i in $(seq 1 600); do
      listening && break
      [ "$i" -gt 30 ] && ! alive "$S/run/slurmdbd.pid" && break   # it exited: start it again
      sleep 0.1
    done
    listening && break
  done
  if ! listening; then
    echo "[start-slurm] slurmdbd does not listen on 6819; the end of $S/log/slurmdbd.log:" >&2
    tail -20 "$S/log/slurmdbd.log" >&2 || true
    exit 1
  fi
  log "slurmdbd up (pid $(cat "$S/run/slurmdbd.pid"))"
  ACCT="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819"
else
  ACCT="AccountingStorageType=accounting_storage/none"
fi

# ---------------------------------------------------------------- slurm.conf
MEM=$(free -m | awk '/^Mem:/{m=$2-2048; if (m<1024) m=$2; print m}')   # must not exceed real memory
CPUS=$(nproc)
mkdir -p /etc/slurm
cat > /etc/slurm/slurm.conf <<EOF
ClusterName=dis
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$S/ctld
SlurmdSpoolDir=$S/d
SlurmctldPidFile=$S/run/slurmctld.pid
SlurmdPidFile=$S/run/slurmd.pid
SlurmctldLogFile=$S/log/slurmctld.log
SlurmdLogFile=$S/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
$ACCT
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
MailProg=/bin/true
SwitchType=switch/none
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
KillWait=5
Waittime=0
MaxArraySize=10001
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF

alive "$S/run/slurmctld.pid" || slurmctld
alive "$S/run/slurmd.pid" || slurmd -N localhost     # node name != `hostname`, so name it
for i in $(seq 1 50); do alive "$S/run/slurmctld.pid" && alive "$S/run/slurmd.pid" && break; sleep 0.1; done
log "slurmctld pid $(cat "$S/run/slurmctld.pid"), slurmd pid $(cat "$S/run/slurmd.pid")"

st=""
for i in $(seq 1 120); do
  st=$(sinfo -h -n localhost -o %T 2>/dev/null || true)
  case "$st" in
    idle|mixed|allocated) break ;;
    drain*|down*) scontrol update nodename=localhost state=resume 2>/dev/null || true ;;
  esac
  sleep 0.5
done
case "$st" in idle|mixed|allocated) ;; *) echo "[start-slurm] node state '$st' - see $S/log" >&2; exit 1 ;; esac
log "ready: $(sinfo -h -o '%P %a %D %T %N')"
