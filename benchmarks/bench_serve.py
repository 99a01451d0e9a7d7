"""``safe-pip serve`` benchmark (issue 6): pip through the verifying index vs pip straight at the
same local upstream index, in one run on this machine.

The upstream is the test IndexServer on 127.0.0.1 with ``--latency`` seconds added to every
request (a stand-in for the network), holding a tree of ``--packages`` test-signed wheels (one
root requiring all the others). Every pip run is a fresh ``pip install --target`` with
``--no-cache-dir``.

- direct: pip -> upstream.
- serve cold: a fresh server, so every file's provenance is fetched and verified.
- serve warm: the same server again (verdicts cached; pages and files still fetched from
  upstream and every file still hashed before it is sent).

Target: serve warm / direct <= 1.2.

With ``--load`` (issue 14) it also measures the HTTP stack under a real load generator, wrk
(``apt-get install wrk``), in the same run:

- old vs new stack, warm caches, ``--connections`` (64) clients for ``--duration`` (30) s: the
  stdlib ``http.server`` handler serve had before (loaded from git, commit 3fb3a35) against
  the WSGI application on waitress, both on one in-process VerifyingIndex. Two targets: ``/``
  (the stack alone) and a project page (end to end: the upstream page is read on every request,
  verdicts come from the cache). Requests/s, p50/p99 latency, errors.
- 200 idle connections (half of them a request line that never ends) next to 8 clients.
- two ``safe-pip serve`` replicas on one PostgreSQL history (a server started like the test
  suite's) against one on SQLite: throughput ratio, 64 clients in total.

Run: python benchmarks/bench_serve.py [--packages 20] [--latency 0.01] [--runs 3] [--uv]
     python benchmarks/bench_serve.py --load [--duration 30] [--connections 64]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from safe_pip.check import Checker  # noqa: E402
from safe_pip.policy.file import Policy  # noqa: E402
from safe_pip.provenance.trust import TrustConfig  # noqa: E402
from safe_pip.serve import EventLog, start_server  # noqa: E402
from safe_pip.store.sqlite import SQLiteHistoryStore  # noqa: E402
from support.index_server import IndexServer  # noqa: E402
from support.publish import Publisher  # noqa: E402
from support.sigstore_ca import TestSigstore  # noqa: E402

UV = Path(sys.executable).with_name("uv")


def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    for key in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        env.pop(key, None)
    env.update(
        {
            "PIP_CONFIG_FILE": os.devnull,
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "NO_PROXY": "127.0.0.1",
            "HOME": str(tmp),
            "UV_NO_CONFIG": "1",
            "UV_NO_CACHE": "1",
            "UV_PYTHON": sys.executable,
        }
    )
    return env


def pip_cmd(index_url: str, target: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--isolated",
        "--no-cache-dir",
        "--index-url",
        index_url,
        "--target",
        str(target),
        "bench-root",
    ]


def uv_cmd(index_url: str, target: Path) -> list[str]:
    return [
        str(UV),
        "pip",
        "install",
        "--index-url",
        index_url,
        "--python",
        sys.executable,
        "--target",
        str(target),
        "bench-root",
    ]


def timed_install(cmd: Callable[[str, Path], list[str]], index_url: str, tmp: Path) -> float:
    target = Path(tempfile.mkdtemp(prefix="target-", dir=tmp))
    t0 = time.perf_counter()
    proc = subprocess.run(
        cmd(index_url, target), capture_output=True, text=True, env=_env(tmp), check=False
    )
    elapsed = time.perf_counter() - t0
    shutil.rmtree(target, ignore_errors=True)
    if proc.returncode != 0:
        raise SystemExit(f"install failed:\n{proc.stdout}\n{proc.stderr}")
    return elapsed


def bench(tool: str, cmd: Callable[[str, Path], list[str]], args: argparse.Namespace) -> float:
    ts = TestSigstore()
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp_s:
        tmp = Path(tmp_s)
        trust_root = ts.write_trusted_root(tmp / "trusted_root.json")
        with IndexServer(tmp / "upstream") as upstream:
            pub = Publisher(ts, upstream, tmp / "build")
            deps = [f"bench-dep{i}" for i in range(args.packages - 1)]
            for dep in deps:
                pub.wheel(dep, "1.0", files={"data.bin": "x" * args.size})
            pub.wheel("bench-root", "1.0", requires=deps)
            upstream.latency = args.latency

            timed_install(cmd, upstream.index_url, tmp)  # warm the OS and the interpreter
            direct = [timed_install(cmd, upstream.index_url, tmp) for _ in range(args.runs)]

            store = SQLiteHistoryStore.open(tmp / "home" / "history.sqlite3")
            checker = Checker(
                trust=TrustConfig.from_options(trust_root=trust_root),
                policy=Policy.default(),
                store=store,
                provenance_index=upstream.index_url,
            )
            try:
                with start_server(checker, upstream.index_url, log=EventLog(quiet=True)) as srv:
                    cold = timed_install(cmd, srv.index_url, tmp)
                    warm = [timed_install(cmd, srv.index_url, tmp) for _ in range(args.runs)]
            finally:
                store.close()

    d, w = statistics.median(direct), statistics.median(warm)
    print(
        f"{tool}: {args.packages} wheels, upstream latency {args.latency * 1000:.0f} ms/request, "
        f"median of {args.runs}"
    )
    print(f"  {tool} direct            {d:6.2f} s")
    print(f"  {tool} via serve (cold)  {cold:6.2f} s   ratio {cold / d:.2f}x")
    print(f"  {tool} via serve (warm)  {w:6.2f} s   ratio {w / d:.2f}x   (target <= 1.20x)")
    return w / d


# -- load (issue 14) ------------------------------------------------------------------------


def _old_stack(index: Any) -> tuple[Any, str]:
    """serve's previous HTTP stack (stdlib http.server, one thread per connection), loaded
    from git so the comparison runs the real thing."""
    import importlib.util

    src = subprocess.run(
        ["git", "-C", str(ROOT), "show", "3fb3a35:src/safe_pip/serve/handler.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path = Path(tempfile.mkdtemp(prefix="old-handler-")) / "old_handler.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("old_handler", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    httpd = module.ServeHTTPServer(("127.0.0.1", 0), index)
    httpd.handle_error = lambda *_: None  # wrk hangs up at the end: no tracebacks
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, httpd.url


def wrk(url: str, connections: int, duration: int, threads: int = 2) -> dict[str, float]:
    import re

    proc = subprocess.run(
        [
            "wrk",
            f"-t{min(threads, connections)}",
            f"-c{connections}",
            f"-d{duration}s",
            "--latency",
            "--timeout",
            "10s",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    out = proc.stdout

    def ms(label: str) -> float:
        m = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            return float("nan")
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
        return float(m.group(1)) * scale

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = 0.0
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if m:
        errors += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errors += sum(int(g) for g in m.groups())
    total = re.search(r"(\d+) requests in", out)
    return {
        "rps": float(rps.group(1)) if rps else 0.0,
        "p50": ms("50"),
        "p99": ms("99"),
        "errors": errors,
        "requests": float(total.group(1)) if total else 0.0,
    }


def _show(label: str, r: dict[str, float]) -> None:
    print(
        f"  {label:38} {r['rps']:8.0f} req/s   p50 {r['p50']:7.1f} ms   p99 {r['p99']:7.1f} ms"
        f"   errors {r['errors']:.0f} of {r['requests']:.0f}"
    )


def _idle(url: str, n: int) -> list[Any]:
    import socket

    host, port = url.removeprefix("http://").split("/", 1)[0].rsplit(":", 1)
    socks = []
    for i in range(n):
        s = socket.create_connection((host, int(port)), timeout=5)
        if i % 2:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # never finished
        socks.append(s)
    return socks


def _replica(upstream: str, trust_root: Path, history: str, tmp: Path) -> tuple[Any, str]:
    tmp.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAFE_PIP_")}
    env.update({"SAFE_PIP_HOME": str(tmp), "SAFE_PIP_HISTORY": history, "NO_PROXY": "127.0.0.1"})
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "safe_pip",
            "serve",
            "--port",
            "0",
            "-q",
            "--upstream",
            upstream,
            "--provenance-index",
            upstream,
            "--trust-root",
            str(trust_root),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        raise SystemExit(f"replica did not start: {line}")
    return proc, line.split("listening on ", 1)[1].strip()


def _wrk_many(urls: list[str], connections: int, duration: int) -> dict[str, float]:
    from concurrent.futures import ThreadPoolExecutor

    each = connections // len(urls)
    with ThreadPoolExecutor(len(urls)) as pool:
        results = list(pool.map(lambda u: wrk(u, each, duration, threads=1), urls))
    return {
        "rps": sum(r["rps"] for r in results),
        "p50": max(r["p50"] for r in results),
        "p99": max(r["p99"] for r in results),
        "errors": sum(r["errors"] for r in results),
        "requests": sum(r["requests"] for r in results),
    }


def load(args: argparse.Namespace) -> None:
    from safe_pip.serve import VerifyingIndex, make_server

    if shutil.which("wrk") is None:
        raise SystemExit("--load needs wrk: apt-get install -y wrk")
    ts = TestSigstore()
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp_s:
        tmp = Path(tmp_s)
        trust_root = ts.write_trusted_root(tmp / "trusted_root.json")
        with IndexServer(tmp / "upstream") as upstream:
            pub = Publisher(ts, upstream, tmp / "build")
            for i in range(args.packages):
                pub.wheel("bench-root", f"1.{i}", files={"data.bin": "x" * 1000})
            page = "/simple/bench-root/"
            store = SQLiteHistoryStore.open(tmp / "home" / "history.sqlite3")
            checker = Checker(
                trust=TrustConfig.from_options(trust_root=trust_root),
                policy=Policy.default(),
                store=store,
                provenance_index=upstream.index_url,
            )
            c, d = args.connections, args.duration
            print(
                f"load: wrk, {c} connections, {d} s per line, warm caches, project page with "
                f"{args.packages} files; this machine: {os.cpu_count()} cores"
            )
            results: dict[str, dict[str, float]] = {}
            for name in ("old", "new"):
                index = VerifyingIndex(checker, upstream.index_url, log=EventLog(quiet=True))
                if name == "old":
                    httpd, url = _old_stack(index)
                    stop = httpd.shutdown
                else:
                    server = make_server(index)
                    threading.Thread(target=server.serve_forever, daemon=True).start()
                    url, stop = server.url, server.shutdown
                try:
                    wrk(url + page, 4, 2)  # warm: decide every file once
                    for target in ("/", page):
                        r = results[f"{name} {target}"] = wrk(url + target, c, d)
                        _show(f"{name} stack GET {target}", r)
                    socks = _idle(url, 200)
                    try:
                        r = results[f"{name} idle"] = wrk(url + page, 8, min(d, 10))
                        _show(f"{name} stack, 200 idle conns, 8 clients", r)
                    finally:
                        for sock in socks:
                            sock.close()
                finally:
                    stop()
                    index.close()
            for target in ("/", page):
                ratio = results[f"new {target}"]["rps"] / max(results[f"old {target}"]["rps"], 1)
                print(f"  new / old throughput, GET {target}: {ratio:.2f}x")
            store.close()

            # two replicas on PostgreSQL vs one on SQLite
            from support.postgres import PostgresServer, find_bindir

            bindir = find_bindir()
            if bindir is None:
                print("  replicas: skipped (no PostgreSQL server binaries)")
                return
            pg = PostgresServer(bindir).start()
            procs: list[Any] = []
            try:
                url = pg.new_database()
                one, one_url = _replica(
                    upstream.index_url, trust_root, str(tmp / "h1.sqlite3"), tmp / "r0"
                )
                procs.append(one)
                wrk(one_url + "bench-root/", 4, 2)
                single = _wrk_many([one_url + "bench-root/"], c, d)
                _show("1 replica, SQLite history", single)
                one.terminate()
                one.wait()
                urls = []
                for i in (1, 2):
                    proc, u = _replica(upstream.index_url, trust_root, url, tmp / f"r{i}")
                    procs.append(proc)
                    wrk(u + "bench-root/", 4, 2)
                    urls.append(u + "bench-root/")
                double = _wrk_many(urls, c, d)
                _show("2 replicas, one PostgreSQL history", double)
                print(
                    f"  2 replicas on PostgreSQL / 1 on SQLite throughput: "
                    f"{double['rps'] / max(single['rps'], 1):.2f}x"
                )
            finally:
                for proc in procs:
                    if proc.poll() is None:
                        proc.terminate()
                        proc.wait()
                pg.stop()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--packages", type=int, default=20, help="wheels in the tree (default 20)")
    p.add_argument("--size", type=int, default=20_000, help="payload bytes per wheel")
    p.add_argument("--latency", type=float, default=0.01, help="upstream seconds per request")
    p.add_argument("--runs", type=int, default=3, help="warm runs (median)")
    p.add_argument("--uv", action="store_true", help="also measure uv")
    p.add_argument("--load", action="store_true", help="the HTTP stack under wrk (issue 14)")
    p.add_argument("--duration", type=int, default=30, help="seconds per wrk run (--load)")
    p.add_argument("--connections", type=int, default=64, help="wrk connections (--load)")
    args = p.parse_args()
    if args.load:
        load(args)
        return 0
    ratios = [bench("pip", pip_cmd, args)]
    if args.uv:
        ratios.append(bench("uv", uv_cmd, args))
    return 0 if all(r <= 1.2 for r in ratios) else 1


if __name__ == "__main__":
    sys.exit(main())
