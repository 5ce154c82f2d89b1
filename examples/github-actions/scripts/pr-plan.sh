#!/usr/bin/env bash
# The pull-request plan of ../pr-plan.yml: validate every manifest, then a dry-run reconcile
# against the base branch, published to the job summary and to one sticky PR comment.
# It runs the same way on a laptop (tests/workflows.rs runs it against the emulator).
#
# Environment (castsync itself reads CASTSYNC_AGE_KEY, CASTARI_API_KEY and CASTARI_API_URL):
#   CASTSYNC              castsync binary (default: castsync on PATH)
#   CASTSYNC_BASE         revision that holds what is applied (default: origin/main)
#   GITHUB_STEP_SUMMARY   file the Markdown is appended to (set by GitHub; default: none)
#   CASTSYNC_COMMENT_CMD  program that publishes the comment, called with the body file as its
#                         only argument (default: sticky-comment.sh beside this script)
#   CASTSYNC_PLAN_FILE    where to save the plan for apply-on-merge.yml (`--save-plan`; default:
#                         not saved). Saved only when the plan covers every agent.
#
# Exit status: 0 when the plan was made (whatever it holds), 1 when a manifest is invalid,
# an agent was skipped or castsync failed. The plan never holds a secret value.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
castsync=${CASTSYNC:-castsync}
base=${CASTSYNC_BASE:-origin/main}
summary=${GITHUB_STEP_SUMMARY:-/dev/null}
comment_cmd=${CASTSYNC_COMMENT_CMD:-$here/sticky-comment.sh}
# The hidden first line by which sticky-comment.sh finds the previous comment.
marker='<!-- castsync-plan -->'

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# publish TITLE FILE: job summary, then the sticky comment (marker first).
publish() {
  cat "$2" >>"$summary"
  {
    printf '%s\n' "$marker"
    cat "$2"
    printf '\n<sub>%s · %s</sub>\n' "$1" "$(git rev-parse --short HEAD 2>/dev/null || echo worktree)"
  } >"$work/comment.md"
  "$comment_cmd" "$work/comment.md"
}

# fenced TITLE FILE: a heading and FILE's text in a code block (at most 50,000 bytes, so the
# comment stays under GitHub's 65,536-character limit).
fenced() {
  printf '### %s\n\n```\n' "$1"
  head -c 50000 "$2"
  printf '\n```\n'
}

validate_status=0
"$castsync" validate >"$work/validate.out" 2>&1 || validate_status=$?
cat "$work/validate.out"
if [ "$validate_status" -ne 0 ]; then
  fenced "castsync: validation failed" "$work/validate.out" >"$work/body.md"
  publish "castsync validate" "$work/body.md"
  echo "castsync validate failed (exit $validate_status): no plan was made" >&2
  exit 1
fi

save=()
if [ -n "${CASTSYNC_PLAN_FILE:-}" ]; then
  mkdir -p "$(dirname "$CASTSYNC_PLAN_FILE")"
  rm -f "$CASTSYNC_PLAN_FILE"
  save=(--save-plan "$CASTSYNC_PLAN_FILE")
fi

plan_status=0
"$castsync" reconcile --dry-run --base "$base" "${save[@]}" --output markdown \
  >"$work/plan.md" 2>"$work/plan.err" || plan_status=$?
cat "$work/plan.err" >&2
cat "$work/plan.md"
# Where the plan was saved is for the job log, not for the comment.
grep -v '^Saved the plan to ' "$work/plan.err" >"$work/plan.said" || true
if [ -s "$work/plan.md" ]; then
  cp "$work/plan.md" "$work/body.md"
  if [ -s "$work/plan.said" ]; then
    printf '\n' >>"$work/body.md"
    fenced "castsync said" "$work/plan.said" >>"$work/body.md"
  fi
else
  # castsync stopped before it had a plan (bad config, no identity, platform unreachable).
  fenced "castsync: no plan (exit $plan_status)" "$work/plan.err" >"$work/body.md"
fi
publish "castsync reconcile --dry-run --base $base" "$work/body.md"
exit "$plan_status"
