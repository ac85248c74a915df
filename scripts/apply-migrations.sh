#!/usr/bin/env bash
# Apply the schema exported by `python manage.py export_sql DIR` with psql alone (no Python, no Django).
#
#   DATABASE_URL=postgres://USER@HOST:PORT/NAME scripts/apply-migrations.sh DIR
#
# Each file runs in one transaction (`--single-transaction`, ON_ERROR_STOP): a failing file changes nothing and
# stops the run. A file whose migration the database already holds (in the ledger, schema_migrations, or in
# django_migrations) is skipped, so running again applies only what is new. The last file (content types,
# permissions, roles) has no migration and is idempotent: it runs every time. A migration Django runs outside a
# transaction (`atomic = False`, e.g. CREATE INDEX CONCURRENTLY) is marked `-- honua-atomic: false` and runs
# without one. PSQL names the psql binary (default: psql on PATH); use one of the server's major version.
set -euo pipefail

usage="usage: DATABASE_URL=postgres://... $0 DIR"
dir=${1:?$usage}
url=${DATABASE_URL:?$usage}
psql_bin=${PSQL:-psql}
[ -d "$dir" ] || { echo "apply-migrations: no such folder: $dir" >&2; exit 2; }

export PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning"
run_psql() { "$psql_bin" "$url" --no-psqlrc --quiet --set ON_ERROR_STOP=1 "$@"; }

# What the database holds already: app.name of every migration in the ledger or in django_migrations.
tables=$(run_psql --tuples-only --no-align --command \
  "SELECT concat_ws(' ', CASE WHEN to_regclass('public.schema_migrations') IS NOT NULL THEN 'ledger' END,
                          CASE WHEN to_regclass('public.django_migrations') IS NOT NULL THEN 'django' END)")
query=""
[[ $tables == *ledger* ]] && query="SELECT app || '.' || name FROM schema_migrations"
[[ $tables == *django* ]] && query="${query:+$query UNION }SELECT app || '.' || name FROM django_migrations"
applied=""
[ -n "$query" ] && applied=$(run_psql --tuples-only --no-align --command "$query")

count=0
skipped=0
shopt -s nullglob
files=("$dir"/[0-9][0-9][0-9]_*.sql)
[ ${#files[@]} -gt 0 ] || { echo "apply-migrations: no NNN_*.sql files in $dir" >&2; exit 2; }
for file in "${files[@]}"; do
  name=$(basename "$file")
  migration=$(sed -n 's/^-- honua-migration: //p' "$file" | head -n 1)
  if [ -n "$migration" ] && grep -qxF "$migration" <<<"$applied"; then
    skipped=$((skipped + 1))
    continue
  fi
  if grep -qx -- '-- honua-atomic: false' "$file"; then
    transaction=()
  else
    transaction=(--single-transaction)
  fi
  echo "applying $name"
  if ! run_psql "${transaction[@]}" --file "$file" --output /dev/null; then
    echo "apply-migrations: $name failed; nothing of it was applied (see the error above)" >&2
    exit 1
  fi
  count=$((count + 1))
done
echo "applied $count file(s), skipped $skipped already applied"
