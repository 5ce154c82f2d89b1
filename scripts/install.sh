#!/bin/sh
# Installs castsync from its GitHub release: downloads the archive for this machine, checks it
# against the release's SHA256SUMS, and puts the `castsync` binary in a bin directory. Nothing
# else is needed at run time (the Linux binaries are static).
#
#   curl -fsSL https://github.com/castsync/castsync/releases/latest/download/install.sh | sh
#   curl -fsSL .../install.sh | sh -s -- --version v0.1.0 --bin-dir /usr/local/bin
#
# Options (or their environment variables):
#   --version V     CASTSYNC_VERSION      vX.Y.Z, X.Y.Z or latest (default: latest)
#   --bin-dir DIR   CASTSYNC_INSTALL_DIR  where the binary goes (default: ~/.local/bin)
#   --print-target                        print this machine's release target and exit
# CASTSYNC_RELEASES_URL names another place that serves the release files laid out as GitHub
# does (a mirror): <url>/download/vX.Y.Z/<file> and <url>/latest (a redirect to the newest
# release's tag page). Supported: Linux and macOS on x86_64 and arm64 (aarch64).
set -eu

releases=${CASTSYNC_RELEASES_URL:-https://github.com/castsync/castsync/releases}
version=${CASTSYNC_VERSION:-latest}
bin_dir=${CASTSYNC_INSTALL_DIR:-${HOME:-}/.local/bin}
print_target=""

say() { printf 'castsync install: %s\n' "$1" >&2; }

# die MESSAGE [HINT]
die() {
  say "error: $1"
  [ -z "${2:-}" ] || printf 'hint: %s\n' "$2" >&2
  exit 1
}

while [ $# -gt 0 ]; do
  case $1 in
    --version) [ $# -ge 2 ] || die "--version needs a value"; version=$2; shift 2 ;;
    --bin-dir) [ $# -ge 2 ] || die "--bin-dir needs a value"; bin_dir=$2; shift 2 ;;
    --print-target) print_target=1; shift ;;
    -h | --help) sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $1" "see the top of this script for its options" ;;
  esac
done

# The release target of this machine: the archive name's last part.
target() {
  os=$(uname -s)
  arch=$(uname -m)
  case $os in
    Linux) os_part=unknown-linux-musl ;;
    Darwin) os_part=apple-darwin ;;
    *) os_part="" ;;
  esac
  case $arch in
    x86_64 | amd64) arch_part=x86_64 ;;
    aarch64 | arm64) arch_part=aarch64 ;;
    *) arch_part="" ;;
  esac
  if [ -z "$os_part" ] || [ -z "$arch_part" ]; then
    die "no castsync release for this platform ($os $arch)" \
      "release binaries exist for Linux and macOS on x86_64 and arm64; elsewhere build it: cargo install --locked castsync"
  fi
  echo "$arch_part-$os_part"
}

# fetch URL FILE: downloads URL into FILE, failing on an HTTP error.
fetch() {
  if command -v curl >/dev/null 2>&1; then
    curl --proto '=https,http' -fsSL --retry 3 -o "$2" "$1"
  elif command -v wget >/dev/null 2>&1; then
    wget -q -O "$2" "$1"
  else
    die "neither curl nor wget is installed" "install one of them"
  fi
}

# latest: the newest release's tag, from where <releases>/latest redirects to.
latest() {
  command -v curl >/dev/null 2>&1 || die "--version latest needs curl" "name a version: --version vX.Y.Z"
  url=$(curl --proto '=https,http' -fsSL -o /dev/null -w '%{url_effective}' "$releases/latest") ||
    die "cannot find the latest release at $releases/latest" "name a version: --version vX.Y.Z"
  tag=${url##*/}
  case $tag in
    v[0-9]*) echo "$tag" ;;
    *) die "cannot tell the latest release from $url" "name a version: --version vX.Y.Z" ;;
  esac
}

sha256() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum "$1" | cut -d ' ' -f 1
  elif command -v shasum >/dev/null 2>&1; then
    shasum -a 256 "$1" | cut -d ' ' -f 1
  else
    die "neither sha256sum nor shasum is installed: cannot verify the download" \
      "install coreutils (sha256sum) or perl (shasum)"
  fi
}

target=$(target)
if [ -n "$print_target" ]; then
  echo "$target"
  exit 0
fi

case $version in
  latest) tag=$(latest) ;;
  v[0-9]*) tag=$version ;;
  [0-9]*) tag=v$version ;;
  *) die "not a version: $version" "a release tag such as v0.1.0, or latest" ;;
esac
number=${tag#v}
archive=castsync-$number-$target.tar.gz
[ -n "$bin_dir" ] || die "no bin directory: HOME is not set" "pass --bin-dir DIR"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM

say "downloading $archive ($tag)"
fetch "$releases/download/$tag/SHA256SUMS" "$work/SHA256SUMS" ||
  die "cannot download SHA256SUMS of $tag from $releases/download/$tag/" \
    "check that release $tag exists"
fetch "$releases/download/$tag/$archive" "$work/$archive" ||
  die "cannot download $archive from $releases/download/$tag/" \
    "check that release $tag has a build for $target"

expected=$(awk -v f="$archive" '$2 == f || $2 == "*" f { print $1; exit }' "$work/SHA256SUMS")
[ -n "$expected" ] || die "SHA256SUMS of $tag has no line for $archive" "the release is incomplete: report it"
actual=$(sha256 "$work/$archive")
if [ "$actual" != "$expected" ]; then
  die "checksum mismatch for $archive: SHA256SUMS says $expected, the download is $actual" \
    "nothing was installed; the download is corrupt or was tampered with: try again, and report it if it persists"
fi

tar -xzf "$work/$archive" -C "$work"
binary=$work/castsync-$number-$target/castsync
[ -f "$binary" ] || die "$archive holds no castsync-$number-$target/castsync" "report it"
mkdir -p "$bin_dir"
# Copy beside the destination, then rename: a running castsync is never half-overwritten.
cp "$binary" "$bin_dir/.castsync.new"
chmod 0755 "$bin_dir/.castsync.new"
mv -f "$bin_dir/.castsync.new" "$bin_dir/castsync"
say "installed castsync $number ($target, sha256 verified) as $bin_dir/castsync"
case ":${PATH:-}:" in
  *":$bin_dir:"*) ;;
  *) say "$bin_dir is not on PATH: add it, e.g. export PATH=\"$bin_dir:\$PATH\"" ;;
esac
