//! A 9P2000.L file server for one host directory, as Linux's v9fs client uses it
//! (`mount -t 9p -o trans=virtio,version=9p2000.L TAG /mnt`). bhyve's virtio-9p device hands it
//! each request message and sends back the reply; the crate knows nothing of virtio.
//!
//! ```no_run
//! let mut server = p9::Server::new(std::path::Path::new("/srv/share"), false)?;
//! # let (request, max_reply): (Vec<u8>, usize) = (Vec::new(), 8192);
//! let mut reply = Vec::new();
//! server.handle(&request, max_reply, &mut reply);
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # Confinement
//!
//! The guest is untrusted: no request may read, change or even name a file outside the shared
//! directory. The design holds that by construction rather than by checking paths:
//!
//! - **One root descriptor.** [`Server::new`] opens the directory once. Every file the guest
//!   reaches is a node holding its own descriptor, obtained by walking from
//!   that root one name at a time. No path string is ever built or resolved from the host's `/`.
//! - **One entry per lookup.** A name from the guest must be a single directory entry: empty,
//!   `.`, `..` and anything containing `/` or NUL are refused (EINVAL) before any syscall. It is
//!   opened with `openat2(dirfd, name, O_PATH | O_NOFOLLOW, RESOLVE_BENEATH |
//!   RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV)`: the kernel itself refuses
//!   to leave `dirfd`, to follow any symlink, or to cross into another mount (so a bind mount
//!   or `/proc` under the share is not entered). `RESOLVE_BENEATH` rather than
//!   `RESOLVE_IN_ROOT` because nothing should be reinterpreted: what would leave fails. If the
//!   kernel lacks `openat2`, `Server::new` fails; there is no weaker fallback.
//! - **Symlinks are data.** Walking onto a symlink yields the link itself; walking on through
//!   it is ENOTDIR and opening it is ELOOP. The guest reads the link (Treadlink) and resolves
//!   it in its own namespace, which for an absolute target means the guest's root, not the
//!   host's. A link pointing outside the share is thus harmless.
//! - **`..` is bookkeeping.** Each node remembers the node it was walked from; a `..` walk goes
//!   there, and at the root stays at the root. The kernel's `..` is never used.
//! - **Descriptors, not names, after the walk.** Tlopen, Tgetattr, Tsetattr, Treadlink and
//!   Tlink act on the descriptor the fid holds (through `AT_EMPTY_PATH`, or `/proc/self/fd/N`,
//!   which the kernel resolves to that very inode). Replacing a walked directory with a symlink
//!   afterwards changes nothing: the fid still holds the original directory.
//! - **Entry operations by name in a held directory.** mkdir, symlink, mknod, link, rename and
//!   unlink take a checked name and a directory descriptor (`mkdirat`, `renameat`,
//!   `unlinkat`, ...), none of which follows a final symlink, so they can only touch entries
//!   of directories inside the share. Trename and Tremove, which name a fid's own entry, first
//!   check that the entry still is that file.
//! - **Nothing the guest makes reaches the host's devices**: Tmknod refuses device nodes
//!   (EPERM), and Tlopen opens only regular files and directories.
//!
//! What this does not cover: a host process that moves a directory out of the share while the
//! guest holds a fid in it takes the guest along (the fid holds the directory, wherever it
//! goes), and host users who can reach the share directory see what the guest writes there,
//! owners and mode bits included: share a directory that only trusted users can enter.
//!
//! # Behaviour
//!
//! - Ownership: files the guest creates are given to the guest's user (Tattach `n_uname`) and
//!   the requested group, as the guest expects; a server without the privilege to chown keeps
//!   its own ownership. Permissions are not checked per guest user: the guest kernel checks
//!   them against the attributes the server reports.
//! - Read-only (`read_only`): every change (create, write, setattr, link, rename, remove,
//!   opening for writing or truncation) is refused with EROFS.
//! - Locks (Tlock/Tgetlock) are real, non-blocking open-file-description locks.
//! - Extended attributes are not offered (EOPNOTSUPP), nor authentication (Tauth), nor the
//!   plain 9P2000 messages (Topen, Tcreate, Tstat, Twstat).
//! - Tflush has nothing to cancel: every request is answered before the next is read.
//! - Qids: path from (st_dev, st_ino), version 0.

mod dir;
mod file;
mod node;
mod server;
pub mod wire;

pub use server::{Server, MAX_FIDS, MAX_MSIZE, MIN_MSIZE, MIN_REPLY};
