"""Service and Route networking of one twin cluster, run inside its node agent (in kf-world).

- LoadBalancer: an address from the cluster's pool on kfw0, a TCP proxy per port to a Ready
  pod selected by the Service's selector (there are no Endpoints controllers), and
  ``status.loadBalancer.ingress`` with the ``ip``, or with a ``hostname`` whose DNS record
  appears only after a delay, like cloud load balancers.
- NodePort: a TCP proxy on the node address and the nodePort the API server assigned.
- Router (clusters with the Route API): HAProxy on the router address, TLS passthrough by SNI
  on 443 and plain HTTP by Host on 80; writes each Route's ``status.ingress`` (Admitted).

Fault knobs, as Service annotations:
  kf.test/lb-never: "true"            the LoadBalancer never gets an address
  kf.test/lb-hostname: "true"         ingress is a hostname (<name>-<ns>.lb.<cluster>.kf.test,
                                      the label shortened with a hash beyond 63 characters)
  kf.test/lb-dns-delay-seconds: "N"   ... whose DNS record appears N seconds later (implies
                                      hostname ingress)
  kf.test/reset-after-bytes: "N"      the first proxied connection after the annotation is set
                                      is reset (RST) after N bytes (both directions counted);
                                      applies to LB and NodePort proxies
"""

import functools
import hashlib
import ipaddress
import logging
import os
import re
import socket
import subprocess
import threading
import time

from kubernetes.client.exceptions import ApiException

from ..node.kube import Informer, now_rfc3339
from . import dns, layout, proxy

log = logging.getLogger(__name__)


ROUTE_TIMEOUT = "haproxy.router.openshift.io/timeout"
ROUTE_TUNNEL_TIMEOUT = "haproxy.router.openshift.io/timeout-tunnel"
HAPROXY_TIME = re.compile(r"^[1-9][0-9]*(us|ms|s|m|h|d)?$")


def route_timeouts(annotations):
    """The backend lines OpenShift's router template makes of a Route's timeout annotations
    (values that are no HAProxy time are ignored, as there)."""
    lines = []
    for annotation, keyword in ((ROUTE_TIMEOUT, "server"), (ROUTE_TUNNEL_TIMEOUT, "tunnel")):
        value = str(annotations.get(annotation, "")).strip()
        if HAPROXY_TIME.match(value):
            lines.append(f"  timeout {keyword} {value}")
    return lines


def lb_label(name, namespace):
    """The first DNS label of a hostname ingress: <name>-<namespace>, at most 63 characters
    (a longer label is no valid DNS name: cut, with a hash of the whole to stay unique)."""
    label = f"{name}-{namespace}"
    if len(label) <= 63:
        return label
    return label[:54].rstrip("-") + "-" + hashlib.sha256(label.encode()).hexdigest()[:8]


ANN_NEVER = "kf.test/lb-never"
ANN_HOSTNAME = "kf.test/lb-hostname"
ANN_DNS_DELAY = "kf.test/lb-dns-delay-seconds"
ANN_RESET = "kf.test/reset-after-bytes"
ROUTER_NAME = "default"
CONNECT_TIMEOUT = 5.0


def socket_to(ip, port):
    """A connected, blocking socket to a backend (OSError when it cannot be reached)."""
    sock = socket.create_connection((ip, port), CONNECT_TIMEOUT)
    sock.settimeout(None)
    return sock


def _ann(obj, key):
    return (obj["metadata"].get("annotations") or {}).get(key)


def _selects(selector, pod):
    labels = pod["metadata"].get("labels") or {}
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _container_port(pod, target):
    if isinstance(target, int) or (isinstance(target, str) and target.isdigit()):
        return int(target)
    for c in pod["spec"].get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("name") == target:
                return p["containerPort"]
    return None


class ServiceController:
    def __init__(self, agent):
        self.agent = agent
        self.kube = agent.kube
        self.cluster = agent.cluster
        self.cfg = layout.CLUSTERS[agent.cluster]
        self.state_dir = agent.state_dir
        self.stop_event = threading.Event()
        self.kick_event = threading.Event()
        self.services = Informer(self.kube, "/api/v1/services", self._on_event, self.stop_event)
        self.routes = Informer(
            self.kube, "/apis/route.openshift.io/v1/routes", self._on_event, self.stop_event
        )
        self.listeners = {}  # (ip, port) -> (proxy.Listener, (svc key, port spec name, port))
        self.lb_ips = {}  # svc uid -> ip
        self.dns_due = {}  # svc uid -> (monotonic due time, hostname, ip)
        self.reset_done = set()  # (svc uid, annotation value)
        self.reset_lock = threading.Lock()
        self.last_lb_status = {}
        self.route_status = {}
        self.haproxy = None
        self.haproxy_cfg = None
        self.lock = threading.Lock()
        self.addresses = set()  # LB addresses this controller put on kfw0

    def _on_event(self, _typ, _obj):
        self.kick_event.set()

    def kick(self):
        self.kick_event.set()

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self):
        self.services.start()
        self.routes.start()
        self.services.synced.wait(30)
        self.routes.synced.wait(30)
        self.worker = threading.Thread(target=self._work, daemon=True, name="services")
        self.worker.start()

    def stop(self):
        self.stop_event.set()
        self.kick_event.set()
        if getattr(self, "worker", None) is not None:
            self.worker.join(10)
        try:
            self._apply_listeners({})
        except Exception:  # noqa: BLE001 - best effort on the way out
            log.exception("closing listeners")
        for ip in set(self.lb_ips.values()):
            layout.remove_world_address(ip)
        for uid in list(self.lb_ips):
            dns.remove_record(self.state_dir, f"lb-{self.cluster}-{uid}")
        self._stop_haproxy()

    def _work(self):
        while not self.stop_event.is_set():
            self.kick_event.wait(1.0)
            self.kick_event.clear()
            if self.stop_event.is_set():
                return
            try:
                self.reconcile()
            except Exception:  # noqa: BLE001 - keep serving, log the bug
                log.exception("service reconcile failed")
            time.sleep(0.1)

    # -- backends ---------------------------------------------------------------------------------
    def backends(self, namespace, selector, target_port):
        out = []
        for pod in self.agent.pods.snapshot():
            if pod["metadata"]["namespace"] != namespace or not _selects(selector, pod):
                continue
            if not self.agent.pod_ready(pod):
                continue
            ip = (pod.get("status") or {}).get("podIP")
            port = _container_port(pod, target_port)
            if ip and port:
                out.append((ip, port))
        return sorted(out)

    # -- reconcile --------------------------------------------------------------------------------
    def reconcile(self):
        desired = {}
        live_uids = set()
        for svc in self.services.snapshot():
            spec, md = svc["spec"], svc["metadata"]
            typ = spec.get("type", "ClusterIP")
            if typ not in ("NodePort", "LoadBalancer"):
                continue
            uid = md["uid"]
            live_uids.add(uid)
            key = (md["namespace"], md["name"])
            for p in spec.get("ports") or []:
                if p.get("protocol", "TCP") != "TCP":
                    continue
                if p.get("nodePort"):
                    desired[(self.cfg["node"], p["nodePort"])] = (key, p.get("name"), p["port"])
            if typ == "LoadBalancer":
                ip = self._lb(svc)
                if ip:
                    for p in spec.get("ports") or []:
                        if p.get("protocol", "TCP") == "TCP":
                            desired[(ip, p["port"])] = (key, p.get("name"), p["port"])
        for uid in list(self.lb_ips):
            if uid not in live_uids:
                self._release_lb(uid)
        self._apply_listeners(desired)
        self._due_dns()
        if not self.routes.missing and self.routes.synced.is_set():
            self.reconcile_routes()

    def _lb(self, svc):
        md = svc["metadata"]
        uid = md["uid"]
        if _ann(svc, ANN_NEVER) == "true":
            self._release_lb(uid)
            return None
        ip = self.lb_ips.get(uid)
        if ip is None:
            used = set(self.lb_ips.values())
            current = [
                i.get("ip")
                for i in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
            ]
            pool = [a for a in current if a in self.cfg["lb_pool"]] + self.cfg["lb_pool"]
            free = [a for a in pool if a not in used]
            if not free:
                log.warning("LB pool of %s exhausted", self.cluster)
                return None
            ip = free[0]
            self.lb_ips[uid] = ip
        if ip not in self.addresses:
            layout.ensure_world_address(ip)
            self.addresses.add(ip)
        hostname_mode = _ann(svc, ANN_HOSTNAME) == "true" or _ann(svc, ANN_DNS_DELAY) is not None
        ports = [
            {"port": p["port"], "protocol": p.get("protocol", "TCP")}
            for p in svc["spec"].get("ports") or []
        ]
        if hostname_mode:
            host = f"{lb_label(md['name'], md['namespace'])}.{layout.lb_domain(self.cluster)}"
            ingress = [{"hostname": host, "ports": ports}]
            if uid not in self.dns_due:
                try:
                    delay = float(_ann(svc, ANN_DNS_DELAY) or 0)
                except ValueError:
                    delay = 0.0
                self.dns_due[uid] = (time.monotonic() + delay, host, ip)
        else:
            ingress = [{"ip": ip, "ipMode": "VIP", "ports": ports}]
            if uid in self.dns_due:
                self.dns_due.pop(uid)
                dns.remove_record(self.state_dir, f"lb-{self.cluster}-{uid}")
        if self.last_lb_status.get(uid) != ingress:
            try:
                self.kube.patch(
                    f"/api/v1/namespaces/{md['namespace']}/services/{md['name']}/status",
                    {"status": {"loadBalancer": {"ingress": ingress}}},
                )
                self.last_lb_status[uid] = ingress
            except ApiException as exc:
                log.warning("LB status %s/%s: %s", md["namespace"], md["name"], exc.reason)
        return ip

    def _due_dns(self):
        now = time.monotonic()
        for uid, (due, host, ip) in list(self.dns_due.items()):
            if due <= now:
                dns.set_record(self.state_dir, f"lb-{self.cluster}-{uid}", host, ip)

    def _release_lb(self, uid):
        ip = self.lb_ips.pop(uid, None)
        self.dns_due.pop(uid, None)
        self.last_lb_status.pop(uid, None)
        dns.remove_record(self.state_dir, f"lb-{self.cluster}-{uid}")
        if ip:
            layout.remove_world_address(ip)
            self.addresses.discard(ip)

    # -- TCP proxies ------------------------------------------------------------------------------
    def _apply_listeners(self, desired):
        for addr in list(self.listeners):
            if addr not in desired or self.listeners[addr][1] != desired[addr]:
                self.listeners.pop(addr)[0].close()
        for addr, meta in desired.items():
            if addr in self.listeners:
                continue
            try:
                listener = proxy.Listener(addr, functools.partial(self._serve, meta=meta))
            except OSError as exc:
                log.warning("cannot listen on %s:%s: %s", addr[0], addr[1], exc)
                continue
            self.listeners[addr] = (listener, meta)

    def _service(self, key):
        return self.services.get(*key)

    def _serve(self, conn, peer, meta):
        """One connection to a LoadBalancer or NodePort address (in its own thread)."""
        key, port_name, port = meta
        upstream = None
        try:
            svc = self._service(key)
            if svc is None:
                return
            ranges = svc["spec"].get("loadBalancerSourceRanges") or []
            if ranges and not any(
                ipaddress.ip_address(peer[0]) in ipaddress.ip_network(r, strict=False)
                for r in ranges
            ):
                return
            target = None
            for p in svc["spec"].get("ports") or []:
                if p.get("name") == port_name and p["port"] == port:
                    target = p.get("targetPort", p["port"])
            backends = self.backends(key[0], svc["spec"].get("selector") or {}, target)
            if not backends:
                return
            # Spread connections over ready pods, stable per client port.
            ip, tport = backends[hash(peer) % len(backends)]
            try:
                upstream = socket_to(ip, tport)
            except OSError:
                return
            budget = None
            reset_value = _ann(svc, ANN_RESET)
            with self.reset_lock:
                if reset_value and (svc["metadata"]["uid"], reset_value) not in self.reset_done:
                    self.reset_done.add((svc["metadata"]["uid"], reset_value))
                    budget = proxy.ResetBudget(int(reset_value))
            proxy.relay(conn, upstream, budget)
            conn = upstream = None  # relay closed both
        except Exception:  # noqa: BLE001 - one broken connection must not hurt others
            log.debug("proxy connection failed", exc_info=True)
        finally:
            for sock in (conn, upstream):
                if sock is not None:
                    sock.close()

    # -- router -----------------------------------------------------------------------------------
    def route_host(self, route):
        md = route["metadata"]
        return route["spec"].get("host") or (
            f"{md['name']}-{md['namespace']}.{layout.apps_domain(self.cluster)}"
        )

    def _route_backends(self, route):
        ns = route["metadata"]["namespace"]
        to = route["spec"].get("to") or {}
        svc = self.services.get(ns, to.get("name", ""))
        if svc is None:
            return []
        target = (route["spec"].get("port") or {}).get("targetPort")
        ports = svc["spec"].get("ports") or []
        pod_target = None
        if target is None and ports:
            pod_target = ports[0].get("targetPort", ports[0]["port"])
        elif isinstance(target, str) and not target.isdigit():
            for p in ports:
                if p.get("name") == target:
                    pod_target = p.get("targetPort", p["port"])
            if pod_target is None:
                pod_target = target  # a named container port
        else:
            pod_target = int(target)
        return self.backends(ns, svc["spec"].get("selector") or {}, pod_target)

    def reconcile_routes(self):
        routes = sorted(
            self.routes.snapshot(),
            key=lambda r: (
                r["metadata"].get("creationTimestamp", ""),
                r["metadata"]["namespace"],
                r["metadata"]["name"],
            ),
        )
        claimed = {}
        admitted = []
        for route in routes:
            md = route["metadata"]
            if md.get("deletionTimestamp"):
                continue
            host = self.route_host(route)
            if not route["spec"].get("host"):
                try:
                    self.kube.patch(self._route_path(route), {"spec": {"host": host}})
                except ApiException as exc:
                    log.debug("route host %s: %s", md["name"], exc.reason)
            owner = claimed.setdefault(host, (md["namespace"], md["name"]))
            if owner != (md["namespace"], md["name"]):
                self._route_status(
                    route,
                    host,
                    False,
                    "HostAlreadyClaimed",
                    f"route {owner[1]} already exposes {host} and is older",
                )
                continue
            admitted.append((route, host))
            self._route_status(route, host, True)
            if not host.endswith("." + layout.apps_domain(self.cluster)):
                dns.set_record(
                    self.state_dir, f"route-{self.cluster}-{md['uid']}", host, self.cfg["router"]
                )
        self._write_haproxy(admitted)

    @staticmethod
    def _route_path(route):
        md = route["metadata"]
        return f"/apis/route.openshift.io/v1/namespaces/{md['namespace']}/routes/{md['name']}"

    def _route_status(self, route, host, ok, reason=None, message=None):
        cond = {"type": "Admitted", "status": "True" if ok else "False"}
        if reason:
            cond.update(reason=reason, message=message)
        apps = layout.apps_domain(self.cluster)
        ingress = [
            {
                "host": host,
                "routerName": ROUTER_NAME,
                "routerCanonicalHostname": f"router-{ROUTER_NAME}.{apps}",
                "wildcardPolicy": "None",
                "conditions": [cond],
            }
        ]
        uid = route["metadata"]["uid"]
        current = [
            dict(
                i,
                conditions=[
                    {k: v for k, v in c.items() if k != "lastTransitionTime"}
                    for c in i.get("conditions") or []
                ],
            )
            for i in (route.get("status") or {}).get("ingress") or []
        ]
        last = self.route_status.get(uid)
        if current == ingress or (last and last[0] == ingress and time.monotonic() - last[1] < 5):
            return
        stamped = [
            dict(i, conditions=[dict(c, lastTransitionTime=now_rfc3339()) for c in i["conditions"]])
            for i in ingress
        ]
        try:
            self.kube.patch(self._route_path(route) + "/status", {"status": {"ingress": stamped}})
        except ApiException as exc:
            if exc.status != 404:
                log.warning("route status %s: %s", route["metadata"]["name"], exc.reason)
            return
        self.route_status[uid] = (ingress, time.monotonic())

    def _haproxy_paths(self):
        run = os.path.join(self.state_dir, "run")
        os.makedirs(run, exist_ok=True)
        return (
            os.path.join(self.state_dir, "node", self.cluster, "haproxy.cfg"),
            os.path.join(run, f"haproxy-{self.cluster}.pid"),
        )

    def render_haproxy(self, admitted):
        router = self.cfg["router"]
        lines = [
            "global",
            "  maxconn 4096",
            # OpenShift's router defaults: an established passthrough connection is a tunnel,
            # cut after 1h idle unless the Route's timeout-tunnel annotation says otherwise.
            "defaults",
            "  timeout connect 5s",
            "  timeout client 30s",
            "  timeout server 30s",
            "  timeout tunnel 1h",
            "  option clitcpka",
            "  option srvtcpka",
            "frontend fe_passthrough",
            f"  bind {router}:443",
            "  mode tcp",
            "  tcp-request inspect-delay 5s",
            "  tcp-request content accept if { req_ssl_hello_type 1 }",
        ]
        backends = []
        http_rules = []
        for route, host in admitted:
            md = route["metadata"]
            name = (
                "be_" + hashlib.sha256(f"{md['namespace']}/{md['name']}".encode()).hexdigest()[:12]
            )
            tls = (route["spec"].get("tls") or {}).get("termination")
            servers = self._route_backends(route)
            if tls == "passthrough":
                lines.append(f"  use_backend {name} if {{ req_ssl_sni -i {host} }}")
                mode = "tcp"
            elif tls is None:
                http_rules.append(f"  use_backend {name} if {{ hdr(host),field(1,:) -i {host} }}")
                mode = "http"
            else:
                continue  # edge/reencrypt: not served by this router (not used by the collection)
            backends.append(f"backend {name}")
            backends.append(f"  mode {mode}")
            backends += route_timeouts(md.get("annotations") or {})
            backends.append(f"  # route {md['namespace']}/{md['name']} host {host}")
            for i, (ip, port) in enumerate(servers):
                backends.append(f"  server pod{i} {ip}:{port}")
        lines += [
            "frontend fe_http",
            f"  bind {router}:80",
            "  mode http",
            "  timeout http-request 10s",
            *http_rules,
        ]
        return "\n".join(lines + backends) + "\n"

    def _write_haproxy(self, admitted):
        cfg_text = self.render_haproxy(admitted)
        cfg_path, pid_path = self._haproxy_paths()
        if (
            cfg_text == self.haproxy_cfg
            and self.haproxy is not None
            and (self.haproxy.poll() is None)
        ):
            return
        os.makedirs(os.path.dirname(cfg_path), exist_ok=True)
        if self.cfg["router"] not in self.addresses:
            layout.ensure_world_address(self.cfg["router"])
            self.addresses.add(self.cfg["router"])
        with open(cfg_path + ".new", "w") as fh:
            fh.write(cfg_text)
        check = subprocess.run(
            ["haproxy", "-c", "-q", "-f", cfg_path + ".new"],
            capture_output=True,
            text=True,
            check=False,
        )
        if check.returncode != 0:
            log.error("haproxy config rejected: %s", check.stderr.strip())
            return
        os.replace(cfg_path + ".new", cfg_path)
        self.haproxy_cfg = cfg_text
        if self.haproxy is not None and self.haproxy.poll() is None:
            self.haproxy.send_signal(12)  # SIGUSR2: the master reloads its workers
            return
        logf = open(os.path.join(self.state_dir, "logs", f"haproxy-{self.cluster}.log"), "ab")
        self.haproxy = subprocess.Popen(
            ["haproxy", "-W", "-db", "-f", cfg_path],
            stdin=subprocess.DEVNULL,
            stdout=logf,
            stderr=logf,
            start_new_session=True,
        )
        logf.close()
        with open(pid_path, "w") as fh:
            fh.write(str(self.haproxy.pid))

    def _stop_haproxy(self):
        if self.haproxy is None:
            return
        if self.haproxy.poll() is None:
            self.haproxy.terminate()
            try:
                self.haproxy.wait(5)
            except subprocess.TimeoutExpired:
                self.haproxy.kill()
                self.haproxy.wait(5)
        _cfg, pid_path = self._haproxy_paths()
        try:
            os.unlink(pid_path)
        except FileNotFoundError:
            pass
