#!/usr/bin/env bash
# Dumps one database into BACKUP_DIR as a pg_dump custom-format archive, proves the archive readable end
# to end, then keeps only the newest BACKUP_KEEP. On success it prints one line:
#   backup ok: file=<path> bytes=<n> tables=<n> seconds=<s>
# On any failure it exits non-zero and leaves no new file; the older backups stay untouched.
#
# Runs in the postgres image (the CronJob, db/backups/backup-cronjob.yaml) and locally (`npm run backup`).
# The database: the libpq variables (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE, ...), or
# DATABASE_URL without a password in it (the password goes in PGPASSWORD).
set -euo pipefail

backup_dir=${BACKUP_DIR:-/backups}
keep=${BACKUP_KEEP:-7}

fail() {
  echo "backup failed: $*" >&2
  exit 1
}

[[ $keep =~ ^[1-9][0-9]{0,3}$ ]] || fail "BACKUP_KEEP must be a whole number from 1 to 9999, got \"$keep\""
# An empty --dbname means libpq's defaults: PGDATABASE and the other variables.
database=${DATABASE_URL:-}
# A password in the URL would show on pg_dump's command line to anyone running `ps`.
[[ ! $database =~ ^[^:/]*://[^/@]*:[^/@]*@|[?\&]password= ]] || fail "DATABASE_URL has a password in it: put the password in PGPASSWORD instead"
# An unreachable host fails within seconds instead of hanging the job; a missing password fails
# instead of waiting at a prompt nobody sees (--no-password below).
export PGCONNECT_TIMEOUT=${PGCONNECT_TIMEOUT:-10}

started=${EPOCHREALTIME/[.,]/}
stamp=$(date -u +%Y%m%dT%H%M%SZ)
final="$backup_dir/backup-$stamp.dump"
partial="$backup_dir/.backup-$stamp.dump.partial"

mkdir -p -- "$backup_dir"
[[ ! -e $final ]] || fail "$final already exists (two backups in the same second?)"
# A run killed outright (SIGKILL, OOM, a lost node) cannot clean up after itself; the next one does.
find "$backup_dir" -maxdepth 1 -name '.backup-*.dump.partial' -mmin +60 -delete
trap 'rm -f -- "$partial"' EXIT
trap 'exit 129' HUP # these would end bash without running the EXIT trap
trap 'exit 130' INT
trap 'exit 143' TERM

pg_dump --format=custom --no-password --file="$partial" --dbname="$database" ||
  fail "pg_dump could not dump the database (its reason is above)"

# --list reads only the table of contents, which pg_dump writes first: a dump cut off in its data still
# lists. Restoring into /dev/null reads and decompresses every data block, so it catches truncation and
# corruption too.
tables=$(pg_restore --list -- "$partial" | awk '$4 == "TABLE" && $5 != "DATA" { n++ } END { print n + 0 }') ||
  fail "verify: pg_restore cannot read the table of contents of $partial"
pg_restore --file=/dev/null -- "$partial" ||
  fail "verify: pg_restore cannot read every data block of $partial (truncated or corrupt)"
bytes=$(($(wc -c <"$partial")))

mv -- "$partial" "$final" || fail "could not rename $partial to $final"

shopt -s nullglob
backups=("$backup_dir"/backup-????????T??????Z.dump) # the glob sorts them oldest first
if ((${#backups[@]} > keep)); then
  rm -f -- "${backups[@]:0:${#backups[@]}-keep}" || fail "could not delete backups beyond the newest $keep"
fi

elapsed=$((${EPOCHREALTIME/[.,]/} - started))
printf 'backup ok: file=%s bytes=%d tables=%d seconds=%d.%02d\n' "$final" "$bytes" "$tables" $((elapsed / 1000000)) $((elapsed % 1000000 / 10000))
