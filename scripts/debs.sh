# shellcheck shell=bash
# Debian packages the scripts download (never install): which versions to take
# from an archive that moves on, and a cache that lets a run go on without it.
# Sourced by scripts/setup and by tests/setup/resolve.sh; needs lib.sh first.
#
# The archive publishes architectures at different times and drops superseded
# versions, so nothing here pins one exact version across packages that are
# built separately. What must match is matched: a kernel's image, headers and
# common headers come from one version; the build tools (linux-kbuild) only need
# the same upstream release.

# apt-cache, or the tests' stand-in that answers from recorded output.
APT_CACHE=${VMM_APT_CACHE:-apt-cache}

warn() { printf '==> warning: %s\n' "$*" >&2; }

# sort_versions: the Debian versions on stdin, unique, newest first.
sort_versions() {
	local sorted=() v i j
	while read -r v; do
		[ -n "$v" ] || continue
		for ((i = 0; i < ${#sorted[@]}; i++)); do
			[ "${sorted[i]}" != "$v" ] || continue 2
			dpkg --compare-versions "$v" gt "${sorted[i]}" && break
		done
		for ((j = ${#sorted[@]}; j > i; j--)); do sorted[j]=${sorted[j - 1]}; done
		sorted[i]=$v
	done
	[ ${#sorted[@]} -eq 0 ] || printf '%s\n' "${sorted[@]}"
}

# apt_versions PKG[:ARCH]: the versions the package lists have, newest first.
apt_versions() {
	{ $APT_CACHE show "$1" 2>/dev/null || true; } | sed -n 's/^Version: //p' | sort_versions
}

# apt_has PKG[:ARCH] VERSION: the lists have that version.
apt_has() {
	[ -n "$2" ] || return 1
	$APT_CACHE show "$1=$2" >/dev/null 2>&1
}

# apt_depends PKG[:ARCH] VERSION: that version's Depends field.
apt_depends() {
	[ -n "$2" ] || return 0
	{ $APT_CACHE show "$1=$2" 2>/dev/null || true; } | sed -n 's/^Depends: //p' | head -1
}

# upstream VERSION: the version without its Debian revision (6.1.192-2 -> 6.1.192).
upstream() { printf '%s\n' "${1%-*}"; }

# resolve_kernel FLAVOUR [ABI]: picks the arm64 kernel to build against and
# boot. Sets K_ABI (6.1.0-56), K_REL (6.1.0-56-cloud-arm64), K_VER (the one
# version of linux-image-K_REL, linux-headers-K_REL and linux-headers-K_ABI-common),
# KB_PKG and KB_VER (the build tools for this machine's architecture). Takes the
# version the meta package linux-headers-FLAVOUR names; when a package of that
# set is missing, the newest consistent set of the same ABI, then of older ABIs
# the meta package's other versions name, saying which. With ABI, only that ABI.
# Returns 1, with the reason on stderr, when there is no set at all.
resolve_kernel() {
	local flavour=$1 want_abi=${2:-} meta mv dep abi named v tried=" " missing= why=
	meta=linux-headers-$flavour:arm64
	K_ABI= K_REL= K_VER= KB_PKG= KB_VER=
	for mv in $(apt_versions "$meta"); do
		dep=$(apt_depends "$meta" "$mv")
		abi=$(sed -n "s/.*linux-headers-\([0-9][^ ,]*\)-$flavour (= \([^)]*\)).*/\1/p" <<<"$dep")
		named=$(sed -n "s/.*linux-headers-\([0-9][^ ,]*\)-$flavour (= \([^)]*\)).*/\2/p" <<<"$dep")
		[ -n "$abi" ] || continue
		[ -z "$want_abi" ] || [ "$abi" = "$want_abi" ] || continue
		case "$tried" in *" $abi "*) continue ;; esac
		tried="$tried$abi "
		for v in $named $(apt_versions "linux-headers-$abi-$flavour:arm64"); do
			missing=$(kernel_set_missing "$abi" "$flavour" "$v")
			if [ -z "$missing" ]; then
				K_ABI=$abi K_REL=$abi-$flavour K_VER=$v
				break 2
			fi
			[ -n "$why" ] || why="$meta $mv names $abi-$flavour $named, but $missing"
		done
	done
	if [ -z "$K_VER" ]; then
		if [ -n "$why" ]; then
			printf 'no consistent set of kernel packages: %s\n' "$why" >&2
		elif [ -n "$want_abi" ]; then
			printf 'no version of %s names the ABI %s\n' "$meta" "$want_abi" >&2
		else
			printf 'the package lists have no %s (apt-get update?)\n' "$meta" >&2
		fi
		return 1
	fi
	[ -z "$why" ] || warn "$why; using $K_REL $K_VER"
	resolve_kbuild
}

# kernel_set_missing ABI FLAVOUR VERSION: prints what of the kernel set is not
# in the lists at VERSION ("" when all is there).
kernel_set_missing() {
	local p out=
	for p in "linux-image-$1-$2:arm64" "linux-headers-$1-$2:arm64" "linux-headers-$1-common"; do
		apt_has "$p" "$3" || out="${out:+$out, }$p $3 is not in the archive"
	done
	printf '%s' "$out"
}

# resolve_kbuild: KB_PKG/KB_VER for K_REL/K_VER: the newest version of the
# same upstream release, else the newest there is, with a warning.
resolve_kbuild() {
	local v
	KB_PKG=$(grep -o 'linux-kbuild-[0-9][0-9.]*' <<<"$(apt_depends "linux-headers-$K_REL:arm64" "$K_VER")" | head -1)
	[ -n "$KB_PKG" ] || KB_PKG=linux-kbuild-$(cut -d. -f1,2 <<<"$K_VER")
	KB_VER=
	for v in $(apt_versions "$KB_PKG"); do
		if [ "$(upstream "$v")" = "$(upstream "$K_VER")" ]; then
			KB_VER=$v
			return 0
		fi
	done
	KB_VER=$(apt_versions "$KB_PKG" | head -1)
	if [ -z "$KB_VER" ]; then
		printf 'no %s for %s in the archive\n' "$KB_PKG" "$(dpkg --print-architecture)" >&2
		return 1
	fi
	warn "no $KB_PKG of upstream $(upstream "$K_VER") for $(dpkg --print-architecture); using $KB_VER"
}

# resolve_newest PKG[:ARCH]: the newest version the lists have ("" if none).
resolve_newest() { apt_versions "$1" | head -1; }

# fetch_debs DIR SPEC...: downloads the packages SPEC (pkg[:arch]=version) into
# DIR, all or nothing: DIR/.done lists them when complete. A complete DIR is
# never downloaded again. Returns 1 (apt's messages on stderr) on failure.
fetch_debs() {
	local dir=$1 tmp
	shift
	[ ! -e "$dir/.done" ] || return 0
	tmp=$dir.part
	rm -rf "$tmp" && mkdir -p "$tmp"
	if ! (cd "$tmp" && apt-get download -q "$@" >download.log 2>&1); then
		grep -v unsandboxed "$tmp/download.log" >&2
		rm -rf "$tmp"
		return 1
	fi
	rm -f "$tmp/download.log"
	printf '%s\n' "$@" >"$tmp/.done"
	rm -rf "$dir" && mv "$tmp" "$dir"
}

# fetch_newest NAME PKG[:ARCH]: keeps the newest version of one package in
# $CACHE/debs/NAME/VERSION/. Without package lists or the archive, the newest
# version already cached is used, with a warning. Prints the directory.
fetch_newest() {
	local name=$1 pkg=$2 v have why
	v=$(resolve_newest "$pkg")
	if [ -n "$v" ] && fetch_debs "$CACHE/debs/$name/$v" "$pkg=$v"; then
		printf '%s\n' "$CACHE/debs/$name/$v"
		return 0
	fi
	have=$(cached_versions "$CACHE/debs/$name" | head -1)
	why="the package lists have no $pkg"
	[ -z "$v" ] || why="cannot download $pkg $v"
	if [ -n "$have" ]; then
		warn "$why; using the cached $have"
		printf '%s\n' "$CACHE/debs/$name/$have"
		return 0
	fi
	printf '%s, and none is cached in %s\n' "$why" "$CACHE/debs/$name" >&2
	return 1
}

# cached_versions DIR: the complete versions in DIR (subdirectories with .done), newest first.
cached_versions() {
	local d
	for d in "$1"/*/.done; do
		[ -e "$d" ] || continue
		d=${d%/.done}
		printf '%s\n' "${d##*/}"
	done | sort_versions
}

# keep_modules DEB REL DIR MODULE...: unpacks from the kernel package DEB
# (release REL) the modules MODULE... and every module they depend on (as
# their modinfo says, recursively) into DIR/lib/modules/REL, with the
# kernel's modules.builtin, modules.builtin.modinfo and modules.order for
# depmod; all or nothing: DIR/.done lists the modules when complete. A
# module built into the kernel needs no file. Returns 1, saying why on
# stderr, if a module is in neither.
keep_modules() {
	local deb=$1 rel=$2 dir=$3 tmp md list builtin todo have= m re path paths deps round
	shift 3
	[ -n "$dir" ] || { printf 'keep_modules: no directory given\n' >&2; return 1; }
	tmp=$dir.part
	md=./lib/modules/$rel
	rm -rf "$tmp" && mkdir -p "$tmp"
	list=$(dpkg-deb --fsys-tarfile "$deb" | tar -t | grep "^$md/kernel/.*\.ko$") &&
		dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp" "$md/modules.builtin" "$md/modules.builtin.modinfo" "$md/modules.order" ||
		{ printf 'cannot read the modules of %s\n' "$deb" >&2; rm -rf "$tmp"; return 1; }
	builtin=$(cat "$tmp/$md/modules.builtin")
	todo=" $* "
	# Each round unpacks what the last one found missing: the depth of the
	# dependencies, a handful at most.
	for round in 1 2 3 4 5 6 7 8; do
		paths=()
		for m in $todo; do
			case " $have " in *" $m "*) continue ;; esac
			have="$have $m"
			# Module names have '_' where file names may have '-'.
			re=${m//[-_]/[-_]}
			grep -qE "(^|/)$re\.ko$" <<<"$builtin" && continue
			path=$(grep -E "/$re\.ko$" <<<"$list" | head -1)
			[ -n "$path" ] || { printf 'module %s is not in %s\n' "$m" "$deb" >&2; rm -rf "$tmp"; return 1; }
			paths+=("$path")
		done
		[ ${#paths[@]} -gt 0 ] || break
		dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp" "${paths[@]}" || { rm -rf "$tmp"; return 1; }
		todo=
		for path in "${paths[@]}"; do
			deps=$(modinfo -F depends "$tmp/$path") || { rm -rf "$tmp"; return 1; }
			todo="$todo ${deps//,/ }"
		done
	done
	[ ${#paths[@]} -eq 0 ] || { printf 'the dependencies of %s go deeper than %s levels\n' "$*" "$round" >&2; rm -rf "$tmp"; return 1; }
	printf '%s\n' $have >"$tmp/.done"
	rm -rf "$dir" && mv "$tmp" "$dir"
}
