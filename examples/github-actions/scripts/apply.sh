#!/usr/bin/env bash
# The apply of ../apply-on-merge.yml: reconcile the platform onto the pushed commit, with
# castsync's state kept between runs in a directory that the workflow caches.
# It runs the same way on a laptop (tests/workflows.rs runs it against the emulator).
#
# A push refreshes only the agents whose manifest, .env.example or settings changed since
# they last converged, or that failed last time (`--changed`): one changed key costs one list,
# one write and one verify, whatever the number of agents. The scheduled run refreshes every
# agent (`full`), which is what finds keys changed or deleted on the platform behind git's
# back. Without a usable cached state, `--changed` refreshes every agent and says why.
#
# The state holds, per key, an HMAC of the value castsync wrote and the random HMAC key
# itself. Anyone holding both can test guesses of a weak value offline, and GitHub lets
# workflow runs of pull requests (from forks too) restore the default branch's caches. So the
# cache only ever holds the state encrypted with age to the identity's own recipient, and the
# plaintext lives in a temp dir for the length of the run.
#
# Environment (castsync itself reads CASTARI_API_KEY and CASTARI_API_URL):
#   CASTSYNC              castsync binary (default: castsync on PATH)
#   CASTSYNC_AGE_KEY      the age identity text (repository secret), or
#   CASTSYNC_AGE_KEY_FILE a file holding it
#   CASTSYNC_STATE_DIR    the cached directory (default: .castsync-cache); holds state.json.age
#   GITHUB_STEP_SUMMARY   file the Markdown is appended to (set by GitHub; default: none)
#   CASTSYNC_SCOPE        changed (default): only changed agents; full: every agent
#
# Needs age and age-keygen. Exit status: castsync's (0 applied, 1 something did not land).
set -euo pipefail

castsync=${CASTSYNC:-castsync}
summary=${GITHUB_STEP_SUMMARY:-/dev/null}
cache=${CASTSYNC_STATE_DIR:-.castsync-cache}
case ${CASTSYNC_SCOPE:-changed} in
  changed) scope=(--changed) ;;
  full) scope=() ;;
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

state="$work/state.json"
mkdir -p "$cache"
if [ -f "$cache/state.json.age" ]; then
  if ! age --decrypt -i "$work/identity" -o "$state" "$cache/state.json.age"; then
    # Losing the state is safe: every present key is set once more, as "unverified".
    echo "warning: cannot decrypt the cached state (was the identity rotated?); starting without it" >&2
    rm -f "$state"
  fi
else
  echo "no cached state: keys already on the platform will be set once more, as unverified" >&2
fi

status=0
# --ref HEAD: the pushed commit, read from git objects; the plan and the state name it.
"$castsync" reconcile --ref HEAD "${scope[@]}" --state "$state" --output markdown \
  >"$work/result.md" || status=$?
cat "$work/result.md"
cat "$work/result.md" >>"$summary"

# Even a partly failed run recorded what did land: keep it.
if [ -f "$state" ]; then
  age --encrypt --armor -R "$work/recipients" -o "$cache/state.json.age.tmp" "$state"
  mv "$cache/state.json.age.tmp" "$cache/state.json.age"
fi
exit "$status"
