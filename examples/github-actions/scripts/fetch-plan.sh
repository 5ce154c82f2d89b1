#!/usr/bin/env bash
# Finds the plan that ../pr-plan.yml saved for the pull request merged as GITHUB_SHA and
# unpacks it into DIR (as DIR/plan.json). Finding none is not an error: apply.sh then plans
# afresh and says so in the job summary. The plan is checked, not trusted: castsync applies it
# only when the merged tree, the config, the target and the key lists still match it, and it
# can only narrow what a fresh plan would do.
#
#   $1                  the directory to unpack into (created)
#   GH_TOKEN            a token that may read the repository's pull requests and artifacts
#   GITHUB_REPOSITORY   owner/name (set by GitHub)
#   GITHUB_SHA          the pushed commit (set by GitHub)
#
# Needs gh and unzip. Exit status: 0, whether a plan was found or not.
set -euo pipefail

dir=${1:?usage: fetch-plan.sh DIR}
: "${GITHUB_REPOSITORY:?GITHUB_REPOSITORY is not set}"
: "${GITHUB_SHA:?GITHUB_SHA is not set}"
mkdir -p "$dir"

# The pull request this commit belongs to (a fast-forward, merge or squash of it), and the
# head commit its plan was saved for.
if ! head=$(gh api "repos/$GITHUB_REPOSITORY/commits/$GITHUB_SHA/pulls" \
  --jq '[.[] | select(.merged_at != null)] | first | .head.sha // empty'); then
  echo "cannot ask GitHub for the pull request of $GITHUB_SHA: no reviewed plan" >&2
  exit 0
fi
if [ -z "$head" ]; then
  echo "$GITHUB_SHA belongs to no merged pull request: no reviewed plan" >&2
  exit 0
fi

# The newest unexpired artifact of that name saved by a run on that very head commit.
name="castsync-plan-$head"
if ! url=$(gh api "repos/$GITHUB_REPOSITORY/actions/artifacts?name=$name&per_page=100" \
  --jq "[.artifacts[] | select(.expired == false and .workflow_run.head_sha == \"$head\")] | sort_by(.created_at) | last | .archive_download_url // empty"); then
  echo "cannot list the artifacts named $name: no reviewed plan" >&2
  exit 0
fi
if [ -z "$url" ]; then
  echo "no artifact $name (the plan job failed, or the artifact expired): no reviewed plan" >&2
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if ! gh api "$url" >"$work/plan.zip" || ! unzip -o -q "$work/plan.zip" plan.json -d "$dir"; then
  echo "cannot download or unpack the artifact $name: no reviewed plan" >&2
  rm -f "$dir/plan.json"
  exit 0
fi
echo "the reviewed plan of pull request head $head is in $dir/plan.json"
