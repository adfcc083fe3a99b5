"""The TCP proxy behind the twin clusters' LoadBalancer and NodePort addresses.

A cloud load balancer or kube-proxy forwards in the kernel or in hardware; it is never what
limits a transfer. The first proxy here was a single asyncio loop that copied every byte
through Python (about 150 MiB/s for all connections of a cluster together), and it was the
slowest link of the benchmark's path. This one gives each connection two threads that move
the bytes with splice(2): kernel to kernel through a pipe, without the GIL, so a connection
runs at the speed of the network namespaces' veths.

The proxy still sits in user space, where the fault knobs need it: a connection can be reset
after a budget of bytes (both directions counted).
"""

import fcntl
import logging
import os
import socket
import struct
import threading

log = logging.getLogger(__name__)

# Bytes one splice moves at most: the default pipe holds 64 KiB, a larger pipe fewer calls.
PIPE_SIZE = 1 << 20
ACCEPT_POLL_SECONDS = 0.5


class ResetBudget:
    """Bytes a connection may carry, both directions together, before the knob resets it."""

    def __init__(self, left):
        self.left = left
        self.lock = threading.Lock()

    def take(self, wanted):
        """How many of the wanted bytes may pass now (0: the budget is spent)."""
        with self.lock:
            granted = min(wanted, self.left)
            self.left -= granted
            return granted

    def refund(self, unused):
        """Give back what was granted and not moved."""
        with self.lock:
            self.left += unused


class Listener:
    """Accepts connections on one address; each goes to handle(conn, peer) in its own thread."""

    def __init__(self, address, handle):
        self.address = address
        self.sock = socket.create_server(address, reuse_port=False)
        self.sock.settimeout(ACCEPT_POLL_SECONDS)
        self.closed = threading.Event()
        self.thread = threading.Thread(
            target=self._accept, args=(handle,), daemon=True, name=f"listen {address}"
        )
        self.thread.start()

    def _accept(self, handle):
        while not self.closed.is_set():
            try:
                conn, peer = self.sock.accept()
            except socket.timeout:
                continue
            except OSError as exc:
                if self.closed.is_set():
                    return
                log.warning("accept on %s:%s: %s", *self.address, exc)  # e.g. out of files
                self.closed.wait(ACCEPT_POLL_SECONDS)
                continue
            threading.Thread(target=handle, args=(conn, peer), daemon=True).start()

    def close(self):
        """Stop accepting; connections already relayed go on until either side ends them."""
        self.closed.set()
        self.thread.join(ACCEPT_POLL_SECONDS * 4)
        self.sock.close()


def _pipe():
    read_end, write_end = os.pipe()
    try:
        fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
    except OSError:  # a pipe larger than /proc/sys/fs/pipe-max-size: keep the default
        pass
    return read_end, write_end


class _Connection:
    """What the two directions of one relayed connection share."""

    def __init__(self, client, upstream, budget):
        self.sockets = (client, upstream)
        self.budget = budget
        self.ended = threading.Event()  # one direction broke: the other stops too
        self.reset = False  # ...because the budget is spent: both peers get an RST

    def end(self, reset=False):
        """Break the connection and wake the direction still waiting in splice. A reset must
        not send a FIN first: reading is shut down only, and close() with a zero linger time
        sends the RST."""
        self.reset = self.reset or reset
        self.ended.set()
        for sock in self.sockets:
            try:
                if self.reset:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    sock.shutdown(socket.SHUT_RD)
                else:
                    sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _one_way(src, dst, conn):
    """Move bytes from src to dst until src ends (then half-close dst) or something breaks."""
    read_end, write_end = _pipe()
    try:
        while True:
            want = PIPE_SIZE if conn.budget is None else conn.budget.take(PIPE_SIZE)
            if want == 0:
                conn.end(reset=True)
                return
            moved = os.splice(src.fileno(), write_end, want)
            if conn.budget is not None:
                conn.budget.refund(want - moved)
            if moved == 0:
                if not conn.ended.is_set():  # a real end of stream, not the other side's wake-up
                    dst.shutdown(socket.SHUT_WR)
                return
            while moved:
                moved -= os.splice(read_end, dst.fileno(), moved)
    except OSError:
        # A peer went away, or the other direction ended the connection.
        if not conn.ended.is_set():
            conn.end()
    finally:
        os.close(read_end)
        os.close(write_end)


def relay(client, upstream, budget=None):
    """Relay one connection both ways until both directions ended; closes both sockets.

    With a budget, the connection is reset (RST to both peers) once the budget is spent.
    """
    for sock in (client, upstream):
        sock.setblocking(True)  # splice(2) waits in the kernel; a socket timeout would not
    conn = _Connection(client, upstream, budget)
    back = threading.Thread(target=_one_way, args=(upstream, client, conn), daemon=True)
    back.start()
    _one_way(client, upstream, conn)
    back.join()
    for sock in (client, upstream):
        sock.close()
