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
    # again once it stopped, maybe between our stop and pg_rewind: a rewind
    # under a running server corrupts it. So the server is stopped and then
    # PostgreSQL's own lock file taken, created only where none exists
    # (noclobber): no server starts on this directory while we hold it. A
    # restarted server that took the lock first is stopped again; a directory
    # left by a crash (not shut down cleanly) is let go, so the next start
    # recovers it, and stopped cleanly after that.
    lock="$PGDATA/postmaster.pid"
    deadline=$(( $(date +%s) + 120 ))
    while :; do
      if (set -C; printf '%s\n%s\n' "$$" "$PGDATA" > "$lock") 2>/dev/null; then
        trap 'rm -f "$lock"' EXIT
        state=$(LC_ALL=C pg_controldata -D "$PGDATA" 2>/dev/null | sed -n 's/^Database cluster state: *//p')
        case "$state" in
          "shut down"|"shut down in recovery") break ;;
        esac
        rm -f "$lock"
        trap - EXIT
      elif pg_ctl status -D "$PGDATA" >/dev/null 2>&1; then
        pg_ctl stop -D "$PGDATA" -m fast -w -t 60 >&2 || true
      fi
      if [ "$(date +%s)" -ge "$deadline" ]; then
        echo "$app: its server could not be held stopped for pg_rewind within 120 s (cluster state: ${state:-unknown}; postmaster.pid of a server that does not run, and nothing restarted it?)" >&2
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
