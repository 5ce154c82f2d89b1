#!/usr/bin/env bash
# Publishes a file as the pull request's one castsync comment: edits the comment that starts
# with the marker if github-actions[bot] already wrote one, else creates it. Every push
# updates the same comment instead of adding a new one.
#
#   $1                  the comment body (its first line is the marker)
#   GH_TOKEN            a token that may write pull-request comments (github.token)
#   GITHUB_REPOSITORY   owner/name (set by GitHub)
#   PR_NUMBER           the pull request's number
#   CASTSYNC_COMMENT_AUTHOR  whose comment to edit (default: github-actions[bot])
set -euo pipefail

body=${1:?usage: sticky-comment.sh BODY_FILE}
: "${GITHUB_REPOSITORY:?GITHUB_REPOSITORY is not set}"
: "${PR_NUMBER:?PR_NUMBER is not set}"
author=${CASTSYNC_COMMENT_AUTHOR:-github-actions[bot]}
marker=$(head -n 1 "$body")

# gh applies the --jq filter to every page; awk keeps the first match without closing the
# pipe early (head would, and pipefail would then fail the step).
id=$(gh api --paginate "repos/$GITHUB_REPOSITORY/issues/$PR_NUMBER/comments" \
  --jq ".[] | select(.user.login == \"$author\" and (.body | startswith(\"$marker\"))) | .id" |
  awk 'NR == 1')

if [ -n "$id" ]; then
  gh api --method PATCH "repos/$GITHUB_REPOSITORY/issues/comments/$id" -F "body=@$body" >/dev/null
  echo "updated comment $id"
else
  gh api --method POST "repos/$GITHUB_REPOSITORY/issues/$PR_NUMBER/comments" -F "body=@$body" >/dev/null
  echo "created a comment on #$PR_NUMBER"
fi
