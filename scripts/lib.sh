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
export DEBIAN_FRONTEND=noninteractive

log() { printf '==> %s\n' "$*" >&2; }
die() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; exit 1; }

# Host (x86 build machine or native arm64) architecture.
host_arch() { uname -m; }

# Resolve the reference kernel release (e.g. 6.1.0-41-cloud-arm64) from the
# Debian meta package, so image, headers and kbuild always match each other even
# after Debian bumps the ABI. Result cached in $CACHE/krel for offline reuse.
resolve_krel() {
	local abi
	if [ -n "${VMM_KREL:-}" ]; then
		echo "$VMM_KREL"
		return
	fi
	abi=$(apt-cache depends "linux-headers-$FLAVOUR:arm64" 2>/dev/null |
		sed -n "s/.*Depends: linux-headers-\(.*\)-$FLAVOUR:arm64/\1/p" | head -1)
	if [ -z "$abi" ] && [ -s "$CACHE/krel-$FLAVOUR" ]; then
		cat "$CACHE/krel-$FLAVOUR"
		return
	fi
	[ -n "$abi" ] || die "cannot resolve the kernel ABI from linux-headers-$FLAVOUR:arm64 (run scripts/setup)"
	mkdir -p "$CACHE"
	echo "$abi-$FLAVOUR" | tee "$CACHE/krel-$FLAVOUR"
}
