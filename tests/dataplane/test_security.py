"""Data plane: who gets through stunnel, the rsync daemon and the rclone server."""

import os
import sys
import time

import pytest
from test_transfer import make_dir, start_client, start_server

# A TLS client in the client's network namespace: prints what the server side sends first
# (the rsync daemon greets with "@RSYNCD:"), or the error that ended the connection.
TLS_CLIENT = r"""
import socket, ssl, sys
host, port, ca, cert, key, version = sys.argv[1:7]
context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
context.minimum_version = getattr(ssl.TLSVersion, version)
context.maximum_version = getattr(ssl.TLSVersion, version)
context.load_verify_locations(ca)
if cert:
    context.load_cert_chain(cert, key)
try:
    with socket.create_connection((host, int(port)), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="kubeferry-server") as tls:
            print("RECEIVED", tls.recv(64))
except Exception as error:
    print("ERROR", type(error).__name__, error)
"""

# A plain TCP client (no TLS): what the port sends before the client says anything, then
# after it sends the opening of the transfer protocol, and whether the port closed.
PLAIN_CLIENT = r"""
import socket, sys
host, port, hello = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
with socket.create_connection((host, port), timeout=5) as raw:
    raw.settimeout(2)
    try:
        first = raw.recv(4096)
    except socket.timeout:
        first = None
    print("FIRST", repr(first))
    raw.sendall(hello)
    raw.settimeout(10)
    received, closed = b"", False
    try:
        while True:
            chunk = raw.recv(4096)
            if not chunk:
                closed = True
                break
            received += chunk
    except (socket.timeout, ConnectionResetError) as error:
        closed = isinstance(error, ConnectionResetError)
    print("AFTER", repr(received))
    print("CLOSED", closed)
"""


# A WebDAV request to set a file's modification time (to 2001).
PROPPATCH_MTIME = (
    '<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:"><D:set><D:prop>'
    "<D:getlastmodified>Mon, 01 Jan 2001 00:00:00 GMT</D:getlastmodified>"
    "</D:prop></D:set></D:propertyupdate>"
)


def write(path, text, mode=0o600):
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "w") as handle:
        handle.write(text)
    return path


@pytest.fixture
def rsync_stunnel_server(rendered, cluster_for, workdir):
    combo = rendered("rsync", "stunnel")
    cluster = cluster_for(combo)
    source = make_dir(os.path.join(workdir, "source-pvc"))
    write(os.path.join(source, "file"), "data\n", 0o644)
    server = start_server(cluster, combo, {"data": source})
    return combo, cluster, server


@pytest.mark.parametrize(
    "presented",
    [
        "run client certificate",
        "no certificate",
        "certificate of another CA",
        "server's own",
        "TLS 1.2",
    ],
)
def test_stunnel_accepts_only_the_run_client_certificate(
    rsync_stunnel_server, workdir, tls, foreign_tls, presented
):
    combo, cluster, server = rsync_stunnel_server
    ca = write(os.path.join(workdir, "ca.crt"), tls["ca_cert"])
    cert, key = {
        "run client certificate": (tls["client_cert"], tls["client_key"]),
        "no certificate": ("", ""),
        "certificate of another CA": (foreign_tls["client_cert"], foreign_tls["client_key"]),
        "server's own": (tls["server_cert"], tls["server_key"]),
        "TLS 1.2": (tls["client_cert"], tls["client_key"]),
    }[presented]
    version = "TLSv1_2" if presented == "TLS 1.2" else "TLSv1_3"
    cert_path = write(os.path.join(workdir, "client.crt"), cert) if cert else ""
    key_path = write(os.path.join(workdir, "client.key"), key) if key else ""
    result = cluster.run_in_netns(
        "client",
        [sys.executable, "-c", TLS_CLIENT, combo.endpoint["host"], "6443", ca, cert_path, key_path]
        + [version],
    )
    output = result.stdout + result.stderr
    if presented == "run client certificate":
        assert "RECEIVED b'@RSYNCD:" in output, output
    else:
        assert "@RSYNCD" not in output, output
        assert "ERROR" in output, output


# The opening bytes of each transfer protocol's client.
HELLO = {"rsync": "@RSYNCD: 31.0\n", "rclone": "GET /data/ HTTP/1.1\r\nHost: x\r\n\r\n"}


@pytest.mark.parametrize("transfer", ["rsync", "rclone"])
def test_stunnel_port_gives_a_plain_tcp_client_nothing_of_the_transfer(
    rendered, cluster_for, workdir, transfer
):
    """Without a TLS handshake the exposed port says nothing (the rsync daemon greets first
    on plain TCP) and answers nothing of rsync or HTTP: it only closes the connection."""
    combo = rendered(transfer, "stunnel")
    cluster = cluster_for(combo)
    source = make_dir(os.path.join(workdir, "source-pvc"))
    write(os.path.join(source, "file"), "data\n", 0o644)
    server = start_server(cluster, combo, {"data": source})
    result = cluster.run_in_netns(
        "client",
        [sys.executable, "-c", PLAIN_CLIENT, combo.endpoint["host"], "6443", HELLO[transfer]],
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "FIRST None" in output, "the port spoke before the client: " + output
    assert "CLOSED True" in output, "the port did not close the connection: " + output
    after = output.split("AFTER ", 1)[1].split("\n", 1)[0]
    # At most a TLS alert record (content type 21), never the daemon's or server's answer.
    assert after in ("b''",) or after.startswith("b'\\x15\\x03"), output
    for text in ("RSYNCD", "HTTP/", "data", "auth", "@ERROR"):
        assert text not in after, output
    # stunnel failed the handshake and forwarded not a byte to the transfer program.
    closed = "0 byte(s) sent to TLS, 0 byte(s) sent to socket"
    for _attempt in range(50):
        log = server.containers["transport"].log()
        ours = log.split("accepted connection from {0}:".format(cluster.client_address), 1)
        if len(ours) == 2 and closed in ours[1]:
            break
        time.sleep(0.1)
    assert len(ours) == 2 and closed in ours[1], log
    assert "SSL_accept" in ours[1], log


def test_stunnel_client_refuses_a_server_of_another_ca(rendered, cluster_for, workdir, foreign_tls):
    """The client sidecar checks the server's chain: a server of another run is refused."""
    # One retry: the first attempt may come before the sidecar listens (2 s backoff).
    client = rendered("rsync", "stunnel", transfer_rsync_retries=1)
    rogue = rendered("rsync", "stunnel", transport_stunnel_tls=foreign_tls)
    cluster = cluster_for(client)
    source = make_dir(os.path.join(workdir, "source-pvc"))
    write(os.path.join(source, "file"), "data\n", 0o644)
    start_server(cluster, rogue, {"data": source})
    destination = make_dir(os.path.join(workdir, "destination-pvc"))
    pod = start_client(cluster, client, destination, "client")
    code = pod.containers["transfer"].wait(60)
    assert code != 0
    assert os.listdir(destination) == []
    # The sidecar still lets the pod complete once the transfer client gave up.
    assert pod.containers["transport"].wait(15) == 0
    assert "certificate verify failed" in pod.containers["transport"].log()


@pytest.fixture
def rsync_null_server(rendered, cluster_for, workdir):
    combo = rendered("rsync", "null")
    cluster = cluster_for(combo)
    source = make_dir(os.path.join(workdir, "source-pvc"))
    write(os.path.join(source, "file"), "data\n", 0o644)
    server = start_server(cluster, combo, {"data": source})
    return combo, cluster, server


@pytest.mark.parametrize("password", ["right", "wrong", "none"])
def test_rsync_daemon_requires_the_run_password(rsync_null_server, workdir, password):
    combo, cluster, server = rsync_null_server
    argv = ["rsync", "-a", "--contimeout=5", "--timeout=10"]
    if password != "none":
        text = combo.password if password == "right" else combo.password[::-1]
        argv.append("--password-file=" + write(os.path.join(workdir, "pw"), text + "\n"))
    url = "rsync://kubeferry@{0}:8873/data/".format(combo.endpoint["host"])
    destination = make_dir(os.path.join(workdir, "out"))
    result = cluster.run_in_netns("client", argv + [url, destination + "/"])
    if password == "right":
        assert result.returncode == 0, result.stderr
        assert os.path.exists(os.path.join(destination, "file"))
    else:
        assert result.returncode == 5, result.stderr
        assert "auth failed" in result.stderr
        assert os.listdir(destination) == []
    # The daemon never logs the password (nor a wrong one).
    log = server.containers["transfer"].log()
    assert combo.password not in log and combo.password[::-1] not in log


@pytest.mark.parametrize("mode", ["preserve", "restricted"])
def test_rsync_daemon_never_reads_outside_its_module(rendered, cluster_for, workdir, mode):
    """No module listing, no --copy-links, no path through a symlink to outside."""
    combo = rendered("rsync", "null", mode)
    fs_group = 1000 if mode == "restricted" else None
    cluster = cluster_for(combo)
    source = make_dir(os.path.join(workdir, "source-pvc"))
    write(os.path.join(source, "file"), "data\n", 0o644)
    os.symlink("/etc", os.path.join(source, "escape"))
    os.symlink("../../../../etc", os.path.join(source, "escape-relative"))
    start_server(cluster, combo, {"data": source}, fs_group=fs_group)
    pw = write(os.path.join(workdir, "pw"), combo.password + "\n")
    base = ["rsync", "-a", "--contimeout=5", "--timeout=10", "--password-file=" + pw]
    url = "rsync://kubeferry@{0}:8873/".format(combo.endpoint["host"])

    listing = cluster.run_in_netns("client", base + [url])
    assert listing.returncode == 0 and "data" not in listing.stdout, listing.stdout
    follow = cluster.run_in_netns("client", base + ["-L", url + "data/", workdir + "/follow/"])
    assert follow.returncode != 0
    assert "refuse" in follow.stderr, follow.stderr
    for link in ("escape", "escape-relative"):
        out = make_dir(os.path.join(workdir, "out-" + link))
        through = cluster.run_in_netns("client", base + [url + "data/" + link + "/", out + "/"])
        assert through.returncode != 0, through.stdout
        assert os.listdir(out) == [], "read through {0}: {1}".format(link, os.listdir(out))
    # The links themselves arrive as links.
    out = make_dir(os.path.join(workdir, "out-links"))
    whole = cluster.run_in_netns("client", base + [url + "data/", out + "/"])
    assert whole.returncode == 0, whole.stderr
    assert os.readlink(os.path.join(out, "escape")) == "/etc"


@pytest.fixture
def rclone_null_server(rendered, cluster_for, workdir):
    combo = rendered("rclone", "null")
    cluster = cluster_for(combo)
    source = make_dir(os.path.join(workdir, "source-pvc"))
    write(os.path.join(source, "file"), "data\n", 0o644)
    os.symlink("/etc", os.path.join(source, "escape"))
    server = start_server(cluster, combo, {"data": source})
    return combo, cluster, server


@pytest.mark.parametrize("password", ["right", "wrong", "none"])
def test_rclone_server_requires_the_run_password(rclone_null_server, workdir, password):
    combo, cluster, server = rclone_null_server
    url = "http://{0}:8873/data/file".format(combo.endpoint["host"])
    argv = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10"]
    if password != "none":
        text = combo.password if password == "right" else combo.password[::-1]
        # Through a config file, so that the password is not on a command line either.
        netrc = write(
            os.path.join(workdir, "netrc"),
            "machine {0} login kubeferry password {1}\n".format(combo.endpoint["host"], text),
        )
        argv += ["--netrc-file", netrc]
    result = cluster.run_in_netns("client", argv + [url])
    assert result.stdout == ("200" if password == "right" else "401"), result.stderr
    # A symlink to outside the volumes is never followed.
    escape = cluster.run_in_netns("client", argv + [url.replace("file", "escape/passwd")])
    assert escape.stdout in ("401", "404"), escape.stdout
    # Nothing else than the volumes is served, and nothing can be written: no WebDAV method
    # that writes is accepted.
    if password == "right":
        source = os.path.join(workdir, "source-pvc")
        before = sorted(os.listdir(source)), open(os.path.join(source, "file")).read()
        target = ["-H", "Destination: " + url.replace("file", "moved")]
        for method in ("PUT", "DELETE", "MKCOL", "MOVE", "COPY"):
            attempt = cluster.run_in_netns(
                "client", argv + ["-X", method, "--data", "x"] + target + [url]
            )
            assert attempt.stdout in ("403", "404", "405", "415"), (method, attempt.stdout)
        proppatch = cluster.run_in_netns(
            "client", argv + ["-X", "PROPPATCH", "--data", PROPPATCH_MTIME, url]
        )
        assert proppatch.stdout in ("207", "403", "405"), proppatch.stdout
        assert (sorted(os.listdir(source)), open(os.path.join(source, "file")).read()) == before
        assert os.stat(os.path.join(source, "file")).st_mtime > 10**9  # not set to 2001
