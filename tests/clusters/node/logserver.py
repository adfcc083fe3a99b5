"""The kubelet port (10250): container logs for the API server, over HTTPS.

Serves ``/containerLogs/<ns>/<pod>/<container>`` (tailLines, limitBytes, follow) and
``/healthz``. The serving certificate is the harness's ``pki/<cluster>/kubelet-serving`` when
present, else a self-signed one (the API server does not verify kubelet certificates unless
told to). Clients must present a certificate signed by the cluster CA when
``pki/<cluster>/ca.crt`` exists (the API server uses its kubelet client certificate).
"""

import datetime
import glob
import logging
import os
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

log = logging.getLogger(__name__)

PORT = 10250
FOLLOW_MAX_SECONDS = 3600


# containerd stores a line of a container's output longer than this as several log entries
# (partial ones), and the kubelet's tailLines counts entries (CRI-O splits at 8 KiB).
CRI_ENTRY_BYTES = 16 * 1024


def tail_entries(data: bytes, count: int) -> bytes:
    """The last ``count`` log entries of a container's output, as a kubelet on containerd
    serves ``tailLines``: a line ends at a newline only (a carriage return does not end one:
    rsync's progress is one ever longer line), and each 16 KiB of a longer line is an entry."""
    if count <= 0:
        return b""
    entries = []  # from the last one back
    end = len(data)
    while end > 0 and len(entries) < count:
        start = data.rfind(b"\n", 0, end - 1) + 1
        line = data[start:end]
        ending = b"\n" if line.endswith(b"\n") else b""
        content = line[: len(line) - len(ending)]
        pieces = [
            content[offset : offset + CRI_ENTRY_BYTES]
            for offset in range(0, len(content), CRI_ENTRY_BYTES)
        ] or [b""]
        pieces[-1] += ending
        entries.extend(reversed(pieces))
        end = start
    return b"".join(reversed(entries[:count]))


def _self_signed(cert_path, key_path, address, name):
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(address)), x509.DNSName(name)]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    os.makedirs(os.path.dirname(cert_path), exist_ok=True)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    with open(cert_path, "wb") as fh:
        fh.write(cert.public_bytes(serialization.Encoding.PEM))


def ssl_context(state_dir, cluster, address, node_name):
    pki = os.path.join(state_dir, "pki", cluster)
    cert, key = os.path.join(pki, "kubelet-serving.crt"), os.path.join(pki, "kubelet-serving.key")
    if not (os.path.isfile(cert) and os.path.isfile(key)):
        own = os.path.join(state_dir, "node", cluster)
        cert, key = os.path.join(own, "kubelet.crt"), os.path.join(own, "kubelet.key")
        if not os.path.isfile(cert):
            _self_signed(cert, key, address, node_name)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    ca = os.path.join(pki, "ca.crt")
    if os.path.isfile(ca):
        ctx.load_verify_locations(ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def find_log(agent, ns, pod, container, previous=False):
    runner = agent.runner_for(ns, pod)
    if runner is not None:
        return runner.log_path(container, previous), runner
    name = f"{container}.previous.log" if previous else f"{container}.log"
    pattern = os.path.join(agent.state_dir, "logs", "pods", f"{ns}_{pod}_*", name)
    found = sorted(glob.glob(pattern), key=os.path.getmtime)
    return (found[-1], None) if found else (None, None)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kf-kubelet"

    def log_message(self, fmt, *args):
        log.debug("kubelet port: " + fmt, *args)

    def _reply(self, code, body, ctype="text/plain"):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802 - http.server API
        url = urlsplit(self.path)
        q = {k: v[-1] for k, v in parse_qs(url.query).items()}
        parts = [unquote(p) for p in url.path.split("/") if p]
        if parts == ["healthz"]:
            return self._reply(200, "ok")
        if len(parts) != 4 or parts[0] != "containerLogs":
            return self._reply(404, "not found")
        _kind, ns, pod, container = parts
        previous = q.get("previous") in ("true", "1")
        path, runner = find_log(self.server.agent, ns, pod, container, previous)
        if path is None or not os.path.isfile(path):
            if previous:
                return self._reply(
                    400, f'previous terminated container "{container}" in pod "{pod}" not found'
                )
            return self._reply(404, f"container {container} of pod {ns}/{pod} has no logs")
        with open(path, "rb") as fh:
            data = fh.read()
        if "tailLines" in q:
            data = tail_entries(data, int(q["tailLines"]))
        if "limitBytes" in q:
            data = data[: int(q["limitBytes"])]
        if q.get("follow") not in ("true", "1") or runner is None or previous:
            return self._reply(200, data)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def chunk(b):
            self.wfile.write(f"{len(b):x}\r\n".encode() + b + b"\r\n")
            self.wfile.flush()

        if data:
            chunk(data)
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            deadline = time.monotonic() + FOLLOW_MAX_SECONDS
            while time.monotonic() < deadline:
                more = fh.read(65536)
                if more:
                    chunk(more)
                    continue
                running = any(c.running for c in runner.all_containers() if c.name == container)
                if not running or runner.done.is_set():
                    break
                time.sleep(0.2)
        self.wfile.write(b"0\r\n\r\n")


class LogServer:
    def __init__(self, agent, address=None, port=PORT):
        self.agent = agent
        self.address = address or agent.node_ip
        self.port = port
        self.httpd = None
        self.thread = None

    def start(self):
        ctx = ssl_context(
            self.agent.state_dir, self.agent.cluster, self.address, self.agent.node_name
        )
        self.httpd = ThreadingHTTPServer((self.address, self.port), Handler)
        self.httpd.daemon_threads = True
        self.httpd.agent = self.agent
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, daemon=True, name="kubelet-port"
        )
        self.thread.start()

    def stop(self):
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
