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

Run: python benchmarks/bench_serve.py [--packages 20] [--latency 0.01] [--runs 3] [--uv]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from safe_pip.check import Checker  # noqa: E402
from safe_pip.policy.file import Policy  # noqa: E402
from safe_pip.serve import EventLog, start_server  # noqa: E402
from safe_pip.store.db import HistoryStore  # noqa: E402
from safe_pip.verify.trust import TrustConfig  # noqa: E402
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

            store = HistoryStore.open(tmp / "home" / "history.sqlite3")
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


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--packages", type=int, default=20, help="wheels in the tree (default 20)")
    p.add_argument("--size", type=int, default=20_000, help="payload bytes per wheel")
    p.add_argument("--latency", type=float, default=0.01, help="upstream seconds per request")
    p.add_argument("--runs", type=int, default=3, help="warm runs (median)")
    p.add_argument("--uv", action="store_true", help="also measure uv")
    args = p.parse_args()
    ratios = [bench("pip", pip_cmd, args)]
    if args.uv:
        ratios.append(bench("uv", uv_cmd, args))
    return 0 if all(r <= 1.2 for r in ratios) else 1


if __name__ == "__main__":
    sys.exit(main())
