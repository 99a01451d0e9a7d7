"""Adoption without churn (issue 12), measured on a generated 100-dependency lab project.

The lab, on a loopback index (IndexServer) with the test Sigstore instance: 100 projects, 5 of
them top-level (``requirements.in``) depending on the other 95:

- 40 always attested (``att00``-``att39``); 4 of them (``att36``-``att39``) have two legitimate
  publishers whose releases alternate (``release.yml``, ``publish.yml``);
- 10 attested from some release on (``late00``-``late09``: 1.0 unsigned, then attested);
- 50 never attested (``uns00``-``uns49``).

Releases 1.0, 1.1, 1.2 exist at adoption. Every command is a real ``safe-pip`` process (real
pip underneath for install), in one run:

1. adopt: ``allow learn -r requirements.in`` then ``allow review --accept-all --reason ...``;
   counts the commands and any proposal left pending;
2. install the unchanged dependencies: false refusals (target 0);
3. routine upgrades: every project publishes 1.3 (same publisher, the other legitimate
   publisher for the four, attested for the late ones, unsigned for the never-attested), then
   ``install --upgrade``: upgrades refused (target 0 of same-publisher and unsigned-project);
4. attacks, each a ``safe-pip inspect`` of one release (target 100% caught): publisher change,
   re-created repository, attestation downgrade, downgrade on first sight (empty history, no
   policy), tampered attested file, tampered unsigned file (same name, other bytes), an
   unsigned release after an unsigned-project started attesting.

Prints the numbers of this run. Run: python benchmarks/bench_adoption.py
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support.index_server import IndexServer  # noqa: E402
from support.publish import Publisher  # noqa: E402
from support.sigstore_ca import GitHubIdentity, TestSigstore  # noqa: E402

ATT = [f"att{i:02d}" for i in range(40)]
DUAL = ATT[36:]
LATE = [f"late{i:02d}" for i in range(10)]
UNS = [f"uns{i:02d}" for i in range(50)]
TOP = ATT[:5]
REST = [n for n in ATT + LATE + UNS if n not in TOP]


def ident(name: str, workflow: str = "release.yml", repo_id: str | None = None) -> GitHubIdentity:
    number = 10000 + (ATT + LATE + UNS).index(name)
    return GitHubIdentity(
        repository=f"lab/{name}",
        workflow=workflow,
        repository_id=repo_id or str(number),
        repository_owner_id="5000",
    )


def publish(pub: Publisher, name: str, version: str) -> None:
    """The legitimate release ``version`` of ``name``."""
    requires = (
        [n for i, n in enumerate(REST) if i % len(TOP) == TOP.index(name)] if name in TOP else []
    )
    minor = int(version.split(".")[1])
    if name in UNS or (name in LATE and minor == 0):
        pub.wheel(name, version, requires=requires, signed=False)
    elif name in DUAL:
        workflow = "release.yml" if minor % 2 == 0 else "publish.yml"
        pub.wheel(name, version, requires=requires, identity=ident(name, workflow))
    else:
        pub.wheel(name, version, requires=requires, identity=ident(name))


class Lab:
    def __init__(self, root: Path, server: IndexServer, trust_root: Path) -> None:
        self.root = root
        self.server = server
        self.trust_root = trust_root
        self.home = root / "home"
        self.home.mkdir(mode=0o700)
        self.project = root / "project"
        self.project.mkdir()
        self.commands: list[str] = []

    def env(self, home: Path | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.upper().startswith("PIP_")}
        env.update(
            PIP_CONFIG_FILE=os.devnull,
            PIP_DISABLE_PIP_VERSION_CHECK="1",
            SAFE_PIP_HOME=str(home or self.home),
            SAFE_PIP_TRUST_ROOT=str(self.trust_root),
            NO_COLOR="1",
        )
        env.pop("SAFE_PIP_POLICY", None)
        return env

    def run(
        self, *argv: str, home: Path | None = None, cwd: Path | None = None, record: bool = False
    ) -> subprocess.CompletedProcess[str]:
        if record:
            self.commands.append(shlex.join(["safe-pip", *argv]))
        return subprocess.run(
            [sys.executable, "-m", "safe_pip", *argv],
            env=self.env(home),
            cwd=cwd or self.project,
            capture_output=True,
            text=True,
            check=False,
        )

    def install(self, *extra: str) -> dict[str, Any]:
        target = self.root / "target"
        proc = self.run(
            "install", "-i", self.server.index_url, "--target", str(target), "--json",
            "-r", "requirements.in", *extra,
        )  # fmt: skip
        try:
            doc: dict[str, Any] = json.loads(proc.stdout)
        except ValueError:
            raise SystemExit(
                f"install failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
            ) from None
        return doc

    def inspect(
        self, target: str, *, home: Path | None = None, cwd: Path | None = None
    ) -> dict[str, Any]:
        proc = self.run(
            "inspect", target, "-i", self.server.index_url, "--json", home=home, cwd=cwd
        )
        docs = json.loads(proc.stdout) if proc.stdout.strip() else []
        if not docs:
            raise SystemExit(
                f"inspect {target} gave no verdict ({proc.returncode}):\n{proc.stderr}"
            )
        return {"code": proc.returncode, "verdicts": docs}


def _refused(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for f in doc.get("files", []) if f.get("verdict") == "refuse"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.parse_args()
    sig = TestSigstore()
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="safe-pip-adoption-") as tmp:
        root = Path(tmp)
        trust_root = sig.write_trusted_root(root / "trusted_root.json")
        with IndexServer(root / "index") as server:
            pub = Publisher(sig, server, root / "build")
            for version in ("1.0", "1.1", "1.2"):
                for name in ATT + LATE + UNS:
                    publish(pub, name, version)
            lab = Lab(root, server, trust_root)
            (lab.project / "requirements.in").write_text("".join(f"{n}\n" for n in TOP))

            # 1. adopt
            t0 = time.perf_counter()
            learn = lab.run(
                "allow", "learn", "-r", "requirements.in", "-i", server.index_url, "--json",
                record=True,
            )  # fmt: skip
            if learn.returncode != 0:
                raise SystemExit(f"learn failed ({learn.returncode}):\n{learn.stderr[-3000:]}")
            learned = json.loads(learn.stdout)
            review = lab.run(
                "allow", "review", "--accept-all", "--reason",
                "lab adoption: proposals read and accepted", record=True,
            )  # fmt: skip
            if review.returncode != 0:
                raise SystemExit(f"review failed:\n{review.stderr}")
            t_adopt = time.perf_counter() - t0
            pending = lab.run("allow", "review", "--list", "--json")
            left = len(json.loads(pending.stdout)["pending"])
            kinds: dict[str, int] = {}
            for p in learned["proposed"]:
                kinds[p["kind"]] = kinds.get(p["kind"], 0) + 1
            policy_before = (lab.project / "safe-pip.toml").read_text()
            relearn = lab.run(
                "allow", "learn", "-r", "requirements.in", "-i", server.index_url, "--json"
            )  # fmt: skip
            relearned = json.loads(relearn.stdout)
            relearn_unchanged = (lab.project / "safe-pip.toml").read_text() == policy_before

            # 2. unchanged dependencies
            t0 = time.perf_counter()
            first = lab.install()
            t_install = time.perf_counter() - t0
            false_refusals = _refused(first)
            summary_first = first["summary"]

            # 3. routine upgrades
            for name in ATT + LATE + UNS:
                publish(pub, name, "1.3")
            upgraded = lab.install("--upgrade", "--upgrade-strategy", "eager")
            upgrade_refused = _refused(upgraded)
            versions = {f["project"]: f["version"] for f in upgraded["files"]}
            not_upgraded = sorted(n for n in ATT + LATE + UNS if versions.get(n) != "1.3")

            # 4. attacks
            attacks: list[tuple[str, bool, str]] = []

            def attack(label: str, target: str, **kw: Any) -> None:
                out = lab.inspect(target, **kw)
                caught = out["code"] != 0 and all(not v["allowed"] for v in out["verdicts"])
                attacks.append((label, caught, out["verdicts"][0]["code"]))

            pub.wheel(
                "att10",
                "1.4",
                identity=GitHubIdentity(
                    repository="evil/att10", repository_id="666", repository_owner_id="666"
                ),
            )
            attack("publisher change", "att10==1.4")
            pub.wheel("att11", "1.4", identity=ident("att11", repo_id="99999"))
            attack("re-created repository", "att11==1.4")
            pub.wheel("att12", "1.4", signed=False)
            attack("attestation downgrade", "att12==1.4")
            fresh = root / "fresh-home"
            fresh.mkdir(mode=0o700)
            elsewhere = root / "elsewhere"
            elsewhere.mkdir()
            pub.wheel("late04", "1.4", signed=False)
            attack("downgrade on first sight", "late04==1.4", home=fresh, cwd=elsewhere)
            # tampered files: same name, other bytes, on the index (an attested file keeps the
            # provenance of its genuine bytes beside it)
            pub.wheel("att13", "1.3", signed=False, files={"att13/__init__.py": "EVIL = 1\n"})
            attack("tampered attested file", "att13==1.3")
            pub.wheel("uns05", "1.3", signed=False, files={"uns05/__init__.py": "EVIL = 1\n"})
            attack("tampered unsigned file", "uns05==1.3")
            pub.wheel("uns06", "1.4", identity=ident("uns06"))
            assert lab.inspect("uns06==1.4")["code"] == 0  # starts attesting: allowed, recorded
            lab.run("inspect", "uns06==1.4", "-i", server.index_url, "--record")
            pub.wheel("uns06", "1.5", signed=False)
            attack("unsigned after an unsigned project attested", "uns06==1.5")

        elapsed = time.perf_counter() - t_start

    caught = sum(1 for _l, c, _code in attacks if c)
    print("safe-pip adoption lab: 100 dependencies (5 top-level; 40 always attested, 4 of them")
    print("with two legitimate publishers; 10 attested from some release on; 50 never attested)")
    print()
    print(f"adopt: {len(lab.commands)} commands ({t_adopt:.1f}s):")
    for c in lab.commands:
        print(f"  {c}")
    print(
        f"  learned {len(learned['projects'])} projects; proposals: "
        + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
        + f"; left pending after review: {left}"
    )
    print(
        f"  re-learn on the unchanged project: {len(relearned['proposed'])} new proposals, "
        f"policy file {'unchanged' if relearn_unchanged else 'CHANGED'}"
    )
    print(
        f"unchanged dependencies: {len(false_refusals)} false refusals of "
        f"{summary_first['files']} files ({summary_first['verified']} verified, "
        f"{summary_first['unsigned_allowed']} unsigned but allowed; install {t_install:.1f}s)"
    )
    same_pub = [f for f in upgrade_refused if f["project"] in ATT + LATE]
    uns_proj = [f for f in upgrade_refused if f["project"] in UNS]
    print(
        f"routine upgrades to 1.3: {len(upgrade_refused)} refused of {len(upgraded['files'])} "
        f"({len(same_pub)} same-publisher or other-legitimate-publisher, {len(uns_proj)} "
        f"unsigned-project); not upgraded: {len(not_upgraded)}"
    )
    print(f"attacks caught: {caught}/{len(attacks)} ({100 * caught // max(1, len(attacks))}%)")
    for label, was_caught, reason_code in attacks:
        print(f"  {'caught' if was_caught else 'MISSED':7} {label}: {reason_code}")
    print(f"({elapsed:.0f}s in all)")
    ok = (
        len(lab.commands) == 2
        and left == 0
        and not false_refusals
        and not upgrade_refused
        and caught == len(attacks)
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
