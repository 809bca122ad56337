#!/usr/bin/env bash
# Builds the test guests and writes each as a raw binary, OUTDIR/<name>.bin,
# to be loaded and entered at guest physical address 0x4000_0000.
#
#   tests/guests/build.sh OUTDIR
#
# OBJCOPY overrides the objcopy used (default aarch64-linux-gnu-objcopy, or
# objcopy on an arm64 host without it).
set -euo pipefail

die() { echo "tests/guests/build.sh: $*" >&2; exit 1; }

[ $# -eq 1 ] || die "usage: tests/guests/build.sh OUTDIR"
mkdir -p "$1"
out=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)

if [ -z "${OBJCOPY:-}" ]; then
	if command -v aarch64-linux-gnu-objcopy >/dev/null; then
		OBJCOPY=aarch64-linux-gnu-objcopy
	elif [ "$(uname -m)" = aarch64 ]; then
		OBJCOPY=objcopy
	else
		die "no aarch64-linux-gnu-objcopy (set OBJCOPY)"
	fi
fi

# cargo reads .cargo/config.toml (target, flags) from the current directory.
cd "$here"
cargo build --release --locked --bins
elfs=target/aarch64-unknown-none/release

n=0
for src in src/bin/*.rs; do
	name=$(basename "$src" .rs)
	"$OBJCOPY" -O binary "$elfs/$name" "$out/$name.bin"
	[ -s "$out/$name.bin" ] || die "$out/$name.bin is empty"
	n=$((n + 1))
done
echo "tests/guests: $n guests in $out"
