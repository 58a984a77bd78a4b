#!/usr/bin/env bash
# Installs PostgreSQL from Debian's packages (if missing), starts a cluster on loopback, and
# prints the URL of a superuser role the tests may create databases with.
set -euo pipefail
if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
fi
bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
data="${SCIMTRAIL_PG_DATA:-/tmp/scimtrail-pg}"
port="${SCIMTRAIL_PG_PORT:-55432}"
if [ ! -f "$data/PG_VERSION" ]; then
  rm -rf "$data"
  mkdir -p "$data"
  chown postgres:postgres "$data"
  su postgres -c "$bin/initdb -D '$data' -A trust -U scimtrail" >/dev/null
fi
if ! su postgres -c "$bin/pg_ctl -D '$data' status" >/dev/null 2>&1; then
  # The socket lives in the data directory, so no stale lock in /tmp can stop a start. A
  # cluster that crashed recovers first (it fsyncs every file), hence the long wait.
  if ! su postgres -c "$bin/pg_ctl -D '$data' -l '$data/server.log' -w -t 300 -o \"-h 127.0.0.1 -p $port -k '$data'\" start" >&2; then
    echo "PostgreSQL did not start; the end of its log:" >&2
    tail -n 30 "$data/server.log" >&2 || true
    exit 1
  fi
fi
# The tests create a database each and leave it behind (a crashed or killed test could not drop
# it anyway): a cluster kept between runs grew to 3,500 of them, 27 GB. Drop those no session
# uses; one in use refuses DROP DATABASE and stays.
leftovers="$(su postgres -c "$bin/psql -h 127.0.0.1 -p $port -U scimtrail -d postgres -At -c \"SELECT datname FROM pg_database WHERE datname LIKE 'scimtrail\\_test\\_%' OR datname LIKE 'scimtrail\\_it\\_%'\"" 2>/dev/null || true)"
dropped=0
for name in $leftovers; do
  if su postgres -c "$bin/psql -h 127.0.0.1 -p $port -U scimtrail -d postgres -q -c 'DROP DATABASE \"$name\"'" >/dev/null 2>&1; then
    dropped=$((dropped + 1))
  fi
done
[ "$dropped" -eq 0 ] || echo "dropped $dropped test databases left by earlier runs" >&2
echo "postgres://scimtrail@127.0.0.1:$port/postgres"
