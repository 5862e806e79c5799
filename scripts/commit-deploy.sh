#!/bin/sh
# The pipeline's deploy commit (.github/workflows/delivery.yaml): commits what `npm run promote` changed in
# environments/<environment>/ and pushes it to main, rebasing onto whatever was pushed meanwhile. Its
# subject starts with "deploy(", which is how the pipeline tells its own commits from the ones it builds.
#   scripts/commit-deploy.sh <environment> <subject>
set -eu
if [ $# -ne 2 ]; then
  echo "usage: scripts/commit-deploy.sh <environment> <subject>" >&2
  exit 2
fi
folder=environments/$1
case $2 in
  "deploy("*) ;;
  *) echo "commit-deploy: the subject must start with \"deploy(\", got: $2" >&2; exit 2 ;;
esac

if git diff --quiet -- "$folder"; then
  echo "commit-deploy: nothing changed in $folder; nothing to commit"
  exit 0
fi
git -c user.name='github-actions[bot]' -c user.email='41898282+github-actions[bot]@users.noreply.github.com' \
  commit --quiet --message="$2" -- "$folder"
for attempt in 1 2 3; do
  if git push --quiet origin HEAD:main; then
    echo "commit-deploy: $(git log -1 --format='%h %s')"
    exit 0
  fi
  echo "commit-deploy: main moved on (attempt $attempt); rebasing onto it" >&2
  git pull --quiet --rebase origin main
done
echo "commit-deploy: could not push to main after 3 attempts" >&2
exit 1
