# shellcheck shell=bash
# Common paths and helpers for the project's scripts. Sourced, never run.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Big downloads (kernel .debs) live here; git ignores it. Override to share it between clones.
CACHE=${VMM_CACHE_DIR:-$ROOT/.cache}
OUT=$ROOT/target
# Debian arm64 kernel flavour of the reference host.
FLAVOUR=${VMM_FLAVOUR:-cloud-arm64}
RUST_KMOD_TARGET=aarch64-unknown-none-softfloat
RUST_TOOLS_TARGET=aarch64-unknown-linux-musl
RUST_CAPI_TARGET=aarch64-unknown-linux-gnu
# Debian's library directory name for it (/usr/lib/aarch64-linux-gnu).
CAPI_MULTIARCH=aarch64-linux-gnu
# The C header generator (scripts/capi-header): one version everywhere, so
# the checked-in header is what every machine generates.
CBINDGEN_VERSION=0.29.4
export DEBIAN_FRONTEND=noninteractive

log() { printf '==> %s\n' "$*" >&2; }
die() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; exit 1; }

# The project's version (the workspace's, in Cargo.toml).
workspace_version() { sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml"; }

# Host (x86 build machine or native arm64) architecture.
host_arch() { uname -m; }

# The reference kernel release (e.g. 6.1.0-56-cloud-arm64) that scripts/setup
# chose and unpacked (scripts/debs.sh says how), or VMM_KREL.
current_krel() {
	if [ -n "${VMM_KREL:-}" ]; then
		echo "$VMM_KREL"
	elif [ -s "$CACHE/krel-$FLAVOUR" ]; then
		cat "$CACHE/krel-$FLAVOUR"
	else
		die "no reference kernel chosen yet: run scripts/setup"
	fi
}
