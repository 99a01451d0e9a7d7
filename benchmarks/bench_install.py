"""``safe-pip install`` against plain ``pip install`` (issue 4).

In one run, on one local index (IndexServer on 127.0.0.1) serving 30 test-signed wheels (one
top-level project depending on the 29 others), installs the same requirement with:

- plain ``python -m pip install --isolated --target T -i INDEX top``
- ``python -m safe_pip install --trust-root R --provenance-index INDEX -i INDEX --target T top``

each as a fresh subprocess, into a fresh ``--target`` every time:

- cold: a fresh pip cache directory (and, for safe-pip, a fresh history home);
- warm: the same cache directory again (and safe-pip's history from the cold run), median of
  ``--repeat`` runs.

Prints the times and the ratios safe-pip / pip. Target: warm ratio <= 1.3.

Run: python benchmarks/bench_install.py [--repeat 3] [--packages 30] [--latency 0.02]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support.index_server import IndexServer  # noqa: E402
from support.publish import Publisher  # noqa: E402
from support.sigstore_ca import TestSigstore  # noqa: E402


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["SAFE_PIP_HOME"] = str(home)
    env.pop("SAFE_PIP_POLICY", None)
    # pip's modules were byte-compiled when pip was installed; safe-pip's (an editable
    # checkout) are compiled on first import and then cached like any installed tool's.
    # PYTHONDONTWRITEBYTECODE in the caller's environment would make safe-pip alone compile
    # its sources on every run (about 0.1 s of start-up that no installed copy pays).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _timed(cmd: list[str], env: dict[str, str], cwd: Path) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"benchmark command failed ({proc.returncode}): {' '.join(cmd)}")
    return elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="warm runs per tool (median)")
    ap.add_argument("--packages", type=int, default=30, help="number of packages installed")
    ap.add_argument(
        "--latency",
        type=float,
        default=0.0,
        help="seconds added to every index request (0: loopback speed; 0.02 is closer to a "
        "real index over the network)",
    )
    opts = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-install-") as tmp_s:
        tmp = Path(tmp_s)
        sigstore = TestSigstore()
        trust_root = sigstore.write_trusted_root(tmp / "trusted_root.json")
        with IndexServer(tmp / "index", latency=opts.latency) as server:
            pub = Publisher(sigstore, server, tmp / "build")
            deps = [f"bench-dep-{i:02d}" for i in range(opts.packages - 1)]
            for name in deps:
                pub.wheel(name, "1.0")
            pub.wheel("bench-top", "1.0", requires=deps)

            counter = iter(range(10_000))

            def pip_cmd(cache: Path) -> list[str]:
                target = tmp / f"t{next(counter)}"
                return [
                    sys.executable,
                    "-m",
                    "pip",
                    "install",
                    "--isolated",
                    "--disable-pip-version-check",
                    "-q",
                    "--cache-dir",
                    str(cache),
                    "-i",
                    server.index_url,
                    "--target",
                    str(target),
                    "bench-top",
                ]

            def safe_cmd(cache: Path) -> list[str]:
                target = tmp / f"t{next(counter)}"
                return [
                    sys.executable,
                    "-m",
                    "safe_pip",
                    "install",
                    "--trust-root",
                    str(trust_root),
                    "--provenance-index",
                    server.index_url,
                    "-q",
                    "--cache-dir",
                    str(cache),
                    "-i",
                    server.index_url,
                    "--target",
                    str(target),
                    "bench-top",
                ]

            tools = {"pip": pip_cmd, "safe-pip": safe_cmd}
            envs = {tool: _env(tmp / f"home-{tool}") for tool in tools}
            caches = {tool: tmp / f"cache-{tool}" for tool in tools}
            results: dict[str, dict[str, float]] = {}
            for tool, make in tools.items():
                results[tool] = {"cold": _timed(make(caches[tool]), envs[tool], tmp)}
            # Warm runs alternate between the tools so load from elsewhere hits both alike.
            warm: dict[str, list[float]] = {tool: [] for tool in tools}
            for _ in range(opts.repeat):
                for tool, make in tools.items():
                    warm[tool].append(_timed(make(caches[tool]), envs[tool], tmp))
            for tool in tools:
                results[tool]["warm"] = statistics.median(warm[tool])

    n = opts.packages
    print(
        f"install {n} test-signed wheels from a local index (--target, fresh each run), "
        f"{opts.latency * 1000:.0f} ms added per request"
    )
    print(f"{'':10}{'cold':>10}{'warm':>10}   (warm = median of {opts.repeat})")
    for tool in ("pip", "safe-pip"):
        r = results[tool]
        print(f"{tool:10}{r['cold']:>9.2f}s{r['warm']:>9.2f}s")
    cold_ratio = results["safe-pip"]["cold"] / results["pip"]["cold"]
    warm_ratio = results["safe-pip"]["warm"] / results["pip"]["warm"]
    # issue 10's targets: <= 1.3x on a zero-latency loopback index, <= 1.2x with 20 ms
    target = 1.3 if opts.latency == 0 else 1.2
    print(f"{'ratio':10}{cold_ratio:>9.2f}x{warm_ratio:>9.2f}x   (target: warm <= {target:.2f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
