#!/usr/bin/env bash
# The README's PostgreSQL recipe on a throw-away server: initdb in a temporary folder, a server
# on 127.0.0.1 only (and a socket in that folder), stopped and removed on exit. Run from a folder
# holding odd.kml; prints the longitudes of the loaded rows, sorted, joined by `|`.
#   postgres.sh --check   exit 0 if initdb, pg_ctl and psql are there
set -euo pipefail
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
[ -n "$bin" ] && PATH="$bin:$PATH"
for tool in initdb pg_ctl psql; do
  command -v "$tool" > /dev/null || { echo "postgres.sh: no $tool" >&2; exit 1; }
done
[ "${1:-}" = --check ] && exit 0

# The server refuses to run as root: then it runs as the postgres user of the package.
as=()
if [ "$(id -u)" = 0 ]; then as=(runuser -u postgres --); fi
dir=$(mktemp -d "${TMPDIR:-/tmp}/kml2csv-pg.XXXXXX")
cleanup() {
  "${as[@]}" pg_ctl -D "$dir/data" -m immediate stop > /dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT
[ "${#as[@]}" = 0 ] || chown postgres "$dir"
"${as[@]}" initdb -D "$dir/data" -A trust -U postgres > "$dir/initdb.log" 2>&1 ||
  { cat "$dir/initdb.log" >&2; exit 1; }
# A free port: the first one the server can bind.
for _ in 1 2 3 4 5; do
  port=$((20000 + RANDOM % 20000))
  if "${as[@]}" pg_ctl -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off" start > /dev/null; then
    started=1
    break
  fi
done
[ "${started:-0}" = 1 ] || { cat "$dir/server.log" >&2; exit 1; }
export PGHOST=127.0.0.1 PGPORT=$port PGUSER=postgres PGDATABASE=postgres

# --- the recipe, as in the README ---
psql -q -v ON_ERROR_STOP=1 -c 'CREATE TABLE points (source text, feature integer, name text,
  geometry text, part integer, ring text, vertex integer, longitude double precision,
  latitude double precision, altitude double precision, "when" text)'
"$KML2CSV" odd.kml --merge - | psql -v ON_ERROR_STOP=1 -c "COPY points FROM STDIN CSV HEADER"
# ---

psql -At -v ON_ERROR_STOP=1 -c "SELECT string_agg(longitude::text, '|' ORDER BY longitude) FROM points"
