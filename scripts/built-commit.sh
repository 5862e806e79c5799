#!/bin/sh
# Prints the newest commit at or before <ref> that the pipeline built an image for: <ref> itself, unless it
# is one of the pipeline's own deploy commits (scripts/commit-deploy.sh), which only move an environment
# and build nothing. .github/workflows/delivery.yaml uses it to find the image a tag means, and to see
# whether main has moved on past the commit it just built.
#   scripts/built-commit.sh <ref>
set -eu
if [ $# -ne 1 ]; then
  echo "usage: scripts/built-commit.sh <ref>" >&2
  exit 2
fi
git log -1 --format=%H --invert-grep --grep='^deploy(' "$1" --
