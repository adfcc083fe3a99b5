"""Start one container of a Pod: the "container runtime" of the process kubelet.

Run as ``python launcher.py SPEC.json`` by the node agent (root, inside kf-world). It joins
the Pod's network namespace, makes private mount/UTS/IPC/PID namespaces, forks the container
init (PID 1 of its PID namespace, so killing it takes every process of the container down
with it, as a cgroup kill would), builds a root for it (an overlay of the host root with a
tmpfs upper, so a container never writes into the host root), mounts the volumes at their
mountPaths, drops to the Pod's uid/gid/groups and execs the command. The parent stays as a
tiny shim: it forwards SIGTERM/SIGINT/SIGHUP to the init and exits with its status
(128 + signal when killed). Start failures are written as JSON to the result file and the
shim exits 128, like a runtime's StartError.

Standard library only: it runs for every container start.
"""

import ctypes
import json
import os
import signal
import stat
import sys

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1

PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
CAPABILITIES = (
    "CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP "
    "LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER "
    "SYS_MODULE SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE "
    "SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP "
    "MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF "
    "CHECKPOINT_RESTORE"
).split()
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")

_libc = ctypes.CDLL(None, use_errno=True)


class StartError(Exception):
    def __init__(self, reason, message):
        super().__init__(message)
        self.reason = reason
        self.message = message


def _check(ret, what):
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def mount(source, target, fstype, flags, data=None):
    _check(
        _libc.mount(
            source.encode() if source else None,
            target.encode(),
            fstype.encode() if fstype else None,
            ctypes.c_ulong(flags),
            data.encode() if data else None,
        ),
        f"mount {source} on {target}",
    )


def unshare(flags):
    _check(_libc.unshare(flags), "unshare")


def setns(path, nstype):
    fd = os.open(path, os.O_RDONLY)
    try:
        _check(_libc.setns(fd, nstype), f"setns {path}")
    finally:
        os.close(fd)


def bind(source, target, read_only=False):
    mount(source, target, None, MS_BIND | MS_REC)
    if read_only:
        mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC)


def in_root(root, path, hops=40):
    """``path`` inside the container root, following symlinks as the container would see them.

    A plain join would follow an absolute symlink such as /var/run -> /run on the host.
    """
    current = root
    parts = [p for p in path.split("/") if p and p != "."]
    while parts:
        part = parts.pop(0)
        if part == "..":
            current = os.path.dirname(current) if current != root else root
            continue
        candidate = os.path.join(current, part)
        if os.path.islink(candidate):
            hops -= 1
            if hops < 0:
                raise StartError("StartError", f"too many symlinks resolving {path}")
            link = os.readlink(candidate)
            if link.startswith("/"):
                current = root
            parts = [p for p in link.split("/") if p and p != "."] + parts
            continue
        current = candidate
    return current


def _ensure_target(root, path, is_dir):
    target = in_root(root, path)
    if is_dir:
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if not os.path.lexists(target):
            with open(target, "a"):
                pass
    return target


def build_root(spec):
    base = spec["rootfs_dir"]
    mount("tmpfs", base, "tmpfs", 0, "mode=0755")
    upper, work, root = (os.path.join(base, d) for d in ("upper", "work", "root"))
    for d in (upper, work, root):
        os.mkdir(d)
    mount("overlay", root, "overlay", 0, f"lowerdir=/,upperdir={upper},workdir={work}")
    mount("proc", os.path.join(root, "proc"), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    bind("/sys", os.path.join(root, "sys"), read_only=True)
    dev = os.path.join(root, "dev")
    mount("tmpfs", dev, "tmpfs", MS_NOSUID, "mode=0755")
    for name in DEVICES:
        target = _ensure_target(root, f"/dev/{name}", False)
        bind(f"/dev/{name}", target)
    for name, dest in (
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ):
        os.symlink(dest, os.path.join(dev, name))
    os.mkdir(os.path.join(dev, "shm"))
    mount("shm", os.path.join(dev, "shm"), "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")
    for tmp in ("tmp", "run", "var/tmp"):
        target = in_root(root, tmp)
        os.makedirs(target, exist_ok=True)
        mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")
    for path, content in spec.get("files", {}).items():
        parent, name = os.path.split(path.rstrip("/"))
        target = os.path.join(in_root(root, parent), name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if os.path.lexists(target):
            os.unlink(target)
        with open(target, "w") as fh:
            fh.write(content)
        os.chmod(target, 0o644)
    # Files the image does not have: removed from the overlay only (a whiteout in the upper
    # layer), never from the host.
    for path in spec.get("absent", []):
        target = in_root(root, path)
        if os.path.lexists(target):
            os.unlink(target)
    term = spec.get("termination_log")
    if term:
        bind(term["host"], _ensure_target(root, term["target"], False))
    # Parents before children, so a volume mounted inside another one stays visible.
    for m in sorted(spec.get("mounts", []), key=lambda m: m["target"].rstrip("/").count("/")):
        is_dir = os.path.isdir(m["source"])
        target = _ensure_target(root, m["target"], is_dir)
        bind(m["source"], target, read_only=m.get("readOnly", False))
    return root


def limit_capabilities(keep, no_new_privs):
    """Drop every capability not in ``keep`` (names) from the bounding set; None keeps all.

    A process that execs as root gets exactly its bounding set, as in a container whose
    runtime granted ``keep``; non-root processes end up with none, as in Kubernetes.
    """
    if keep is not None:
        try:
            with open("/proc/sys/kernel/cap_last_cap") as fh:
                last = int(fh.read())
        except OSError:
            last = len(CAPABILITIES) - 1
        wanted = {c.upper().removeprefix("CAP_") for c in keep}
        for number in range(last + 1):
            name = CAPABILITIES[number] if number < len(CAPABILITIES) else None
            if name not in wanted:
                _check(_libc.prctl(PR_CAPBSET_DROP, number, 0, 0, 0), f"drop capability {name}")
    if no_new_privs:
        _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")


def find_program(name, env):
    if "/" in name:
        if os.path.isfile(name) and os.access(name, os.X_OK):
            return name
        raise StartError(
            "StartError",
            f'failed to create containerd task: exec: "{name}": stat {name}: '
            "no such file or directory",
        )
    for d in env.get("PATH", DEFAULT_PATH).split(":"):
        cand = os.path.join(d or ".", name)
        if os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    raise StartError(
        "StartError",
        f'failed to create containerd task: exec: "{name}": executable file not found in $PATH',
    )


def container_init(spec, result_fd):
    """Runs as PID 1 of the new PID namespace; never returns."""
    try:
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        root = build_root(spec)
        os.chroot(root)
        workdir = spec.get("workdir") or "/"
        os.makedirs(workdir, exist_ok=True)
        os.chdir(workdir)
        limit_capabilities(spec.get("capabilities"), spec.get("no_new_privs", False))
        uid, gid = spec.get("uid", 0), spec.get("gid", 0)
        os.setgroups(spec.get("groups", []))
        os.setgid(gid)
        os.setuid(uid)
        env = spec.get("env", {})
        env.setdefault("PATH", DEFAULT_PATH)
        command = spec["command"]
        if not command:
            raise StartError("StartError", "no command specified")
        program = find_program(command[0], env)
        if not os.access(workdir, os.X_OK):
            raise StartError("StartError", f"working directory {workdir} is not accessible")
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        os.execve(program, command, env)
    except StartError as exc:
        os.write(result_fd, json.dumps({"reason": exc.reason, "message": exc.message}).encode())
    except PermissionError as exc:
        os.write(result_fd, json.dumps({"reason": "StartError", "message": str(exc)}).encode())
    except BaseException as exc:  # noqa: BLE001 - every failure must reach the pod status
        msg = f"container start failed: {exc!r}"
        os.write(result_fd, json.dumps({"reason": "StartError", "message": msg}).encode())
    os._exit(128)


def main(argv):
    with open(argv[1]) as fh:
        spec = json.load(fh)
    result_fd = os.open(spec["result"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        setns(spec["netns"], CLONE_NEWNET)
        unshare(CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID)
        mount(None, "/", None, MS_REC | MS_PRIVATE)
        name = spec.get("hostname", "pod")[:63].encode()
        _check(_libc.sethostname(name, len(name)), "sethostname")
    except OSError as exc:
        os.write(result_fd, json.dumps({"reason": "StartError", "message": str(exc)}).encode())
        return 128
    child = os.fork()
    if child == 0:
        container_init(spec, result_fd)
    os.close(result_fd)

    def forward(signum, _frame):
        try:
            os.kill(child, signum)
        except ProcessLookupError:
            pass

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, forward)
    if spec.get("init_pid_file"):
        with open(spec["init_pid_file"], "w") as fh:
            fh.write(str(child))
    while True:
        try:
            _pid, status = os.waitpid(child, 0)
            break
        except InterruptedError:
            continue
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


if __name__ == "__main__":
    if not stat.S_ISDIR(os.stat("/").st_mode):  # pragma: no cover - sanity
        sys.exit(1)
    sys.exit(main(sys.argv))
