"""The data set of `make matrix`: what a real volume holds, at a size that shows throughput.

On top of the test tree of the data-plane tests (hard links, relative and absolute symlinks,
a sparse file, empty directories, a name with spaces and unicode, modes 0700/0600, several
owners, a device and a FIFO, xattrs and ACLs) it adds one large file, many small files in
nested directories owned by several users, and a name with a newline.
"""

import os

from dataplane import tree

# full: what `make matrix` moves; small: the same shapes in `make test` sizes.
SCALES = {
    "full": {"large_mib": 256, "small_files": 10_000},
    "small": {"large_mib": 16, "small_files": 600},
}
NEWLINE_NAME = "report\nwith a newline.txt"
OWNERS = ((0, 0), (1001, 1002), (2002, 3003), (65534, 65534))
FILES_PER_DIR = 100


def build(root, scale="full"):
    """Fill the empty directory root; returns (files, bytes) of regular files written."""
    sizes = SCALES[scale]
    tree.build(root, specials=True)
    with open(os.path.join(root, "large.bin"), "wb") as handle:
        for _mib in range(sizes["large_mib"]):
            handle.write(os.urandom(tree.MIB))
    with open(os.path.join(root, NEWLINE_NAME), "w") as handle:
        handle.write("a name with a newline\n")
    os.makedirs(os.path.join(root, "empty", "nested", "empty-too"))
    # Small files of 0 to 4 KiB, 100 a directory, two levels deep: a/03/file-00345.txt
    for index in range(sizes["small_files"]):
        folder = os.path.join(
            root, "many", "a{0:02d}".format(index // 1000), "{0:02d}".format(index // 100 % 10)
        )
        if index % FILES_PER_DIR == 0:
            os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, "file-{0:05d}.txt".format(index))
        with open(path, "wb") as handle:
            handle.write(("line {0}\n".format(index) * (index % 410)).encode())
        uid, gid = OWNERS[index % len(OWNERS)]
        os.chown(path, uid, gid)
        os.chmod(path, (0o644, 0o600, 0o640, 0o444)[index % 4])
    return file_count(root)


def file_count(root):
    """(regular files, their bytes) under root, lost+found excluded."""
    files = size = 0
    for dirpath, _dirnames, filenames in os.walk(root):
        if os.path.relpath(dirpath, root).split(os.sep)[0] == "lost+found":
            continue
        for name in filenames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path) and os.path.isfile(path):
                files += 1
                size += os.lstat(path).st_size
    return files, size
