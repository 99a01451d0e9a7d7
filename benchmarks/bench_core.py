"""Verification-core benchmark (issue "Foundation").

Prints, measured in this one run on this machine:
- median warm time to verify one attestation with safe-pip (parse + Sigstore + statement +
  identity), next to sigstore's own ``Verifier.verify_dsse`` on the same bundle: the ratio;
- ``safe-pip --help`` start-up time (a fresh interpreter each time), next to ``python -c pass``.

Run: python benchmarks/bench_core.py [--n 200]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from safe_pip.provenance.attestation import verify_provenance  # noqa: E402
from safe_pip.provenance.trust import TrustConfig, load_verifier  # noqa: E402
from support.sigstore_ca import GitHubIdentity, TestSigstore, provenance_json  # noqa: E402


class _Accept:
    def verify(self, cert: object) -> None:
        return None


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def bench_verify(n: int) -> tuple[float, float]:
    ts = TestSigstore()
    with tempfile.TemporaryDirectory() as tmp:
        root = ts.write_trusted_root(Path(tmp) / "trusted_root.json")
        verifier = load_verifier(TrustConfig(mode="custom", path=root))
        ident = GitHubIdentity(repository="acme/bench", workflow="release.yml")
        items = []
        for i in range(n):
            name = f"bench-{i}.0-py3-none-any.whl"
            sha = hashlib.sha256(str(i).encode()).hexdigest()
            att = ts.attest(name, sha, ident)
            items.append((name, sha, provenance_json([att], ident), att.to_bundle()))
        # warm-up
        for name, sha, prov, bundle in items[:10]:
            verify_provenance(name, sha, prov, verifier)
            verifier.verify_dsse(bundle, _Accept())
        ours: list[float] = []
        theirs: list[float] = []
        for name, sha, prov, bundle in items:
            t0 = time.perf_counter()
            res = verify_provenance(name, sha, prov, verifier)
            t1 = time.perf_counter()
            verifier.verify_dsse(bundle, _Accept())
            t2 = time.perf_counter()
            assert res.verified, res.reason
            ours.append(t1 - t0)
            theirs.append(t2 - t1)
    return _median_ms(ours), _median_ms(theirs)


def bench_startup(runs: int) -> tuple[float, float]:
    def timed(cmd: list[str]) -> float:
        samples = []
        for _ in range(runs):
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            samples.append(time.perf_counter() - t0)
        return _median_ms(samples)

    base = timed([sys.executable, "-c", "pass"])
    helped = timed([sys.executable, "-m", "safe_pip", "--help"])
    return helped, base


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=200, help="attestations to verify")
    ap.add_argument("--runs", type=int, default=15, help="start-up runs")
    args = ap.parse_args()
    ours, theirs = bench_verify(args.n)
    print(f"verify one attestation (median of {args.n}, warm):")
    print(f"  safe-pip verify_provenance   {ours:7.2f} ms")
    print(f"  sigstore Verifier.verify_dsse {theirs:6.2f} ms")
    print(f"  ratio                        {ours / theirs:7.2f}x   (target: <= 2x)")
    helped, base = bench_startup(args.runs)
    print(f"start-up (median of {args.runs}):")
    print(f"  safe-pip --help              {helped:7.1f} ms   (target: < 150 ms)")
    print(f"  python -c pass (baseline)    {base:7.1f} ms")
    print(f"  ratio                        {helped / base:7.2f}x")
    print(json.dumps({"verify_ms": ours, "verify_dsse_ms": theirs, "help_ms": helped}))


if __name__ == "__main__":
    main()
