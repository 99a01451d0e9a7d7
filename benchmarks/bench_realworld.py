"""Real-world first and repeat runs: a 41-project, 824-file uv.lock (fixtures/locks/bench)
verified against the recorded real pages of its projects (fixtures/pages, this machine's PyPI
mirror, 15,057 files on the largest page), replayed on 127.0.0.1 with ``--latency`` added to
every answer (default 20 ms). The replay sends an ``ETag`` with every page and answers a matching
``If-None-Match`` with 304, as PyPI does.

The mirror serves no provenance, so every file is could-not-check naming the mirror (and the
lock's own project entry is local-source): what is measured is the page work every run pays
(locate each file on its page, look its provenance up on the provenance index, read the index
history). Printed, in this run, for this checkout and for ``--before`` (default: main before
conditional page requests, docs/adr/0014), each with its own empty $SAFE_PIP_HOME:

- ``new``: the first run;
- ``repeat``: the same lock again, nothing changed (every page is asked for again; this checkout
  asks conditionally and reuses the kept parsed page on 304);
- ``changed``: again, after the largest page changed (its serial went up: a new ETag, a 200);
- ``old``: the code of ``--baseline`` (default: main before issue 15), first run. The old code
  refuses the mirror's string ``_last-serial``, so every run gets the pages with the serial
  written as an integer (the work is then the same); ``as recorded`` shows this checkout's first
  run on the pages exactly as recorded.

Targets: new < 10 s (issue 15, ratio old/new printed); unchanged repeat < 0.5 s (ratio
before/after printed). The machine's load average is printed before and after.

Each kind of run is made ``--rounds`` times (default 3; a fresh home for each ``new``), this
checkout's and ``--before``'s interleaved, and the median is shown (the machine is shared).

Run: python benchmarks/bench_realworld.py [--latency 0.02] [--baseline REF] [--before REF]
     [--rounds 3] [--skip-old] [--skip-before]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import replace
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "src"))

from safe_pip.sources import read_lock  # noqa: E402
from support.fixtures import LOCKS, RecordedPage, recorded_pages  # noqa: E402
from support.replay import Replay  # noqa: E402

#: main just before issue 15's first merge (the code path that re-parsed a page per file)
BASELINE = "3fb3a35"
#: main just before conditional page requests (every repeat run parsed every page again)
BEFORE = "4a47415"
LOCK = LOCKS / "bench" / "uv.lock"
_SERIAL = re.compile(rb'"_last-serial":\s*"(\d+)"')


def _int_serial(page: RecordedPage) -> RecordedPage:
    return replace(page, body=_SERIAL.sub(rb'"_last-serial": \1', page.body, count=1))


def _next_serial(page: RecordedPage) -> RecordedPage:
    """The page one change later: its ``_last-serial`` one higher (a new body, a new ETag)."""
    bumped = re.compile(rb'"_last-serial":\s*(\d+)')
    body = bumped.sub(lambda m: b'"_last-serial": %d' % (int(m.group(1)) + 1), page.body, 1)
    assert body != page.body
    return replace(page, body=body)


def _run(src: Path, index: str, home: Path, *extra: str) -> tuple[float, int, str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(src),
        "SAFE_PIP_HOME": str(home),
        "PIP_CONFIG_FILE": os.devnull,
    }
    # as on an installed copy (pip writes .pyc files): each run must not recompile every module
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    cmd = [sys.executable, "-m", "safe_pip", "verify", str(LOCK), "-i", index, *extra]
    cmd += ["--format", "json"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    elapsed = time.perf_counter() - t0
    try:
        doc = json.loads(proc.stdout)
        codes: dict[str, int] = {}
        for lock in doc["locks"]:
            for f in lock["files"]:
                key = f.get("detail") or f["code"]
                codes[key] = codes.get(key, 0) + 1
        summary = json.dumps(codes)
    except (ValueError, KeyError):
        summary = proc.stderr.strip()[-300:]
    return elapsed, proc.returncode, summary


def _baseline_src(ref: str, into: Path) -> Path:
    data = subprocess.run(
        ["git", "-C", str(ROOT), "archive", ref, "src"], capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--latency", type=float, default=0.02)
    ap.add_argument("--baseline", default=BASELINE, help="git ref of the pre-issue-15 code")
    ap.add_argument("--before", default=BEFORE, help="git ref of the code before 304 reuse")
    ap.add_argument("--rounds", type=int, default=3, help="runs of each kind (median shown)")
    ap.add_argument("--skip-old", action="store_true", help="do not run the --baseline code")
    ap.add_argument("--skip-before", action="store_true", help="do not run the --before code")
    args = ap.parse_args()

    lock = read_lock(LOCK)
    projects = sorted({str(p.name) for p in lock.packages if p.unsupported is None})
    by_project = {p.project: p for p in recorded_pages() if p.name == f"mirror-{p.project}-json"}
    missing = [p for p in projects if p not in by_project]
    if missing:
        print(f"no recorded page for {missing}", file=sys.stderr)
        return 2
    pages = {name: by_project[name] for name in projects}
    largest = max(pages, key=lambda n: len(pages[n].body))
    print(
        f"lock: {LOCK.relative_to(ROOT)}: {len(projects)} projects, {lock.file_count} files; "
        f"{sum(len(p.body) for p in pages.values()) / 1e6:.1f} MB of real pages; "
        f"latency {args.latency * 1000:.0f} ms per request; changed page: {largest}; "
        f"median of {args.rounds} runs of each kind, this checkout and --before interleaved"
    )
    print(f"load average before: {_load()}")
    rows: list[tuple[str, float, int, str]] = []
    flags = ("--embedded-root",)
    with tempfile.TemporaryDirectory(prefix="safe-pip-bench-") as tmp:
        work = Path(tmp)
        codes = [("", ROOT / "src")]
        if not args.skip_before:
            codes.append(("before ", _baseline_src(args.before, work / "before")))
        normalized = {k: _int_serial(v) for k, v in pages.items()}
        runs: dict[str, list[tuple[float, int, str]]] = {}
        with Replay(normalized, latency=args.latency).running() as replay:
            for kind in ("new", "repeat", "changed"):
                for n in range(args.rounds):
                    for label, src in codes:
                        home = work / f"home-{label.strip() or 'after'}"
                        if kind == "new":
                            home = work / f"home-{label.strip() or 'after'}-{n}"
                        if kind == "changed":  # changed since this code's last run
                            replay.pages[largest] = _next_serial(replay.pages[largest])
                        result = _run(src, replay.index_url, home, *flags)
                        runs.setdefault(f"{label}{kind}", []).append(result)
        for name, results in runs.items():
            secs = statistics.median(r[0] for r in results)
            rows.append((name, secs, results[-1][1], results[-1][2]))
        if not args.skip_old:
            old_src = _baseline_src(args.baseline, work / "old")
            with Replay(normalized, latency=args.latency).running() as replay:
                # the old code's --offline selected the embedded root (it still used the network)
                old_home = work / "home-old"
                rows.append(("old", *_run(old_src, replay.index_url, old_home, "--offline")))
        with Replay(pages, latency=args.latency).running() as replay:
            home = work / "home-recorded"
            rows.append(("as recorded", *_run(ROOT / "src", replay.index_url, home, *flags)))
    print(f"{'run':<15} {'seconds':>8}  exit  outcomes")
    for name, secs, code, summary in rows:
        print(f"{name:<15} {secs:8.2f}  {code:>4}  {summary}")
    print(f"load average after: {_load()}")
    times = {name: secs for name, secs, _c, _s in rows}
    if "old" in times:
        print(f"ratio old/new (same run): {times['old'] / times['new']:.1f}x")
    for row in ("new", "repeat", "changed"):
        if f"before {row}" in times:
            ratio = times[f"before {row}"] / times[row]
            print(f"ratio before/after, {row} (same run): {ratio:.1f}x")
    print(f"target new < 10 s: {'met' if times['new'] < 10 else 'NOT met'}")
    repeat = times["repeat"]
    print(f"target unchanged repeat < 0.5 s: {'met' if repeat < 0.5 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
