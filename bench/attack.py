#!/usr/bin/env python3
"""Replay the resource attacks of the security review against a running pier, for a
bounded time, and print one table row per phase. Started by bench/attack.sh, which runs
pier with a fresh data dir and passes it in the environment:

  PIER_PORT, PIER_PID, PIER_DATA, PIER_ADMIN_PASSWORD

Phases (each ATTACK_SECONDS long, then RECOVER_SECONDS of rest):
  1 baseline         no attack: the probes alone
  2 long names       GET /v2/ with Basic robot$<125 KB>+<125 KB>:x, a new name each time
  3 audit scopes     anonymous GET /service/token with 32 long scopes each
  4 connections      500 idle connections + 200 sending one header byte per second
  5 argon2 memory    50 connections of wrong passwords (admin and unknown users), each
                     from its own address 127.0.1.N
  6 CPU one address  50 threads of wrong passwords for random users from 127.0.0.3

During every phase, from PROBE_SOURCE (127.0.0.2): a pulled manifest about every
PULL_INTERVAL s (Bearer token of admin; PULL_AUTH=basic for cached Basic credentials) and
one uncached login per second (GET /v2/ as the next of the users benchuN created up
front, none twice in the run, so each one is an argon2 check). pier's RSS and CPU are
sampled every SAMPLE_INTERVAL s.

Traffic goes to 127.0.0.1 only, from 127.0.0.0/8 source addresses. Every loop is bounded
by a count and a time; workers are separate processes, so the probes' latencies do not
include the attackers' GIL. Standard library only.
"""

import base64
import hashlib
import http.client
import json
import multiprocessing as mp
import os
import random
import resource
import select
import socket
import string
import sys
import threading
import time


def env_int(name, default):
    return int(os.environ.get(name, default))


def env_float(name, default):
    return float(os.environ.get(name, default))


CFG = {
    "port": env_int("PIER_PORT", 0),
    "pid": env_int("PIER_PID", 0),
    "data": os.environ.get("PIER_DATA", ""),
    "admin_password": os.environ.get("PIER_ADMIN_PASSWORD", ""),
    "phases": [int(p) for p in os.environ.get("PHASES", "1,2,3,4,5,6").split(",") if p.strip()],
    "attack_seconds": env_float("ATTACK_SECONDS", 15),
    # Phase 4 outlasts pier's default head (20 s) and idle (60 s) timeouts, so the table
    # shows whether the connections were closed.
    "p4_seconds": env_float("P4_SECONDS", 75),
    "baseline_seconds": env_float("BASELINE_SECONDS", 8),
    "recover_seconds": env_float("RECOVER_SECONDS", 3),
    "max_total_seconds": env_float("MAX_TOTAL_SECONDS", 420),
    "sample_interval": env_float("SAMPLE_INTERVAL", 0.2),
    "probe_source": os.environ.get("PROBE_SOURCE", "127.0.0.2"),
    "pull_interval": env_float("PULL_INTERVAL", 0.15),
    "pull_auth": os.environ.get("PULL_AUTH", "bearer"),
    "login_interval": env_float("LOGIN_INTERVAL", 1.0),
    "probe_timeout": env_float("PROBE_TIMEOUT", 10),
    "attack_timeout": env_float("ATTACK_TIMEOUT", 10),
    # phase 2
    "p2_max": env_int("P2_MAX", 4000),
    "p2_conns": env_int("P2_CONNS", 6),
    "p2_name_kb": env_int("P2_NAME_KB", 125),
    # phase 3: pier caps a repository name at 255 bytes (longer scopes are refused with 400
    # before anything is logged), so "library/" + 247 letters is the longest that counts.
    "p3_max": env_int("P3_MAX", 20000),
    "p3_conns": env_int("P3_CONNS", 8),
    "p3_scopes": env_int("P3_SCOPES", 32),
    "p3_name_len": env_int("P3_NAME_LEN", 247),
    "p3_actions": os.environ.get("P3_ACTIONS", "pull,push"),
    # phase 4
    "p4_idle": env_int("P4_IDLE", 500),
    "p4_slow": env_int("P4_SLOW", 200),
    # phase 5
    "p5_conns": env_int("P5_CONNS", 50),
    "p5_addrs": env_int("P5_ADDRS", 50),
    "p5_max": env_int("P5_MAX", 20000),
    # phase 6
    "p6_threads": env_int("P6_THREADS", 50),
    "p6_source": os.environ.get("P6_SOURCE", "127.0.0.3"),
    "p6_max": env_int("P6_MAX", 20000),
}

HOST = "127.0.0.1"
PHASE_NAMES = {
    1: "1 baseline",
    2: "2 long names",
    3: "3 audit scopes",
    4: "4 idle+slow conns",
    5: "5 argon2 50 conns",
    6: "6 CPU one address",
}


# --- HTTP helpers -----------------------------------------------------------------------


def classify(e):
    """A short name for a failed request."""
    if isinstance(e, ConnectionResetError):
        return "reset"
    if isinstance(e, BrokenPipeError):
        return "pipe"
    if isinstance(e, ConnectionRefusedError):
        return "refused"
    if isinstance(e, http.client.RemoteDisconnected):
        return "closed"
    if isinstance(e, (socket.timeout, TimeoutError)):
        return "timeout"
    if isinstance(e, OSError) and e.errno is not None:
        return "oserr%d" % e.errno
    return type(e).__name__


def basic(name, secret):
    return "Basic " + base64.b64encode(("%s:%s" % (name, secret)).encode()).decode()


def once(method, path, headers=None, body=None, source=None, timeout=10.0):
    """One request on a fresh connection: (status or error name, body bytes, seconds)."""
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection(
        HOST, CFG["port"], timeout=timeout, source_address=(source, 0) if source else None
    )
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        return str(r.status), data, time.perf_counter() - t0
    except Exception as e:  # resets, timeouts, refusals: counted, never fatal
        return classify(e), b"", time.perf_counter() - t0
    finally:
        conn.close()


class KeepAlive:
    """A client connection reused across requests, reopened after any error or close."""

    def __init__(self, source=None, timeout=10.0):
        self.source = source
        self.timeout = timeout
        self.conn = None

    def close(self):
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:
                pass
            self.conn = None

    def request(self, method, path, headers):
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection(
                    HOST,
                    CFG["port"],
                    timeout=self.timeout,
                    source_address=(self.source, 0) if self.source else None,
                )
            self.conn.request(method, path, headers=headers)
            r = self.conn.getresponse()
            r.read()
            if r.will_close:
                self.close()
            return str(r.status)
        except Exception as e:
            self.close()
            return classify(e)


def raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass


# --- attackers (each runs in its own process) -------------------------------------------


def request_loop(cfg, stop, deadline, budget, nthreads, make_request, sources):
    """Run `make_request(client, rng)` on nthreads keep-alive connections until stop, the
    deadline, or `budget` requests in all. Returns (sent, status mix)."""
    lock = threading.Lock()
    state = {"left": budget, "sent": 0}
    mix = {}

    def take():
        with lock:
            if state["left"] <= 0:
                return False
            state["left"] -= 1
            return True

    def worker(i):
        rng = random.Random(os.getpid() * 1000 + i)
        client = KeepAlive(source=sources[i % len(sources)], timeout=cfg["attack_timeout"])
        local = {}
        n = 0
        while not stop.is_set() and time.monotonic() < deadline and take():
            status = make_request(client, rng)
            local[status] = local.get(status, 0) + 1
            n += 1
            if not status.isdigit():
                time.sleep(0.01)  # no hot loop against a refusing or dead server
        client.close()
        with lock:
            state["sent"] += n
            for k, v in local.items():
                mix[k] = mix.get(k, 0) + v

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(nthreads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()) + cfg["attack_timeout"] + 2)
    with lock:
        return state["sent"], dict(mix)


def rand_word(rng, n):
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(n))


def attack_long_names(cfg, stop, deadline):
    half = cfg["p2_name_kb"] * 1024
    fill_a = "a" * (half - 16)
    fill_b = "b" * (half - 16)

    def one(client, rng):
        name = "robot$%016x%s+%016x%s" % (rng.getrandbits(64), fill_a, rng.getrandbits(64), fill_b)
        return client.request("GET", "/v2/", {"Authorization": basic(name, "x")})

    return request_loop(cfg, stop, deadline, cfg["p2_max"], cfg["p2_conns"], one, [None])


def attack_audit_scopes(cfg, stop, deadline):
    def one(client, rng):
        scopes = "&".join(
            "scope=repository:library/%s:%s" % (rand_word(rng, cfg["p3_name_len"]), cfg["p3_actions"])
            for _ in range(cfg["p3_scopes"])
        )
        return client.request("GET", "/service/token?service=pier&" + scopes, {})

    return request_loop(cfg, stop, deadline, cfg["p3_max"], cfg["p3_conns"], one, [None])


def attack_argon2_memory(cfg, stop, deadline):
    sources = ["127.0.1.%d" % (1 + i % 250) for i in range(max(1, cfg["p5_addrs"]))]
    if cfg["p5_addrs"] <= 1:
        sources = [None]

    def one(client, rng):
        # One in four as admin (locked out per address after 5 failures), the rest as
        # unknown users, whose decoy hash costs the same and which no lockout stops.
        user = "admin" if rng.random() < 0.25 else "nobody%x" % rng.getrandbits(48)
        return client.request("GET", "/v2/", {"Authorization": basic(user, "wrong-%x" % rng.getrandbits(32))})

    return request_loop(cfg, stop, deadline, cfg["p5_max"], cfg["p5_conns"], one, sources)


def attack_cpu_one_address(cfg, stop, deadline):
    def one(client, rng):
        user = "guess%x" % rng.getrandbits(48)
        return client.request("GET", "/v2/", {"Authorization": basic(user, "wrong-%x" % rng.getrandbits(32))})

    return request_loop(cfg, stop, deadline, cfg["p6_max"], cfg["p6_threads"], one, [cfg["p6_source"]])


def attack_connections(cfg, stop, deadline):
    """Open idle and slow connections, keep the slow ones trickling a header, watch what
    pier does to them; at the end count how many are still open, then close them all."""
    n_idle, n_slow = cfg["p4_idle"], cfg["p4_slow"]
    mix = {}
    socks = []  # [sock, slow?, state, bytes sent]
    slow_head = b"GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 4096
    for i in range(n_idle + n_slow):
        if stop.is_set() or time.monotonic() >= deadline:
            break
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(3)
        try:
            s.connect((HOST, cfg["port"]))
        except Exception as e:
            k = "connect-" + classify(e)
            mix[k] = mix.get(k, 0) + 1
            s.close()
            continue
        s.setblocking(False)
        socks.append([s, i >= n_idle, "open", 0])
    attempted = n_idle + n_slow
    by_fd = {c[0].fileno(): c for c in socks}
    poller = select.poll()
    for c in socks:
        poller.register(c[0], select.POLLIN | select.POLLERR | select.POLLHUP)
    responses = {}

    def mark(c, state):
        if c[2] == "open":
            c[2] = state
            try:
                poller.unregister(c[0])
            except (KeyError, ValueError):
                pass

    def drain(wait_ms):
        for fd, _ev in poller.poll(wait_ms):
            c = by_fd.get(fd)
            if c is None or c[2] != "open":
                continue
            for _ in range(16):  # bounded reads per wake-up
                try:
                    data = c[0].recv(65536)
                except BlockingIOError:
                    break
                except Exception as e:
                    mark(c, classify(e))
                    break
                if not data:
                    mark(c, "closed")
                    break
                if data.startswith(b"HTTP/"):
                    code = "got-" + data.split(b" ", 2)[1].decode(errors="replace")
                    responses[code] = responses.get(code, 0) + 1

    next_tick = time.monotonic()
    while not stop.is_set() and time.monotonic() < deadline:
        if time.monotonic() >= next_tick:
            next_tick += 1.0
            for c in socks:
                if c[1] and c[2] == "open" and c[3] < len(slow_head):
                    try:
                        c[0].send(slow_head[c[3] : c[3] + 1])
                        c[3] += 1
                    except BlockingIOError:
                        pass
                    except Exception as e:
                        mark(c, "send-" + classify(e))
        drain(100)
    drain(0)
    counts = {}
    for c in socks:
        key = ("slow-" if c[1] else "idle-") + c[2]
        counts[key] = counts.get(key, 0) + 1
    for c in socks:
        try:
            c[0].close()
        except Exception:
            pass
    mix.update(counts)
    mix.update(responses)
    return attempted, mix


ATTACKS = {
    2: attack_long_names,
    3: attack_audit_scopes,
    4: attack_connections,
    5: attack_argon2_memory,
    6: attack_cpu_one_address,
}


def attacker_main(cfg, phase, stop, out, hard_seconds):
    CFG.update(cfg)
    raise_fd_limit()
    deadline = time.monotonic() + hard_seconds
    try:
        sent, mix = ATTACKS[phase](cfg, stop, deadline)
        out.put({"sent": sent, "mix": mix})
    except Exception as e:  # report, never hang the run
        out.put({"sent": 0, "mix": {"attacker-crash:" + type(e).__name__: 1}, "error": repr(e)})


# --- probes (each runs in its own process) ----------------------------------------------


def scheduled(stop, deadline, interval, max_outstanding, job, wait_extra):
    """Start job(k) every `interval` s in its own thread until stop or the deadline, then
    wait for the stragglers (bounded). Returns the number of jobs started."""
    threads = []
    k = 0
    next_t = time.monotonic()
    while not stop.is_set() and time.monotonic() < deadline:
        threads = [t for t in threads if t.is_alive()]
        if len(threads) < max_outstanding:
            t = threading.Thread(target=job, args=(k,), daemon=True)
            t.start()
            threads.append(t)
            k += 1
        next_t += interval
        stop.wait(max(0.0, next_t - time.monotonic()))
    end = time.monotonic() + wait_extra
    for t in threads:
        t.join(max(0.0, end - time.monotonic()))
    return k


def pull_probe_main(cfg, auth_header, stop, out, hard_seconds):
    CFG.update(cfg)
    raise_fd_limit()
    results = []
    lock = threading.Lock()
    headers = {
        "Authorization": auth_header,
        "Accept": "application/vnd.oci.image.manifest.v1+json",
    }

    def job(_k):
        status, _, secs = once(
            "GET",
            "/v2/library/bench/manifests/v1",
            headers,
            source=cfg["probe_source"],
            timeout=cfg["probe_timeout"],
        )
        with lock:
            results.append((secs * 1000, status))

    deadline = time.monotonic() + hard_seconds
    scheduled(stop, deadline, cfg["pull_interval"], 64, job, cfg["probe_timeout"] + 1)
    with lock:
        out.put({"pull": list(results)})


def login_probe_main(cfg, first_user, n_users, password_of, stop, out, hard_seconds):
    CFG.update(cfg)
    results = []
    lock = threading.Lock()
    used = [0]

    def job(k):
        i = first_user + k
        if i > n_users:
            with lock:
                results.append((0.0, "no-fresh-user"))
            return
        with lock:
            used[0] = max(used[0], k + 1)
        name = "benchu%d" % i
        status, _, secs = once(
            "GET",
            "/v2/",
            {"Authorization": basic(name, password_of % i)},
            source=cfg["probe_source"],
            timeout=cfg["probe_timeout"],
        )
        with lock:
            results.append((secs * 1000, status))

    deadline = time.monotonic() + hard_seconds
    scheduled(stop, deadline, cfg["login_interval"], 32, job, cfg["probe_timeout"] + 1)
    with lock:
        out.put({"login": list(results), "used": used[0]})


# --- pier-side measurements -------------------------------------------------------------

CLK_TCK = os.sysconf("SC_CLK_TCK")


def pier_rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def pier_cpu_ticks(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    except (OSError, IndexError, ValueError):
        return None


def pier_threads(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("Threads:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def pier_fds(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return None


def pier_established(port):
    """Established TCP connections whose local end is pier's port (the kernel's count,
    including any not yet accepted)."""
    n = 0
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if parts[3] == "01" and int(parts[1].rsplit(":", 1)[1], 16) == port:
                        n += 1
        except OSError:
            pass
    return n


def audit_bytes(data):
    total = 0
    d = os.path.join(data, "audit")
    try:
        for name in os.listdir(d):
            try:
                total += os.path.getsize(os.path.join(d, name))
            except OSError:
                pass
    except OSError:
        return 0
    return total


class Sampler(threading.Thread):
    def __init__(self, pid, interval):
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.samples = []  # (monotonic, rss kB)
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.gone = False

    def run(self):
        while not self.stopped.wait(self.interval):
            rss = pier_rss_kb(self.pid)
            if rss is None:
                self.gone = True
                return
            with self.lock:
                self.samples.append((time.monotonic(), rss))

    def peak(self, t0, t1):
        with self.lock:
            vals = [r for t, r in self.samples if t0 <= t <= t1]
        return max(vals) if vals else None


# --- setup --------------------------------------------------------------------------------


def sha256(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def setup(n_users, password_of):
    admin = basic("admin", CFG["admin_password"])
    layer = os.urandom(4096)
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [sha256(layer)]}}
    ).encode()
    for blob in (config, layer):
        st, body, _ = once(
            "POST",
            "/v2/library/bench/blobs/uploads/?digest=" + sha256(blob),
            {"Authorization": admin, "Content-Type": "application/octet-stream"},
            body=blob,
        )
        if st != "201":
            sys.exit("blob upload failed: %s %s" % (st, body[:300]))
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": sha256(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": sha256(layer),
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    st, body, _ = once(
        "PUT",
        "/v2/library/bench/manifests/v1",
        {"Authorization": admin, "Content-Type": "application/vnd.oci.image.manifest.v1+json"},
        body=manifest,
    )
    if st != "201":
        sys.exit("manifest push failed: %s %s" % (st, body[:300]))

    errors = []
    lock = threading.Lock()
    todo = list(range(1, n_users + 1))

    def create():
        while True:
            with lock:
                if not todo:
                    return
                i = todo.pop()
            body = json.dumps({"name": "benchu%d" % i, "password": password_of % i}).encode()
            st, resp, _ = once(
                "POST",
                "/api/v1/users",
                {"Authorization": admin, "Content-Type": "application/json"},
                body=body,
                timeout=60,
            )
            if st != "201":
                with lock:
                    errors.append("benchu%d: %s %s" % (i, st, resp[:200]))

    threads = [threading.Thread(target=create) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        sys.exit("user creation failed: " + "; ".join(errors[:3]))


def pull_auth_header():
    """The probes' credentials: a fresh admin token, or admin's Basic credentials after one
    accepted (so cached) use. Fetched from the probe address, untimed."""
    admin = basic("admin", CFG["admin_password"])
    if CFG["pull_auth"] == "basic":
        once("GET", "/v2/", {"Authorization": admin}, source=CFG["probe_source"], timeout=60)
        return admin
    for _ in range(5):
        st, body, _ = once(
            "GET",
            "/service/token?service=pier&scope=repository:library/bench:pull",
            {"Authorization": admin},
            source=CFG["probe_source"],
            timeout=60,
        )
        if st == "200":
            return "Bearer " + json.loads(body)["token"]
        time.sleep(1)
    sys.exit("cannot get a token for the probes: %s" % st)


# --- the run ------------------------------------------------------------------------------


def pct(vals, p):
    if not vals:
        return None
    s = sorted(vals)
    return s[min(len(s) - 1, max(0, int(round(p / 100.0 * len(s) + 0.5)) - 1))]


def fmt(v, spec="%.0f"):
    return "-" if v is None else spec % v


def mix_text(mix):
    return " ".join("%s:%d" % (k, v) for k, v in sorted(mix.items(), key=lambda kv: (-kv[1], kv[0]))) or "-"


def phase_seconds(phase):
    return {1: CFG["baseline_seconds"], 4: CFG["p4_seconds"]}.get(phase, CFG["attack_seconds"])


def run_phase(phase, sampler, next_user, n_users, password_of):
    ctx = mp.get_context("spawn")
    seconds = phase_seconds(phase)
    hard = seconds + 30  # workers stop by themselves even if this process dies
    pid, port = CFG["pid"], CFG["port"]
    auth_header = pull_auth_header()
    stop = ctx.Event()
    out = ctx.Queue()
    procs = [
        ctx.Process(target=pull_probe_main, args=(CFG, auth_header, stop, out, hard), daemon=True),
        ctx.Process(
            target=login_probe_main, args=(CFG, next_user, n_users, password_of, stop, out, hard), daemon=True
        ),
    ]
    if phase in ATTACKS:
        procs.append(ctx.Process(target=attacker_main, args=(CFG, phase, stop, out, hard), daemon=True))
    audit0 = audit_bytes(CFG["data"])
    for p in procs:
        p.start()
    time.sleep(0.3)  # let the workers import and start
    t0 = time.monotonic()
    cpu0 = pier_cpu_ticks(pid)
    end = t0 + seconds
    while time.monotonic() < end and not sampler.gone:
        time.sleep(min(0.2, max(0.0, end - time.monotonic())))
    t1 = time.monotonic()
    cpu1 = pier_cpu_ticks(pid)
    rss_end = pier_rss_kb(pid)
    fds = pier_fds(pid)
    threads = pier_threads(pid)
    estab = pier_established(port)
    stop.set()
    results = {}
    wait_until = time.monotonic() + CFG["probe_timeout"] + CFG["attack_timeout"] + 15
    for _ in procs:
        try:
            results.update(out.get(timeout=max(0.1, wait_until - time.monotonic())))
        except Exception:
            results.setdefault("missing", 0)
            results["missing"] += 1
    for p in procs:
        p.join(max(0.1, wait_until - time.monotonic()))
        if p.is_alive():
            p.terminate()
            p.join(2)
    peak = sampler.peak(t0, t1)
    if rss_end is not None:
        peak = max(peak or 0, rss_end)
    time.sleep(CFG["recover_seconds"])
    rss_after = pier_rss_kb(pid)
    audit1 = audit_bytes(CFG["data"])
    cpu = None
    if cpu0 is not None and cpu1 is not None and t1 > t0:
        cpu = (cpu1 - cpu0) / CLK_TCK / (t1 - t0) * 100
    pulls = results.get("pull", [])
    logins = results.get("login", [])
    pull_ok = [ms for ms, st in pulls if st == "200"]
    login_ok = [ms for ms, st in logins if st == "200"]
    row = {
        "phase": PHASE_NAMES[phase],
        "sent": results.get("sent", 0) if phase in ATTACKS else 0,
        "peak": peak / 1024 if peak else None,
        "end": rss_end / 1024 if rss_end else None,
        "after": rss_after / 1024 if rss_after else None,
        "cpu": cpu,
        "audit": (audit1 - audit0) / 1e6,
        "fds": fds,
        "threads": threads,
        "estab": estab,
        "pull50": pct(pull_ok, 50),
        "pull99": pct(pull_ok, 99),
        "pull_n": (len(pull_ok), len(pulls) - len(pull_ok)),
        "login50": pct(login_ok, 50),
        "loginmax": max(login_ok) if login_ok else None,
        "login_n": (len(login_ok), len(logins) - len(login_ok)),
        "mix": results.get("mix", {}) if phase in ATTACKS else {},
        "missing": results.get("missing", 0),
        "error": results.get("error"),
    }
    bad_pulls = {}
    for _, st in pulls:
        if st != "200":
            bad_pulls[st] = bad_pulls.get(st, 0) + 1
    bad_logins = {}
    for _, st in logins:
        if st != "200":
            bad_logins[st] = bad_logins.get(st, 0) + 1
    row["pull_bad"], row["login_bad"] = bad_pulls, bad_logins
    return row, results.get("used", 0)


def print_row(r, header=False):
    cols = [
        ("phase", 19, lambda r: r["phase"]),
        ("sent", 6, lambda r: str(r["sent"])),
        ("peak RSS MB", 11, lambda r: fmt(r["peak"])),
        ("end RSS MB", 10, lambda r: fmt(r["end"])),
        ("RSS after rest MB", 17, lambda r: fmt(r["after"])),
        ("CPU %", 5, lambda r: fmt(r["cpu"])),
        ("audit +MB", 9, lambda r: fmt(r["audit"], "%.2f")),
        (
            "fds/estab/threads",
            17,
            lambda r: "%s/%s/%s" % (fmt(r["fds"], "%d"), fmt(r["estab"], "%d"), fmt(r["threads"], "%d")),
        ),
        (
            "pull p50/p99 ms (ok/bad)",
            24,
            lambda r: "%s/%s (%d/%d)" % (fmt(r["pull50"], "%.1f"), fmt(r["pull99"], "%.1f"), *r["pull_n"]),
        ),
        (
            "login p50/max ms (ok/bad)",
            25,
            lambda r: "%s/%s (%d/%d)" % (fmt(r["login50"]), fmt(r["loginmax"]), *r["login_n"]),
        ),
        ("attacker saw", 0, lambda r: mix_text(r["mix"])),
    ]
    if header:
        print("| " + " | ".join(name.ljust(w) for name, w, _ in cols) + " |")
        print("|" + "|".join("-" * (max(w, len(name)) + 2) for name, w, _ in cols) + "|")
        return
    print("| " + " | ".join(f(r).ljust(max(w, len(name))) for name, w, f in cols) + " |", flush=True)


def main():
    if not (CFG["port"] and CFG["pid"] and CFG["data"] and CFG["admin_password"]):
        sys.exit("set PIER_PORT, PIER_PID, PIER_DATA and PIER_ADMIN_PASSWORD (bench/attack.sh does)")
    raise_fd_limit()
    started = time.monotonic()
    phases = [p for p in CFG["phases"] if p in PHASE_NAMES]
    probe_seconds = sum(phase_seconds(p) for p in phases)
    n_users = min(1000, int(probe_seconds / CFG["login_interval"]) + len(phases) * 2 + 10)
    password_of = "bench-pw-%x-" % random.getrandbits(48) + "%d"

    print("setup: pushing library/bench:v1, creating %d users ..." % n_users, flush=True)
    t = time.monotonic()
    setup(n_users, password_of)
    print("setup done in %.1f s; pier RSS %.0f MB, %s threads, fd limit: %s" % (
        time.monotonic() - t,
        (pier_rss_kb(CFG["pid"]) or 0) / 1024,
        pier_threads(CFG["pid"]),
        fd_limit_text(CFG["pid"]),
    ), flush=True)
    print(
        "phases of %g s (baseline %g s), %g s rest after each; probes from %s: pull every %g s (%s), "
        "one uncached login every %g s" % (
            CFG["attack_seconds"], CFG["baseline_seconds"], CFG["recover_seconds"], CFG["probe_source"],
            CFG["pull_interval"], CFG["pull_auth"], CFG["login_interval"],
        ),
        flush=True,
    )

    sampler = Sampler(CFG["pid"], CFG["sample_interval"])
    sampler.start()
    rows = []
    next_user = 1
    for phase in phases:
        if sampler.gone:
            print("pier is gone; remaining phases skipped", flush=True)
            break
        if time.monotonic() - started > CFG["max_total_seconds"]:
            print("MAX_TOTAL_SECONDS reached; remaining phases skipped", flush=True)
            break
        print("phase %s ..." % PHASE_NAMES[phase], flush=True)
        row, used = run_phase(phase, sampler, next_user, n_users, password_of)
        next_user += used
        rows.append(row)
        notes = []
        if row["pull_bad"]:
            notes.append("pull failures " + mix_text(row["pull_bad"]))
        if row["login_bad"]:
            notes.append("login failures " + mix_text(row["login_bad"]))
        if row["missing"]:
            notes.append("%d worker(s) did not report" % row["missing"])
        if row["error"]:
            notes.append("attacker error " + row["error"])
        print(
            "  done: sent %s, peak %s MB, after rest %s MB, attacker saw %s%s"
            % (row["sent"], fmt(row["peak"]), fmt(row["after"]), mix_text(row["mix"]),
               ("; " + "; ".join(notes)) if notes else ""),
            flush=True,
        )
    sampler.stopped.set()
    if sampler.gone:
        print("NOTE: pier's process disappeared during the run", flush=True)

    print()
    print("pier under attack (%s)" % os.environ.get("PIER_LABEL", "pier"))
    print()
    print_row(None, header=True)
    for r in rows:
        print_row(r)
    print()
    print(
        "targets: RSS < 150 MB and pull p99 < 50 ms in every phase, audit growth bounded; "
        "uncached login < 150 ms and CPU < 100 % during the single-address flood (phase 6)"
    )
    def worst(key, rows):
        vals = [(r[key], r["phase"]) for r in rows if r[key] is not None]
        return max(vals) if vals else (None, "-")
    single = [r for r in rows if r["phase"].startswith("6")]
    for key, label, limit, among in (
        ("peak", "peak RSS MB", 150, rows),
        ("pull99", "pull p99 ms", 50, rows),
        ("loginmax", "uncached login max ms", 150, single),
        ("cpu", "CPU %", 100, single),
    ):
        v, ph = worst(key, among)
        verdict = "-" if v is None else ("ok" if v < limit else "MISSED")
        print("  worst %-22s %8s  (%s)  target < %d: %s" % (label, fmt(v, "%.1f"), ph, limit, verdict))
    v, ph = worst("audit", rows)
    print("  most audit growth %.2f MB in one phase (%s)" % (v or 0, ph))
    print("total run %.0f s" % (time.monotonic() - started), flush=True)


def fd_limit_text(pid):
    try:
        with open("/proc/%d/limits" % pid) as f:
            for line in f:
                if line.startswith("Max open files"):
                    return "%s soft / %s hard" % tuple(line.split()[3:5])
    except OSError:
        pass
    return "?"


if __name__ == "__main__":
    main()
