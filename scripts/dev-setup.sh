#!/bin/sh
# skaffold runs this before each deploy of environments/dev: it applies what must outlive Ctrl-C,
# which deletes what skaffold deployed itself. That is the namespace, the backups' volume, and the Secrets
# pixabay-apikey and postgres-credentials. The Secrets come straight from the gitignored .env (or the
# file given as $1), so `skaffold dev` works on a fresh cluster before anything is sealed for it. Values
# reach kubectl through a private temporary file, never on a command line.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
env_file=${1:-$root/.env}

if [ ! -f "$env_file" ]; then
  echo "dev-setup: $env_file not found: copy .env.example to .env and fill in API_KEY, PGUSER, PGPASSWORD and PGDATABASE" >&2
  exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
umask 077

# secret NAME KEY...: the Secret NAME holding exactly these keys, with their last values in the .env file.
secret() {
  name=$1
  shift
  : >"$work/$name"
  for key in "$@"; do
    line=$(grep -E "^$key=" "$env_file" | tail -n 1 || true)
    if [ -z "${line#*=}" ]; then
      echo "dev-setup: $env_file has no value for $key" >&2
      exit 1
    fi
    printf '%s\n' "$line" >>"$work/$name"
  done
  kubectl create secret generic "$name" --namespace=exercises --from-env-file="$work/$name" --dry-run=client --output=yaml |
    kubectl apply --filename=-
}

kubectl apply --filename="$root/environments/dev/namespace.yaml"
kubectl apply --filename="$root/db/backups/backup-pvc.yaml"
secret pixabay-apikey API_KEY
secret postgres-credentials PGUSER PGPASSWORD PGDATABASE
