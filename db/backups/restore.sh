#!/usr/bin/env bash
# Restores a dump made by backup.sh:  restore.sh <dump file, or a folder for its newest dump> [--force]
# Into a database without tables it restores as is. Into one that has tables it refuses, naming them,
# unless --force: then the dump's objects are dropped and recreated from the dump. Either way in one
# transaction, so a failed restore changes nothing. On success it prints one line:
#   restore ok: file=<path> tables=<n> seconds=<s>
#
# Runs in the postgres image (the cluster one-liner in docs/backups.md) and locally (`npm run restore`).
# The database: the libpq variables, or DATABASE_URL without a password in it, as for backup.sh.
set -euo pipefail

fail() {
  echo "restore failed: $*" >&2
  exit 1
}
usage() {
  echo "usage: restore.sh <dump file | backup folder> [--force]" >&2
  exit 2
}

dump=
force=false
for arg in "$@"; do
  case $arg in
    --force) force=true ;;
    -*) usage ;;
    *) [[ -z $dump ]] || usage; dump=$arg ;;
  esac
done
[[ -n $dump ]] || usage
if [[ -d $dump ]]; then
  shopt -s nullglob
  backups=("${dump%/}"/backup-????????T??????Z.dump) # the glob sorts them oldest first
  ((${#backups[@]})) || fail "no backup-*.dump in $dump"
  dump=${backups[-1]}
fi
[[ -f $dump && -r $dump ]] || fail "no readable file at $dump"

# An empty --dbname means libpq's defaults: PGDATABASE and the other variables.
database=${DATABASE_URL:-}
# A password in the URL would show on the command lines below to anyone running `ps`.
[[ ! $database =~ ^[^:/]*://[^/@]*:[^/@]*@|[?\&]password= ]] || fail "DATABASE_URL has a password in it: put the password in PGPASSWORD instead"
export PGCONNECT_TIMEOUT=${PGCONNECT_TIMEOUT:-10}
started=${EPOCHREALTIME/[.,]/}

tables=$(pg_restore --list -- "$dump" | awk '$4 == "TABLE" && $5 != "DATA" { n++ } END { print n + 0 }') ||
  fail "$dump is not an archive made by pg_dump --format=custom (or it is damaged)"

# Every table outside the system schemas, with its row count (query_to_xml runs each count inside this one statement).
existing=$(psql --no-psqlrc --no-password --quiet --tuples-only --no-align --set=ON_ERROR_STOP=1 --dbname="$database" --command="
  select string_agg(format('%I.%I (rows: %s)', n.nspname, c.relname,
           (xpath('/row/c/text()', query_to_xml(format('select count(*) as c from %I.%I', n.nspname, c.relname), false, true, '')))[1]),
         ', ' order by n.nspname, c.relname)
  from pg_class c join pg_namespace n on n.oid = c.relnamespace
  where c.relkind in ('r', 'p') and n.nspname <> 'information_schema' and n.nspname !~ '^pg_'") ||
  fail "cannot look into the database (the reason is above)"

clean=()
if [[ -n $existing ]]; then
  $force || fail "the database is not empty, it has $existing. Pass --force to replace it with the dump"
  clean=(--clean --if-exists)
fi

# --no-owner and --no-acl: the roles of the server the dump came from need not exist here; the restored
# objects belong to the user restoring them.
pg_restore --no-password --single-transaction --exit-on-error --no-owner --no-acl "${clean[@]}" \
  --dbname="$database" -- "$dump" ||
  fail "pg_restore stopped (the reason is above); the transaction was rolled back, nothing changed"

elapsed=$((${EPOCHREALTIME/[.,]/} - started))
printf 'restore ok: file=%s tables=%d seconds=%d.%02d\n' "$dump" "$tables" $((elapsed / 1000000)) $((elapsed % 1000000 / 10000))
