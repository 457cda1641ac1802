# Runs inside a PostgreSQL member's Pod (kube-write.exec: sh -c SCRIPT sh ARGS...).
# Makes the member a standby of HOST:PORT. Arguments come as positional
# parameters, never spliced into this text, so no value can change the script.
#   $1 mode: config  - write standby.signal and the connection settings (server keeps running;
#                      a standby picks them up on reload, a primary on its next start)
#            rewind  - stop the server, pg_rewind it against HOST, then write the settings
#   $2 host  $3 port  $4 replication user  $5 slot  $6 application_name (the member)
#   $7 name of the environment variable holding the password  $8 pg_rewind's user
# The password is read from the container's environment and written only to
# postgresql.auto.conf (mode 0600), as pg_basebackup -R does: it never appears
# in an argument list, in this script's output or in the runner.
set -eu
mode=$1 host=$2 port=$3 user=$4 slot=$5 app=$6 pwvar=$7 rewinder=$8
: "${PGDATA:?PGDATA is not set in this container}"
pw=$(printenv "$pwvar" || true)
if [ -z "$pw" ]; then
  echo "$pwvar is not set in $app's container environment: the standby needs the replication password to reach $host" >&2
  exit 3
fi
umask 077
# libpq conninfo quoting, then postgresql.conf quoting (as pg_basebackup -R writes).
ci() { printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e "s/'/\\\\'/g"; }
cq() { printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e "s/'/''/g"; }
settings() {
  conninfo="host='$(ci "$host")' port='$(ci "$port")' user='$(ci "$user")' password='$(ci "$pw")' application_name='$(ci "$app")' connect_timeout=5"
  conf="$PGDATA/postgresql.auto.conf"
  tmp="$PGDATA/postgresql.auto.conf.runner"
  { grep -v -E '^[[:space:]]*(primary_conninfo|primary_slot_name)[[:space:]]*=' "$conf" 2>/dev/null || true
    printf "primary_conninfo = '%s'\n" "$(cq "$conninfo")"
    printf "primary_slot_name = '%s'\n" "$(cq "$slot")"
  } > "$tmp"
  mv "$tmp" "$conf"
  # Written last and again after a rewind: whatever happens, the member restarts as a standby.
  : > "$PGDATA/standby.signal"
}
case "$mode" in
  config)
    settings
    ;;
  rewind)
    : > "$PGDATA/standby.signal"
    # Whatever runs the server (a kubelet, the container runtime) starts it
    # again once it stopped, maybe while pg_rewind runs: a server started on a
    # directory half rewound replays the wrong WAL and leaves a member that can
    # never be rewound again. PostgreSQL's own lock files hold it off: a
    # postmaster refuses to start while its data directory's postmaster.pid, or
    # the lock file of its Unix socket, names a live process. Both are taken,
    # created only where none exists (noclobber), and held until the standby
    # settings are written. postmaster.pid alone is not enough: it is on
    # pg_rewind's exclusion list, which pg_rewind deletes from the target part
    # way through, and a server started then would run on the directory being
    # rewound (and on without a lock file once we leave). The socket's lock
    # file, outside the data directory, stays; a postmaster creates its
    # postmaster.pid before it, and removes it again when it gives up.
    # The server is stopped first; a restarted one that took the locks first is
    # stopped again; a directory left by a crash (not shut down cleanly) is let
    # go, so the next start recovers it, and stopped cleanly after that.
    lock="$PGDATA/postmaster.pid"
    # The server's first Unix socket directory and its port: lines 5 and 4 of
    # its postmaster.pid once it listens; until one is seen, the client's.
    case "${PGHOST:-}" in /*) sockdir=$PGHOST ;; *) sockdir=/var/run/postgresql ;; esac
    sockport=${PGPORT:-5432} socklock= nosocket= state=
    learn() {
      [ -f "$lock" ] || return 0
      d=$(sed -n 5p "$lock" 2>/dev/null || true) p=$(sed -n 4p "$lock" 2>/dev/null || true) s=$(sed -n 8p "$lock" 2>/dev/null || true)
      if [ -n "$d" ]; then sockdir=$d; fi
      case "$p" in ''|*[!0-9]*) ;; *) sockport=$p ;; esac
      # Line 5 stays empty once the server is up only when it listens on no Unix socket.
      case "$s" in ready*|standby*) if [ -z "$d" ]; then nosocket=1; fi ;; esac
    }
    take() { (set -C; printf '%s\n%s\n' "$$" "$PGDATA" > "$1") 2>/dev/null; }
    # A lock file is removed only while it still names this shell: never one
    # a server made after pg_rewind deleted ours.
    release() {
      for f in "$@"; do
        if [ -n "$f" ] && [ "$(sed -n 1p "$f" 2>/dev/null || true)" = "$$" ]; then rm -f "$f"; fi
      done
    }
    take_socket() {
      socklock="$sockdir/.s.PGSQL.$sockport.lock"
      if take "$socklock"; then return 0; fi
      # A server killed with SIGKILL leaves its socket's lock naming a dead
      # process; PostgreSQL replaces such a lock, and so do we. No server can
      # be at that step meanwhile: we hold postmaster.pid.
      holder=$(sed -n 1p "$socklock" 2>/dev/null || true)
      case "$holder" in ''|-|*[!0-9-]*) return 1 ;; esac
      if kill -0 "${holder#-}" 2>/dev/null; then return 1; fi
      rm -f "$socklock"
      take "$socklock"
    }
    trap 'release "$socklock" "$lock"' EXIT
    deadline=$(( $(date +%s) + 120 ))
    while :; do
      learn
      if [ -n "$nosocket" ]; then
        echo "$app: its server listens on no Unix socket (unix_socket_directories is empty): nothing would hold a restarted server off while pg_rewind runs" >&2
        exit 4
      fi
      if take "$lock"; then
        if take_socket; then
          state=$(LC_ALL=C pg_controldata -D "$PGDATA" 2>/dev/null | sed -n 's/^Database cluster state: *//p')
          case "$state" in
            "shut down"|"shut down in recovery") break ;;
          esac
        fi
        release "$socklock" "$lock"
      elif pg_ctl status -D "$PGDATA" >/dev/null 2>&1; then
        learn
        pg_ctl stop -D "$PGDATA" -m fast -w -t 60 >&2 || true
      fi
      if [ "$(date +%s)" -ge "$deadline" ]; then
        echo "$app: its server could not be held stopped for pg_rewind within 120 s (cluster state: ${state:-unknown}; lock files $lock and $sockdir/.s.PGSQL.$sockport.lock: one of a server that does not run, and nothing restarted it?)" >&2
        exit 4
      fi
      sleep 0.2
    done
    src="host='$(ci "$host")' port='$(ci "$port")' user='$(ci "$rewinder")' dbname=postgres connect_timeout=5"
    PGPASSWORD=$pw pg_rewind --target-pgdata="$PGDATA" --source-server="$src" >&2
    # Slots this member held as a primary would pin WAL forever on a standby.
    rm -rf "$PGDATA"/pg_replslot/*
    settings
    ;;
  *)
    echo "unknown mode $mode" >&2
    exit 2
    ;;
esac
echo "ok $mode $app -> $host:$port slot $slot"
