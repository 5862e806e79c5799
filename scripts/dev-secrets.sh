#!/bin/sh
# skaffold's dev profile runs this before each deploy: the Secrets pixabay-apikey and
# postgres-credentials straight from the gitignored .env (or the file given as $1), so that
# `skaffold dev` works on a fresh cluster before anything is sealed for it. Values reach kubectl
# through a private temporary file, never on a command line.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
env_file=${1:-$root/.env}

if [ ! -f "$env_file" ]; then
  echo "dev-secrets: $env_file not found: copy .env.example to .env and fill in API_KEY, PGUSER, PGPASSWORD and PGDATABASE" >&2
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
      echo "dev-secrets: $env_file has no value for $key" >&2
      exit 1
    fi
    printf '%s\n' "$line" >>"$work/$name"
  done
  kubectl create secret generic "$name" --namespace=exercises --from-env-file="$work/$name" --dry-run=client --output=yaml |
    kubectl apply --filename=-
}

kubectl apply --filename="$root/knative/namespace.yaml"
secret pixabay-apikey API_KEY
secret postgres-credentials PGUSER PGPASSWORD PGDATABASE
