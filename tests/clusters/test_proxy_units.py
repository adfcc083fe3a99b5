"""Unit tests of the LoadBalancer/NodePort proxy on loopback (no cluster, no root)."""

from __future__ import annotations

import hashlib
import os
import socket
import threading

import pytest

from .network import proxy

TIMEOUT = 10


class Upstream:
    """A backend on loopback: reads until the end of the stream, then answers with the
    sha256 of what it read; records how it ended."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(TIMEOUT)
        self.received = 0
        self.ended_by = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def address(self):
        return self.sock.getsockname()

    def _serve(self):
        conn, _peer = self.sock.accept()
        conn.settimeout(TIMEOUT)
        digest = hashlib.sha256()
        try:
            while data := conn.recv(1 << 16):
                digest.update(data)
                self.received += len(data)
            self.ended_by = "eof"
            conn.sendall(digest.hexdigest().encode())
        except ConnectionResetError:
            self.ended_by = "reset"
        finally:
            conn.close()
            self.sock.close()


@pytest.fixture
def through_proxy():
    """Connect to an Upstream through a proxy.Listener relaying with the given budget."""
    listeners = []

    def connect(upstream, budget=None):
        def handle(conn, _peer):
            proxy.relay(conn, socket.create_connection(upstream.address, TIMEOUT), budget)

        listener = proxy.Listener(("127.0.0.1", 0), handle)
        listeners.append(listener)
        client = socket.create_connection(listener.sock.getsockname(), TIMEOUT)
        client.settimeout(TIMEOUT)
        return client

    yield connect
    for listener in listeners:
        listener.close()


def test_bytes_arrive_intact_both_ways_and_a_half_close_passes_through(through_proxy):
    upstream = Upstream()
    client = through_proxy(upstream)
    payload = os.urandom(8 * 1024 * 1024 + 17)
    client.sendall(payload)
    client.shutdown(socket.SHUT_WR)  # the upstream answers only after it saw the end
    answer = b""
    while data := client.recv(1 << 16):
        answer += data
    client.close()
    upstream.thread.join(TIMEOUT)
    assert upstream.ended_by == "eof"
    assert upstream.received == len(payload)
    assert answer.decode() == hashlib.sha256(payload).hexdigest()


def test_a_spent_budget_resets_both_peers_after_that_many_bytes(through_proxy):
    upstream = Upstream()
    client = through_proxy(upstream, proxy.ResetBudget(100_000))
    with pytest.raises((ConnectionResetError, BrokenPipeError)):
        client.sendall(os.urandom(4 * 1024 * 1024))
        client.recv(1)  # an RST, not an end of stream (which would return b"")
    client.close()
    upstream.thread.join(TIMEOUT)
    assert upstream.ended_by == "reset"
    # Bytes the upstream had not read yet when the RST came are lost, as with any reset.
    assert upstream.received <= 100_000


def test_a_closed_listener_refuses_new_connections(through_proxy):
    listener = proxy.Listener(("127.0.0.1", 0), lambda conn, _peer: conn.close())
    address = listener.sock.getsockname()
    listener.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(address, TIMEOUT)


def test_a_budget_spent_by_the_answer_resets_a_client_that_only_reads(through_proxy):
    # The direction that spends the budget is not the one the relay waits on first.
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(TIMEOUT)

    class Talker:
        address = server.getsockname()

    def talk():
        conn, _peer = server.accept()
        try:
            conn.sendall(os.urandom(1024 * 1024))
        except OSError:
            pass
        finally:
            conn.close()
            server.close()

    threading.Thread(target=talk, daemon=True).start()
    client = through_proxy(Talker, proxy.ResetBudget(1000))
    received = 0
    with pytest.raises(ConnectionResetError):
        while data := client.recv(65536):
            received += len(data)
    client.close()
    assert received <= 1000
