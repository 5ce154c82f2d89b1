#!/usr/bin/env bash
# The apply of ../apply-on-merge.yml: reconcile the platform onto the pushed commit, with
# castsync's state kept between runs in a directory that the workflow caches.
# It runs the same way on a laptop (tests/workflows.rs runs it against the emulator).
#
# A push refreshes only the agents whose manifest, .env.example or settings changed since
# they last converged, or that failed last time (`--changed`): one changed key costs one list,
# one write and one verify, whatever the number of agents. The scheduled run refreshes every
# agent (`full`), which is what finds keys changed or deleted on the platform behind git's
# back. Without a usable cached state, `--changed` refreshes every agent and says why. A
# reviewed plan (below) is applied exactly as saved; the full run ignores it.
#
# The state holds, per key, an HMAC of the value castsync wrote and the random HMAC key
# itself. Anyone holding both can test guesses of a weak value offline, and GitHub lets
# workflow runs of pull requests (from forks too) restore the default branch's caches. So the
# cache only ever holds the state encrypted with age to the identity's own recipient, and the
# plaintext lives in a temp dir for the length of the run.
#
# The reviewed plan: when CASTSYNC_PLAN_FILE names a plan that pr-plan.sh saved (fetch-plan.sh
# finds it for the merged pull request), it is applied exactly (`reconcile --plan`) if the
# merged tree, the config, the target and the key lists of the agents it changes still match
# it; otherwise this run plans afresh, and the job summary says so and why.
#
# Environment (castsync itself reads CASTARI_API_KEY and CASTARI_API_URL):
#   CASTSYNC              castsync binary (default: castsync on PATH)
#   CASTSYNC_AGE_KEY      the age identity text (repository secret), or
#   CASTSYNC_AGE_KEY_FILE a file holding it
#   CASTSYNC_STATE_DIR    the cached directory (default: .castsync-cache); holds state.db.age
#                         (a state.json.age an earlier castsync left is migrated, then removed)
#   GITHUB_STEP_SUMMARY   file the Markdown is appended to (set by GitHub; default: none)
#   CASTSYNC_SCOPE        changed (default): only changed agents; full: every agent, afresh
#                         (CASTSYNC_PLAN_FILE is then ignored)
#   CASTSYNC_PLAN_FILE    the reviewed plan, when there is one (default: none: plan afresh)
#
# Needs age and age-keygen. Exit status: castsync's (0 applied, 1 something did not land).
set -euo pipefail

castsync=${CASTSYNC:-castsync}
summary=${GITHUB_STEP_SUMMARY:-/dev/null}
cache=${CASTSYNC_STATE_DIR:-.castsync-cache}
reviewed=${CASTSYNC_PLAN_FILE:-}
case ${CASTSYNC_SCOPE:-changed} in
  changed) scope=(--changed) ;;
  # The full run looks at everything afresh: a reviewed plan is a push's business.
  full) scope=() reviewed= ;;
  *)
    echo "error: CASTSYNC_SCOPE must be changed or full, not '${CASTSYNC_SCOPE}'" >&2
    exit 1
    ;;
esac

umask 077
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ -n "${CASTSYNC_AGE_KEY:-}" ]; then
  printf '%s\n' "$CASTSYNC_AGE_KEY" >"$work/identity"
elif [ -n "${CASTSYNC_AGE_KEY_FILE:-}" ]; then
  cp "$CASTSYNC_AGE_KEY_FILE" "$work/identity"
else
  echo "error: no identity: set the repository secret CASTSYNC_AGE_KEY (an age identity)" >&2
  exit 1
fi
# The state is encrypted to the recipient of the identity that decrypts the manifests.
age-keygen -y "$work/identity" >"$work/recipients"

# The state is one SQLite file: castsync leaves it whole (nothing in a -wal beside it) when it
# exits. A cache of an earlier castsync holds the JSON state file instead, which castsync
# migrates into the database on first use.
state="$work/state.db"
mkdir -p "$cache"
sealed="$cache/state.db.age" restored=$state
if [ ! -f "$sealed" ] && [ -f "$cache/state.json.age" ]; then
  sealed="$cache/state.json.age" restored="$work/state.json"
fi
if [ -f "$sealed" ]; then
  if ! age --decrypt -i "$work/identity" -o "$restored" "$sealed"; then
    # Losing the state is safe: every present key is set once more, as "unverified".
    echo "warning: cannot decrypt the cached state (was the identity rotated?); starting without it" >&2
    rm -f "$restored"
  fi
else
  echo "no cached state: keys already on the platform will be set once more, as unverified" >&2
fi

# note TEXT [FILE]: a quoted line in the job summary (and the log), FILE's text fenced below.
note() {
  echo "$1" >&2
  {
    printf '> **castsync:** %s\n\n' "$1"
    if [ -n "${2:-}" ]; then
      printf '```\n'
      head -c 20000 "$2"
      printf '\n```\n\n'
    fi
  } >>"$summary"
}

# Afresh: the pushed commit, read from git objects (the plan and the state name it), and
# only the agents it changed unless CASTSYNC_SCOPE=full.
apply=(reconcile --ref HEAD "${scope[@]}")
plan=$reviewed
if [ -n "$plan" ] && [ -f "$plan" ]; then
  # Checked first without writing: a plan that no longer matches is replaced by a fresh one
  # here, while a plan that matches but then fails to land fails the job.
  if "$castsync" reconcile --plan "$plan" --dry-run --state "$state" \
    >/dev/null 2>"$work/check.err"; then
    note "applying the reviewed plan of the pull request: the merged tree and the platform still match it"
    apply=(reconcile --plan "$plan")
  else
    note "the reviewed plan does not match the merged tree or the platform any more, so this run planned afresh:" "$work/check.err"
  fi
elif [ -n "$plan" ]; then
  note "no reviewed plan for this commit, so this run planned afresh"
fi

status=0
"$castsync" "${apply[@]}" --state "$state" --output markdown >"$work/result.md" || status=$?
cat "$work/result.md"
cat "$work/result.md" >>"$summary"

# Even a partly failed run recorded what did land: keep it.
if [ -f "$state" ]; then
  age --encrypt --armor -R "$work/recipients" -o "$cache/state.db.age.tmp" "$state"
  mv "$cache/state.db.age.tmp" "$cache/state.db.age"
  rm -f "$cache/state.json.age"
fi
exit "$status"
