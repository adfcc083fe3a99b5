"""Runtime DNS records of the harness dnsmasq: one hosts file per record in DIR/dns/hosts.

dnsmasq watches that directory (``--hostsdir``) with inotify and rereads changed files by
itself, so adding a record is writing a file (atomically, by rename).
"""

import os
import re

_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def hosts_dir(state_dir):
    return os.path.join(state_dir, "dns", "hosts")


def _path(state_dir, key):
    return os.path.join(hosts_dir(state_dir), _SAFE.sub("_", key))


def set_record(state_dir, key, hostname, address):
    os.makedirs(hosts_dir(state_dir), exist_ok=True)
    path = _path(state_dir, key)
    content = f"{address} {hostname}\n"
    try:
        with open(path) as fh:
            if fh.read() == content:
                return
    except FileNotFoundError:
        pass
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        fh.write(content)
    os.chmod(tmp, 0o644)
    os.rename(tmp, path)


def remove_record(state_dir, key):
    try:
        os.unlink(_path(state_dir, key))
    except FileNotFoundError:
        pass


def records(state_dir):
    out = {}
    d = hosts_dir(state_dir)
    if not os.path.isdir(d):
        return out
    for name in os.listdir(d):
        if name.endswith(".tmp"):
            continue
        with open(os.path.join(d, name)) as fh:
            for line in fh:
                parts = line.split()
                if len(parts) >= 2:
                    out[parts[1]] = parts[0]
    return out
