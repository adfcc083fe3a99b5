"""A source tree with what a migration must keep, and a snapshot of a tree for comparison."""

import hashlib
import os
import stat
import subprocess

MIB = 1024 * 1024
SPARSE_SIZE = 64 * MIB
UNICODE_NAME = "name with spaces ünïcødé ☃ 名前.txt"
# A colon before any slash makes a relative URL look like one with a scheme: rclone's http
# remote left such a file out of its listing, with exit code 0.
COLON_NAME = "backup 2024-05-01T10:30:00.txt"
T0 = 1_600_000_000  # a past mtime, so that "kept" and "set to now" differ


def _touch(path, offset, follow=True):
    ns = (T0 + offset) * 1_000_000_000 + 123_456_789
    os.utime(path, ns=(ns, ns), follow_symlinks=follow)


def build(root, specials=True, many=0, owners=True):
    """Fill root (an empty directory) with the test tree; return its file count."""

    def write(rel, content, mode=0o644, uid=0, gid=0, offset=0):
        path = os.path.join(root, rel)
        with open(path, "wb") as handle:
            handle.write(content)
        os.chmod(path, mode)
        if owners:
            os.chown(path, uid, gid)
        _touch(path, offset)
        return path

    for rel in ("dir", "dir/sub", "private", "empty", "owned"):
        os.makedirs(os.path.join(root, rel))
    # As mkfs leaves it: root's, unreadable to others; never copied.
    os.makedirs(os.path.join(root, "lost+found"), mode=0o700)
    write("lost+found/#1234", b"fsck found this\n", 0o600)
    write("dir/file.txt", b"hello kubeferry\n", offset=1)
    write("dir/random.bin", os.urandom(3 * MIB + 17), offset=2)
    # Hard links: one inode, three names in different directories.
    write("dir/hard-a", b"one inode, three names\n", offset=3)
    os.link(os.path.join(root, "dir/hard-a"), os.path.join(root, "dir/sub/hard-b"))
    os.link(os.path.join(root, "dir/hard-a"), os.path.join(root, "hard-c"))
    # Symlinks: relative, absolute (dangling outside the pod, kept as a link), to a directory.
    os.symlink("dir/file.txt", os.path.join(root, "rel-link"))
    os.symlink("/mnt/source/data/dir/file.txt", os.path.join(root, "abs-link"))
    os.symlink("dir/sub", os.path.join(root, "dir-link"))
    for rel in ("rel-link", "abs-link", "dir-link"):
        _touch(os.path.join(root, rel), 4, follow=False)
    # Sparse: 64 MiB with 1 MiB of data in the middle.
    path = os.path.join(root, "sparse.img")
    with open(path, "wb") as handle:
        handle.truncate(SPARSE_SIZE)
        handle.seek(32 * MIB)
        handle.write(os.urandom(MIB))
    _touch(path, 5)
    # Modes and owners.
    write("private/secret.txt", b"only the owner reads this\n", 0o600, 1001, 1002, offset=6)
    os.chmod(os.path.join(root, "private"), 0o700)
    if owners:
        os.chown(os.path.join(root, "private"), 1001, 1002)
    write("owned/by-2002", b"uid 2002 gid 3003\n", 0o640, 2002, 3003, offset=7)
    write("owned/by-65534", b"nobody\n", 0o604, 65534, 65534, offset=8)
    write("owned/setgid-exec", b"#!/bin/sh\n", 0o2755, 0, 3003, offset=9)
    write(UNICODE_NAME, "unicode ✓\n".encode(), offset=10)
    write(COLON_NAME, b"taken at half past ten\n", offset=10)
    os.setxattr(os.path.join(root, "dir/file.txt"), "user.kubeferry", b"kept")
    subprocess.run(["setfacl", "-m", "u:4242:r", os.path.join(root, "dir/random.bin")], check=True)
    if specials:
        os.mkfifo(os.path.join(root, "fifo"))
        os.mknod(os.path.join(root, "null-device"), 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        _touch(os.path.join(root, "fifo"), 11)
        _touch(os.path.join(root, "null-device"), 12)
    if many:
        # Long names: their total exceeds what fits into one command line (ARG_MAX).
        for index in range(many):
            with open(os.path.join(root, "m{0:05d}-{1}".format(index, "x" * 200)), "w") as h:
                h.write(str(index))
    for rel in ("dir/sub", "dir", "private", "empty", "owned"):
        _touch(os.path.join(root, rel), 20)
    if owners:
        os.chown(root, 0, 0)
    os.chmod(root, 0o755)
    _touch(root, 21)


def give_to_workload(root, uid):
    """As a non-root workload running as uid leaves it: it owns everything (uid:uid) but
    lost+found and one world-readable file of another user (owned/by-65534)."""
    for dirpath, dirnames, filenames in os.walk(root):
        for path in [dirpath] + [os.path.join(dirpath, n) for n in dirnames + filenames]:
            if not path.endswith("by-65534") and "lost+found" not in path:
                os.lchown(path, uid, uid)


def _acl(path):
    result = subprocess.run(
        ["getfacl", "--omit-header", "--numeric", "--physical", path],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip()


def snapshot(root, content=True):
    """{relative path: metadata} for every entry under root (root itself is '.')."""
    entries = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in ["."] if dirpath == root else []:
            entries[name] = _entry(root, name, content)
        for name in dirnames + filenames:
            rel = os.path.relpath(os.path.join(dirpath, name), root)
            entries[rel] = _entry(root, rel, content)
    return entries


def _entry(root, rel, content):
    path = os.path.join(root, rel)
    st = os.lstat(path)
    entry = {
        "type": stat.S_IFMT(st.st_mode),
        "mode": stat.S_IMODE(st.st_mode),
        "uid": st.st_uid,
        "gid": st.st_gid,
        "mtime_ns": st.st_mtime_ns,
        "nlink": st.st_nlink,
        "inode": st.st_ino,
        "size": st.st_size if stat.S_ISREG(st.st_mode) else None,
        "blocks": st.st_blocks,
        "rdev": st.st_rdev if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else None,
        "link": os.readlink(path) if stat.S_ISLNK(st.st_mode) else None,
        "sha256": None,
        "xattrs": {},
        "acl": None,
    }
    if stat.S_ISREG(st.st_mode) and content:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(MIB), b""):
                digest.update(block)
        entry["sha256"] = digest.hexdigest()
    if not stat.S_ISLNK(st.st_mode):
        entry["xattrs"] = dict(
            (name, os.getxattr(path, name))
            for name in os.listxattr(path)
            if name.startswith("user.")
        )
        if rel in ("dir/random.bin", "dir/file.txt"):
            entry["acl"] = _acl(path)
    return entry


def hard_link_groups(snap):
    """Sets of paths sharing one inode (only groups of two or more)."""
    groups = {}
    for rel, entry in snap.items():
        if entry["type"] == stat.S_IFREG:
            groups.setdefault(entry["inode"], set()).add(rel)
    return sorted(sorted(group) for group in groups.values() if len(group) > 1)


def without_lost_found(snap):
    """The volume's lost+found belongs to its file system: never copied, never compared."""
    return dict(
        (k, v) for k, v in snap.items() if k != "lost+found" and not k.startswith("lost+found/")
    )


def _mismatches(rel, source_entry, copied_entry, keys):
    return [
        "{0}: {1} {2!r} != {3!r}".format(rel, key, copied_entry[key], source_entry[key])
        for key in keys
        if copied_entry[key] != source_entry[key]
    ]


def _missing_and_extra(expected, copied):
    return ["missing: {0}".format(rel) for rel in sorted(set(expected) - set(copied))] + [
        "not on the source: {0}".format(rel) for rel in sorted(set(copied) - set(expected))
    ]


def rsync_differences(source_snap, copied_snap, owners=True, root=True, specials=True):
    """What rsync is documented to keep (roles/transfer_rsync/README.md) but did not.

    owners=False, root=False, specials=False is restricted mode: owners, the volume root's
    own mode and times, and devices/FIFOs are not kept there. Returns a list of problems.
    """
    expected = without_lost_found(source_snap)
    copied = without_lost_found(copied_snap)
    if not specials:
        expected = dict(
            (k, v)
            for k, v in expected.items()
            if v["type"] in (stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK)
        )
    problems = _missing_and_extra(expected, copied)
    for rel, entry in sorted(expected.items()):
        if rel not in copied or (rel == "." and not root):
            continue  # the volume root belongs to the cluster (fsGroup) in restricted mode
        keys = ["type", "mode", "size", "sha256", "link", "xattrs", "acl", "mtime_ns"]
        if entry["type"] == stat.S_IFREG:
            keys.append("nlink")
        if owners:
            keys += ["uid", "gid", "rdev"]
        problems += _mismatches(rel, entry, copied[rel], keys)
    if hard_link_groups(copied) != hard_link_groups(expected):
        problems.append("hard link groups differ")
    for rel, entry in expected.items():
        if rel in copied and entry["size"] and entry["blocks"] * 512 * 4 < entry["size"]:
            if copied[rel]["blocks"] > 2 * entry["blocks"] + 64:
                problems.append("{0}: sparse file was filled".format(rel))
    return problems


def rclone_differences(source_snap, copied_snap):
    """What rclone keeps: contents, sizes, file mtimes to the second, symlinks, directories."""
    expected = dict(
        (k, v)
        for k, v in without_lost_found(source_snap).items()
        if v["type"] in (stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK) and k != "."
    )
    copied = dict((k, v) for k, v in without_lost_found(copied_snap).items() if k != ".")
    problems = _missing_and_extra(expected, copied)
    for rel, entry in sorted(expected.items()):
        if rel not in copied:
            continue
        got = copied[rel]
        problems += _mismatches(rel, entry, got, ["type", "link"])
        if entry["type"] == stat.S_IFREG:
            problems += _mismatches(rel, entry, got, ["size", "sha256"])
            if got["mtime_ns"] // 10**9 != entry["mtime_ns"] // 10**9:
                problems.append("{0}: mtime to the second differs".format(rel))
    return problems
