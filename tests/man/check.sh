#!/usr/bin/env bash
# Checks the man pages (docs/man) against what they document, mechanically,
# so that they cannot drift from the code unnoticed:
#   - bhyve(8), bhyveload(8), bhyvectl(8): the flags their OPTIONS list are
#     exactly the flags the tool's --help lists (built for this machine);
#   - libvmmapi(3): its SYNOPSIS has exactly the functions of vmmapi.h;
#   - vmm(4): it names every ioctl of vmm-kmod/uapi and every module parameter;
#   - every page formats without a groff warning.
# Prints each difference; exits 1 if there is any.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
MAN=$ROOT/docs/man
cd "$ROOT"
bad=0
fail() { echo "man: $*"; bad=1; }

# compare WHAT LEFT-NAME LEFT-LIST RIGHT-NAME RIGHT-LIST: names each item in
# only one of the two (sorted, newline-separated) lists.
compare() {
	local x
	for x in $(comm -23 <(sort -u <<<"$3") <(sort -u <<<"$5")); do fail "$1: $x is in $2 but not in $4"; done
	for x in $(comm -13 <(sort -u <<<"$3") <(sort -u <<<"$5")); do fail "$1: $x is in $4 but not in $2"; done
}

# The flags of a clap --help: the first column of its "Options:" section.
help_flags() {
	sed -n '/^Options:$/,/^$/p' | awk '/^ +-/ {
		for (i = 1; i <= NF; i++) {
			f = $i; sub(/,$/, "", f)
			if (f ~ /^-/) print f; else if (f ~ /^</) continue; else break
		}
	}'
}

# The flags a man page's OPTIONS list: every "Fl x" of its ".It Fl" lines.
man_flags() {
	sed -n '/^\.Sh OPTIONS/,/^\.Sh /p' "$1" | grep '^\.It Fl ' | grep -oE 'Fl [^ ]+' | sed 's/^Fl /-/'
}

cargo build -q -p bhyve -p bhyveload -p bhyvectl || { echo "man: cannot build the tools"; exit 1; }
for tool in bhyve bhyveload bhyvectl; do
	help=$("target/debug/$tool" --help | help_flags)
	[ -n "$help" ] || fail "$tool: no flags found in --help"
	compare "$tool" "--help" "$help" "$tool.8" "$(man_flags "$MAN/$tool.8")"
done

# libvmmapi(3) against the header: function names declared at the start of a line.
hdr=$(grep -oE '^[a-z_][a-z0-9_ *]*[ *]([a-z_][a-z0-9_]*)\(' libvmmapi/include/vmmapi.h | grep -oE '[a-z_][a-z0-9_]*\($' | tr -d '(')
[ -n "$hdr" ] || fail "no functions found in vmmapi.h"
syn=$(sed -n '/^\.Sh SYNOPSIS/,/^\.Sh /p' "$MAN/libvmmapi.3" | sed -n 's/^\.Fn \([a-z_0-9]*\).*/\1/p')
compare libvmmapi vmmapi.h "$hdr" libvmmapi.3 "$syn"

# vmm(4): the ioctls (their constants in the uapi crate) and the module parameters.
ioctls=$(grep -ohE '^pub const (VMM?[A-Z_]*): u32 = (crate::ioctl::)?(io|iow|ior|iowr|ioc)\(' vmm-kmod/uapi/src/*.rs | awk '{print $3}' | tr -d :)
[ -n "$ioctls" ] || fail "no ioctls found in vmm-kmod/uapi"
documented=$(sed -n '/^\.Sh IOCTLS/,/^\.Sh /p' "$MAN/vmm.4" | grep -oE 'Dv [A-Z_]+' | awk '{print $2}')
for x in $ioctls; do grep -qx "$x" <<<"$documented" || fail "vmm.4 does not document the ioctl $x"; done
params=$(grep -ohE '^module_param\([a-z_]+' vmm-kmod/shim/*.c | sed 's/module_param(//')
[ -n "$params" ] || fail "no module parameters found in vmm-kmod/shim"
documented=$(sed -n '/^\.Sh MODULE PARAMETERS/,/^\.Sh /p' "$MAN/vmm.4" | sed -n 's/^\.It Cm \([a-z_]*\).*/\1/p')
compare vmm "the shim's module_param" "$params" vmm.4 "$documented"

for f in "$MAN"/*.[0-9]; do
	w=$(LC_ALL=C.UTF-8 groff -mandoc -Tutf8 -ww -z "$f" 2>&1)
	[ -z "$w" ] || fail "$(basename "$f"): groff: $w"
done
[ "$bad" = 0 ] && echo "man pages agree with --help, vmmapi.h, the ioctls and the module parameters"
exit "$bad"
