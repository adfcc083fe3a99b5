"""The two data sets of `make bench`, sized for a 2-core machine, and a quick check of a copy.

- ``large``: one file of random bytes (incompressible, as most large files on a volume are:
  databases, media, archives), 1 GiB by default;
- ``many``: 50,000 files of 1 to 8 KiB, 100 a directory (text, so compressible).
"""

from __future__ import annotations

import os
import random

MIB = 1024 * 1024
SETS = ("large", "many")


def build(name, root, large_mib=1024, files=50_000):
    """Fill the empty directory root with the set; returns (files, bytes)."""
    if name == "large":
        with open(os.path.join(root, "large.bin"), "wb") as handle:
            for _mib in range(large_mib):
                handle.write(os.urandom(MIB))
        return 1, large_mib * MIB
    rng = random.Random(6)  # the same tree every time
    words = [f"{word:x}" for word in range(4096)]
    total = 0
    for index in range(files):
        folder = os.path.join(root, f"d{index // 100:03d}")
        if index % 100 == 0:
            os.makedirs(folder)
        size = rng.randint(1024, 8192)
        text = " ".join(rng.choice(words) for _word in range(size // 4))[:size]
        with open(os.path.join(folder, f"f{index:05d}.txt"), "w") as handle:
            handle.write(text)
        total += len(text)
    return files, total


def count(root):
    """(regular files, their bytes) under root, lost+found left out."""
    files = size = 0
    for folder, dirnames, filenames in os.walk(root):
        if folder == root and "lost+found" in dirnames:
            dirnames.remove("lost+found")
        for filename in filenames:
            path = os.path.join(folder, filename)
            if os.path.isfile(path) and not os.path.islink(path):
                files += 1
                size += os.lstat(path).st_size
    return files, size
