#!/usr/bin/env bash
# Keeps ONE open issue with castsync's audit: creates it when something is overdue for
# rotation or readable by a former recipient, edits its body on later runs, and closes it
# (with the clean report) once nothing is left. The issue is found by its label.
#
#   GH_TOKEN             a token that may write issues (github.token with issues: write)
#   GITHUB_REPOSITORY    owner/name (set by GitHub)
#   GITHUB_STEP_SUMMARY  the job summary file (set by GitHub; optional)
#   CASTSYNC_AGE_KEY     an identity that can decrypt every manifest (the audit reads values'
#                        keyed fingerprints, never prints a value)
#   CASTSYNC_AUDIT_LABEL the issue's label (default: castsync-audit)
#   CASTSYNC             the castsync binary (default: castsync on PATH)
set -euo pipefail

castsync=${CASTSYNC:-castsync}
label=${CASTSYNC_AUDIT_LABEL:-castsync-audit}
: "${GITHUB_REPOSITORY:?GITHUB_REPOSITORY is not set}"
report=$(mktemp)
trap 'rm -f "$report"' EXIT

# 0: nothing to do, 2: something to rotate, anything else: the audit itself failed.
status=0
"$castsync" audit -o markdown --exit-code >"$report" || status=$?
if [ "$status" -ne 0 ] && [ "$status" -ne 2 ]; then
  echo "castsync audit failed (exit $status)" >&2
  exit "$status"
fi
if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
  cat "$report" >>"$GITHUB_STEP_SUMMARY"
fi

number=$(gh issue list --repo "$GITHUB_REPOSITORY" --state open --label "$label" \
  --json number --jq '.[].number' | awk 'NR == 1')

if [ "$status" -eq 2 ]; then
  if [ -n "$number" ]; then
    gh issue edit "$number" --repo "$GITHUB_REPOSITORY" --body-file "$report" >/dev/null
    echo "updated issue #$number"
  else
    # The label must exist before an issue can carry it; creating it again is harmless.
    gh label create "$label" --repo "$GITHUB_REPOSITORY" --force \
      --description "castsync audit: secrets to rotate" >/dev/null
    gh issue create --repo "$GITHUB_REPOSITORY" --label "$label" \
      --title "castsync audit: secrets to rotate" --body-file "$report" >/dev/null
    echo "opened an issue"
  fi
elif [ -n "$number" ]; then
  gh issue edit "$number" --repo "$GITHUB_REPOSITORY" --body-file "$report" >/dev/null
  gh issue close "$number" --repo "$GITHUB_REPOSITORY" \
    --comment "Nothing is overdue or exposed any more: closing." >/dev/null
  echo "closed issue #$number"
else
  echo "nothing to rotate"
fi
