#!/bin/sh
# npm run lint:migrations [folder]: squawk over every migration in db/migrations (or the folder given), so
# that none can break the revision still running during a rollout. squawk names the file, the line and
# the rule for each problem, and exits non-zero.
#
# --assume-in-transaction: the migrator (functions/shared/db.ts) applies pending files inside one
#   transaction, so a failed migration leaves nothing half done. CREATE INDEX CONCURRENTLY cannot run in a
#   transaction at all; docs/updating.md says what to do instead.
# --pg-version: the oldest Postgres the migrations run on (the embedded one of `npm start` and the tests).
#
# A rule waived for a reason says so where it is waived, on the same line:
#   -- squawk-ignore <rule> -- <why this is safe here>
set -eu
dir=${1:-$(dirname "$0")/../db/migrations}
status=0

# Each waiver gives its reason.
if grep -nHE -- '--[[:space:]]*squawk-ignore' "$dir"/*.sql |
  grep -vE -- '--[[:space:]]*squawk-ignore(-file)?[[:space:]]+[a-z-]+([[:space:]]*,[[:space:]]*[a-z-]+)*[[:space:]]+--[[:space:]]*[^[:space:]]' >&2; then
  echo "lint:migrations: a squawk-ignore above has no reason: write it as -- squawk-ignore <rule> -- <why>" >&2
  status=1
fi

squawk --assume-in-transaction --pg-version=15.0 "$dir"/*.sql || status=1
exit $status
