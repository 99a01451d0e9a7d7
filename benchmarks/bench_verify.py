"""``safe-pip verify`` benchmark (issue 5).

A pylock.toml of N packages (default 300, one signed wheel each, with attestation-identities)
on the local index server with 20 ms of added latency per request. Prints, measured in this
run on this machine:

- cold: ``safe-pip verify`` in a fresh process with an empty provenance cache;
- warm: the same again, best of 3 (index pages and history read again, every file decided
  again; provenance from the cache, and bundles that verified before not verified again);
- warm --no-cache: the same with no cache at all (every bundle fetched and verified again);
- per-file tool: for each file, download it and its provenance (as a distribution's
  packaging script does) and run one ``pypi-attestations verify attestation --offline
  --identity ... FILE`` process, pointed at the test trust root through the XDG/TUF-cache
  route (docs/test-sigstore.md, route 2). Measured on a subset (--tool-sample files) and
  extrapolated to N files when N is larger; the output says so.

Targets: warm < 2 s; per-file tool (cold) / safe-pip cold >= 20x.

The test index server sets TCP_NODELAY (``disable_nagle_algorithm``): without it every
keep-alive request stalled ~40 ms on a delayed ACK, which real indexes do not do.

``--baseline-src DIR`` also runs another safe-pip (DIR is its package's parent, e.g. an older
checkout's ``src``) on the same index in the same run, its warm runs interleaved with these.

Run: python benchmarks/bench_verify.py [--packages 300] [--latency 0.02] [--tool-sample 30]
     [--baseline-src DIR] [--jobs N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support.index_server import IndexServer  # noqa: E402
from support.publish import Publisher  # noqa: E402
from support.sigstore_ca import TestSigstore  # noqa: E402
from verify_helpers import pylock_text  # noqa: E402

_TUF_DIR = "sigstore-python/tuf/https%3A%2F%2Ftuf-repo-cdn.sigstore.dev"


def _safe_pip(
    lock: Path, trust_root: Path, home: Path, *extra: str, src: Path | None = None
) -> tuple[float, int, str]:
    env = {**os.environ, "SAFE_PIP_HOME": str(home), "PIP_CONFIG_FILE": os.devnull}
    if src is not None:  # another safe-pip (--baseline-src), ahead of the installed one
        env["PYTHONPATH"] = os.pathsep.join([str(src), env.get("PYTHONPATH", "")]).rstrip(":")
    cmd = [sys.executable, "-m", "safe_pip", "verify", str(lock), "--trust-root", str(trust_root)]
    cmd += ["--format", "json", *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    elapsed = time.perf_counter() - t0
    summary = ""
    try:
        doc = json.loads(proc.stdout)
        summary = json.dumps(doc["summary"])
    except ValueError:
        summary = proc.stderr.strip()[-300:]
    return elapsed, proc.returncode, summary


def _per_file_tool(
    server: IndexServer, projects: list[str], trust_root: Path, work: Path
) -> tuple[float, int]:
    """Seconds for ``projects`` (one file each), and how many verified."""
    cache = work / "xdg-cache"
    tuf = cache / _TUF_DIR
    tuf.mkdir(parents=True, exist_ok=True)
    (tuf / "trusted_root.json").write_bytes(trust_root.read_bytes())
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    tool = str(Path(sys.executable).with_name("pypi-attestations"))
    ok = 0
    t0 = time.perf_counter()
    for name in projects:
        dist = server.dists(name)[0]
        dest = work / dist.filename
        with urllib.request.urlopen(server.file_url(name, dist.filename)) as resp:
            dest.write_bytes(resp.read())
        with urllib.request.urlopen(server.provenance_url(name, dist.filename)) as resp:
            prov = json.loads(resp.read())
        att = prov["attestation_bundles"][0]["attestations"][0]
        Path(f"{dest}.publish.attestation").write_text(json.dumps(att))
        identity = f"https://github.com/acme/{name}/.github/workflows/release.yml@refs/heads/main"
        proc = subprocess.run(
            [tool, "verify", "attestation", "--offline", "--identity", identity, str(dest)],
            capture_output=True,
            env=env,
            check=False,
        )
        ok += proc.returncode == 0
    return time.perf_counter() - t0, ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packages", type=int, default=300)
    ap.add_argument("--latency", type=float, default=0.02)
    ap.add_argument("--tool-sample", type=int, default=30)
    ap.add_argument(
        "--baseline-src",
        type=Path,
        metavar="DIR",
        help="also run the safe-pip whose package is in DIR (e.g. an older checkout's src/) "
        "on the same index in the same run, and print the warm ratio",
    )
    ap.add_argument("--jobs", type=int, help="pass --jobs N to safe-pip (default: its own)")
    args = ap.parse_args()
    jobs = ("--jobs", str(args.jobs)) if args.jobs else ()

    ts = TestSigstore()
    with tempfile.TemporaryDirectory(prefix="bench-verify-") as tmp_name:
        tmp = Path(tmp_name)
        trust_root = ts.write_trusted_root(tmp / "trusted_root.json")
        names = [f"bench{i:03d}" for i in range(args.packages)]
        with IndexServer(tmp / "index", latency=args.latency) as server:
            pub = Publisher(ts, server, tmp / "build")
            t0 = time.perf_counter()
            for name in names:
                pub.wheel(name, "1.0")
            setup = time.perf_counter() - t0
            ident = {
                n: [{"kind": "GitHub", "repository": f"acme/{n}", "workflow": "release.yml"}]
                for n in names
            }
            lock = tmp / "pylock.toml"
            lock.write_text(pylock_text(server, names, identities=ident))
            n_files = len(names)
            home = tmp / "home"
            base_home = tmp / "home-baseline"
            base = args.baseline_src
            cold, cold_rc, cold_sum = _safe_pip(lock, trust_root, home, *jobs)
            if base is not None:
                b_cold, _, _ = _safe_pip(lock, trust_root, base_home, *jobs, src=base)
            warms: list[float] = []
            b_warms: list[float] = []
            for _ in range(3):  # interleaved: the same machine load for both
                t, warm_rc, warm_sum = _safe_pip(lock, trust_root, home, *jobs)
                warms.append(t)
                if base is not None:
                    b_warms.append(_safe_pip(lock, trust_root, base_home, *jobs, src=base)[0])
            warm = min(warms)
            nocache, nocache_rc, nocache_sum = _safe_pip(
                lock, trust_root, home, "--no-cache", *jobs
            )
            if base is not None:
                b_nocache, _, _ = _safe_pip(
                    lock, trust_root, base_home, "--no-cache", *jobs, src=base
                )
            sample = names[: min(args.tool_sample, len(names))]
            tool_time, tool_ok = _per_file_tool(server, sample, trust_root, tmp / "tool")
        per_file = tool_time / len(sample)
        tool_total = per_file * n_files
        extrapolated = len(sample) < n_files

    print(
        f"safe-pip verify benchmark: {args.packages} packages / {n_files} files, "
        f"{args.latency * 1000:.0f} ms latency per request (setup {setup:.1f}s)"
    )
    print(f"  {'':34} {'seconds':>9} {'per file':>10}")
    print(
        f"  {'safe-pip verify, cold (no cache)':34} {cold:9.2f} {cold / n_files * 1000:8.1f}ms"
        f"   exit {cold_rc} {cold_sum}"
    )
    print(
        f"  {'safe-pip verify, warm (cache)':34} {warm:9.2f} {warm / n_files * 1000:8.1f}ms"
        f"   exit {warm_rc} {warm_sum}"
    )
    print(
        f"  {'safe-pip verify, warm --no-cache':34} {nocache:9.2f} "
        f"{nocache / n_files * 1000:8.1f}ms   exit {nocache_rc} {nocache_sum}"
    )
    if base is not None:
        for what, t in (
            ("cold", b_cold),
            ("warm", min(b_warms)),
            ("warm --no-cache", b_nocache),
        ):
            print(f"  {'baseline ' + what:34} {t:9.2f} {t / n_files * 1000:8.1f}ms")
        print(
            f"  warm: {warm:.2f}s vs baseline {min(b_warms):.2f}s = "
            f"{min(b_warms) / warm:.2f}x faster (min of 3 interleaved runs each; all: "
            f"{', '.join(f'{t:.2f}' for t in warms)} vs {', '.join(f'{t:.2f}' for t in b_warms)})"
        )
    label = "per-file tool (pypi-attestations)"
    note = (
        f"   measured on {len(sample)} files ({tool_ok} verified), extrapolated to {n_files}"
        if extrapolated
        else f"   {tool_ok}/{len(sample)} verified"
    )
    print(f"  {label:34} {tool_total:9.2f} {per_file * 1000:8.1f}ms{note}")
    print(
        f"  speed-up vs per-file tool: cold {tool_total / cold:.1f}x, warm {tool_total / warm:.1f}x"
    )
    ok_warm = warm < 2.0
    ok_ratio = tool_total / cold >= 20
    print(
        f"  targets: warm < 2 s: {'met' if ok_warm else 'MISSED'}; "
        f">= 20x faster than the per-file tool cold: {'met' if ok_ratio else 'MISSED'}; "
        f"issue 15's repeat < 0.5 s: {'met' if warm < 0.5 else 'MISSED'} "
        "(every run reads the index again: docs/verify.md § Performance)"
    )
    return 0 if cold_rc == 0 and warm_rc == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
