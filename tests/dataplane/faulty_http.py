"""An HTTP server in front of another that fails some requests with 500, for the data-plane
tests of what a client does when its server errs (a flaky router, an overloaded server).

Usage: python3 faulty_http.py LISTEN_HOST LISTEN_PORT UPSTREAM_HOST UPSTREAM_PORT
           [--every N] [--path TEXT]...

Every N-th request (all methods counted together) and every request whose decoded path
contains one of the TEXTs gets "500 Internal Server Error"; the others go to the upstream
server, a connection per request, and its answer comes back as it is. One line per failed
request on stdout ("FAILED <method> <path>"), for the test to see that faults were made.
Standard library only: it runs with the system's python3 as an unprivileged user.
"""

import argparse
import http.client
import http.server
import sys
import threading
import urllib.parse

# Connection-level headers: they describe one hop and are not passed on.
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "content-length",
}
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PROPFIND", "PROPPATCH",
           "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK")  # fmt: skip
UPSTREAM_TIMEOUT = 30  # seconds: a request that hangs upstream ends as a 502


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("listen_host")
    parser.add_argument("listen_port", type=int)
    parser.add_argument("upstream_host")
    parser.add_argument("upstream_port", type=int)
    parser.add_argument("--every", type=int, default=0, help="fail every N-th request")
    parser.add_argument("--path", action="append", default=[], help="fail paths containing it")
    return parser.parse_args(argv)


class Faults:
    def __init__(self, every, paths):
        self.every = every
        self.paths = paths
        self.count = 0
        self.lock = threading.Lock()

    def fail(self, path):
        if any(text in urllib.parse.unquote(path) for text in self.paths):
            return True
        with self.lock:
            self.count += 1
            return bool(self.every) and self.count % self.every == 0


def handler(options, faults):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the client expects of its server

        def log_message(self, fmt, *args):
            pass  # only the failures are logged, on stdout

        def reply(self, status, headers, body):
            self.send_response(status)
            for key, value in headers:
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def forward(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            if faults.fail(self.path):
                print("FAILED {0} {1}".format(self.command, self.path), flush=True)
                self.reply(500, [("Content-Length", "0")], b"")
                return
            headers = dict(
                (key, value) for key, value in self.headers.items() if key.lower() not in HOP_BY_HOP
            )
            upstream = http.client.HTTPConnection(
                options.upstream_host, options.upstream_port, timeout=UPSTREAM_TIMEOUT
            )
            try:
                upstream.request(self.command, self.path, body=body, headers=headers)
                answer = upstream.getresponse()
                data = answer.read()
            except OSError as exc:
                self.reply(502, [("Content-Length", "0")], b"")
                print("UPSTREAM {0} {1}: {2}".format(self.command, self.path, exc), flush=True)
                return
            finally:
                upstream.close()
            headers = [(k, v) for k, v in answer.getheaders() if k.lower() not in HOP_BY_HOP]
            # A HEAD answer announces the length of the body it does not send.
            size = answer.getheader("Content-Length") if self.command == "HEAD" else None
            headers.append(("Content-Length", size or str(len(data))))
            self.reply(answer.status, headers, data)

    for method in METHODS:
        setattr(Handler, "do_" + method, Handler.forward)
    return Handler


def main(argv):
    options = parse_args(argv)
    faults = Faults(options.every, options.path)
    server = http.server.ThreadingHTTPServer(
        (options.listen_host, options.listen_port), handler(options, faults)
    )
    server.daemon_threads = True
    print("listening on {0}:{1}".format(options.listen_host, options.listen_port), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
