#!/usr/bin/env bash
# Tests scripts/debs.sh's choice of kernel packages against recorded
# `apt-cache show` answers (apt/CASE/show), one case per way the archive moves:
#   skewed        arm64 image and headers at 6.1.192-2, amd64 kbuild already at -3
#                 (recorded from deb.debian.org on 2026-11-29)
#   superseded    the meta package names 6.1.192-2; its ABI's packages are at -3
#   abi-gone      the named ABI's image is gone: the older ABI's set is taken
#   missing       the arch-all common headers are not published yet: older set
#   kbuild-other  no kbuild of the same upstream release: the newest, with a warning
#   empty         no package lists at all: a clear failure
# Prints one line per check and "N passed, N failed"; exits 1 on any failure.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../scripts/lib.sh"
. "$here/../../scripts/debs.sh"
export VMM_APT_CACHE=$here/fake-apt-cache
APT_CACHE=$VMM_APT_CACHE
pass=0 fail=0

ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1: $2"; }

# check CASE "ABI-or-empty" EXPECTED WARNING: EXPECTED is "K_REL K_VER KB_PKG KB_VER"
# or "fails"; WARNING a text stderr must contain ("" = stderr must be empty).
check() {
	local name=$1 abi=$2 want=$3 warning=$4 got err
	export FAKE_APT_SHOW=$here/apt/${name%%+*}/show
	err=$(mktemp)
	if resolve_kernel cloud-arm64 "$abi" 2>"$err"; then
		got="$K_REL $K_VER $KB_PKG $KB_VER"
	else
		got=fails
	fi
	if [ "$got" != "$want" ]; then
		bad "$name" "chose '$got', expected '$want' (stderr: $(tr '\n' ' ' <"$err"))"
	elif [ -z "$warning" ] && [ -s "$err" ]; then
		bad "$name" "unexpected message: $(cat "$err")"
	elif [ -n "$warning" ] && ! grep -qF -- "$warning" "$err"; then
		bad "$name" "no message '$warning' (stderr: $(tr '\n' ' ' <"$err"))"
	else
		ok "$name: $got"
	fi
	rm -f "$err"
}

check skewed "" "6.1.0-56-cloud-arm64 6.1.192-2 linux-kbuild-6.1 6.1.192-3" ""
check superseded "" "6.1.0-56-cloud-arm64 6.1.192-3 linux-kbuild-6.1 6.1.192-3" \
	"linux-headers-cloud-arm64:arm64 6.1.192-2 names 6.1.0-56-cloud-arm64 6.1.192-2, but linux-image-6.1.0-56-cloud-arm64:arm64 6.1.192-2 is not in the archive"
check abi-gone "" "6.1.0-50-cloud-arm64 6.1.176-1 linux-kbuild-6.1 6.1.176-1" \
	"linux-image-6.1.0-56-cloud-arm64:arm64 6.1.192-2 is not in the archive; using 6.1.0-50-cloud-arm64 6.1.176-1"
check missing "" "6.1.0-50-cloud-arm64 6.1.176-1 linux-kbuild-6.1 6.1.176-1" \
	"linux-headers-6.1.0-56-common 6.1.192-2 is not in the archive; using 6.1.0-50-cloud-arm64 6.1.176-1"
check kbuild-other "" "6.1.0-56-cloud-arm64 6.1.192-2 linux-kbuild-6.1 6.1.193-1" \
	"no linux-kbuild-6.1 of upstream 6.1.192 for"
check empty "" fails "the package lists have no linux-headers-cloud-arm64:arm64"
# VMM_KREL pins the ABI: the older set, although a newer one is there.
check skewed+pinned 6.1.0-50 "6.1.0-50-cloud-arm64 6.1.176-1 linux-kbuild-6.1 6.1.176-1" ""
check skewed+pinned-gone 6.1.0-49 fails "no version of linux-headers-cloud-arm64:arm64 names the ABI 6.1.0-49"
# On an arm64 machine the kbuild tools are arm64's.
FAKE_APT_ARCH=arm64 check skewed+arm64 "" "6.1.0-56-cloud-arm64 6.1.192-2 linux-kbuild-6.1 6.1.192-3" ""

# Debian version order, not text order.
got=$(printf '%s\n' 1.0 1.0~rc1 2:0.1 1.0-1 1.0 6.1.192-10 6.1.192-9 | sort_versions | paste -sd' ')
want="2:0.1 6.1.192-10 6.1.192-9 1.0-1 1.0 1.0~rc1"
if [ "$got" = "$want" ]; then ok "sort_versions: $got"; else bad sort_versions "'$got', expected '$want'"; fi

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
