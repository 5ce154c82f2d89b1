#!/usr/bin/env bash
# Runs `castsync watch` with a webhook against the emulator, floods /hooks/git with 100
# concurrent 24 MB deliveries with bad signatures, prints the daemon's RSS before, at its peak
# and after, then checks the daemon still converges. By hand only (not part of CI).
# usage: tools/webhook-flood.sh path/to/castsync length|chunked
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=$(realpath "$1"); MODE=$2
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
export HOME=$W/home XDG_CONFIG_HOME=$W/home/.config NO_COLOR=1
mkdir -p $HOME
unset CASTSYNC_AGE_KEY CASTARI_API_URL
$BIN keygen -o $W/key.txt >/dev/null 2>&1 || $BIN keygen > $W/key.txt 2>/dev/null
chmod 600 $W/key.txt
mkdir -p $W/repo && cd $W/repo
$BIN -i $W/key.txt init >/dev/null 2>&1 || { echo "init failed"; $BIN -i $W/key.txt init; }
$BIN -i $W/key.txt new bot >/dev/null 2>&1
printf 'TOKEN=x\n' > agents/bot/.env.example
printf 'v1' | $BIN -i $W/key.txt set bot TOKEN >/dev/null 2>&1
printf 'hook-secret' > $W/hook
$BIN emulator --listen 127.0.0.1:0 --agents bot > $W/emu.out 2>$W/emu.err &
EMU=$!
sleep 1
EURL=$(head -1 $W/emu.out | sed 's/listening on //')
PORT=$((20000 + RANDOM % 20000))
CASTARI_API_KEY=cast_test $BIN -C $W/repo -i $W/key.txt watch --listen 127.0.0.1:$PORT --webhook-secret-file $W/hook --api-url $EURL --interval 2s > $W/watch.out 2>$W/watch.err &
D=$!
for i in $(seq 50); do curl -sf http://127.0.0.1:$PORT/readyz >/dev/null && break; sleep 0.2; done
echo "ready: $(curl -s http://127.0.0.1:$PORT/readyz | head -c 200)"
python3 "$HERE/webhook-flood.py" $PORT $D $MODE
echo "healthz after: $(curl -s -m 5 http://127.0.0.1:$PORT/healthz)"
printf 'v2-after-attack' | $BIN -C $W/repo -i $W/key.txt set bot TOKEN >/dev/null 2>&1
for i in $(seq 50); do v=$(curl -s -H 'authorization: Bearer cast_test' $EURL/_emulator/agents/bot/secrets/TOKEN); case "$v" in *v2-after-attack*) echo "converged after attack in ~$((i*200))ms"; break;; esac; sleep 0.2; done
echo "panics in the daemon log: $(grep -c panicked $W/watch.err)"
kill $D $EMU; wait $D $EMU 2>/dev/null
