"""``safe-pip inspect``: verify one local file, or every file of ``name==version`` on an index,
and show the verdict of the policy and history."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from safe_pip.cli._common import add_policy_options, add_trust_options, run_options
from safe_pip.errors import EXIT_COULD_NOT_CHECK, EXIT_OK, EXIT_REFUSED, ConfigError

if TYPE_CHECKING:
    from safe_pip.models import Verdict

DESCRIPTION = """\
Verify the PEP 740 provenance of a distribution file and show who published it, and what
safe-pip's policy and known-good history decide about it.

TARGET is a local wheel or sdist (its provenance from --provenance FILE, else looked up on the
index by name, version and filename), or NAME==VERSION, whose every file is fetched from the
index (--index-url, default PyPI) and checked.

examples:
  safe-pip inspect sampleproject-4.0.0-py3-none-any.whl --provenance prov.json --offline
  safe-pip inspect sampleproject==4.0.0 --json
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "inspect",
        help="verify one file or one release and show its publisher and verdict",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("target", metavar="TARGET", help="a local dist file, or NAME==VERSION")
    p.add_argument(
        "--provenance",
        metavar="FILE",
        help="PEP 740 provenance, attestation or Sigstore bundle for a local TARGET",
    )
    p.add_argument(
        "-i",
        "--index-url",
        metavar="URL",
        default=None,
        help="simple index to read files and provenance from (default: https://pypi.org/simple/)",
    )
    p.add_argument("--json", action="store_true", help="print a JSON array, one object per file")
    p.add_argument(
        "--record",
        action="store_true",
        help="record allowed files in the known-good history (inspect is read-only otherwise)",
    )
    add_trust_options(p)
    add_policy_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import tempfile

    from safe_pip.check import PYPI_SIMPLE
    from safe_pip.models import Action, ReasonCode
    from safe_pip.options import make_checker, open_store
    from safe_pip.output.render import dump_json, verdict_lines
    from safe_pip.sources.release import local_ref, release_refs

    index_url = args.index_url or PYPI_SIMPLE
    target_path = Path(args.target)
    is_file = target_path.suffix in (".whl", ".gz", ".zip") or target_path.exists()
    if args.provenance and not is_file:
        raise ConfigError("--provenance goes with a local file TARGET")

    options = run_options(args)
    store = open_store(options, readonly=not args.record)
    try:
        checker = make_checker(options, store=store, provenance_index=index_url)
        verdicts: list[Verdict]
        if is_file:
            ref = local_ref(target_path, args.provenance, index_url)
            if args.provenance:
                try:
                    prov = Path(args.provenance).read_bytes()
                except OSError as exc:
                    raise ConfigError(
                        f"cannot read provenance {args.provenance}: {exc.strerror or exc}"
                    ) from exc
                from safe_pip.check import sha256_path

                try:
                    sha = sha256_path(target_path)
                except OSError as exc:
                    raise ConfigError(f"cannot read {target_path}: {exc.strerror or exc}") from exc
                result = checker.verify_provenance(ref.filename, sha, prov)
                verdicts = [checker.decide(ref, result)]
            else:
                verdicts = checker.check([ref])
        else:
            refs = release_refs(args.target, index_url, checker.http, checker.serials)
            with tempfile.TemporaryDirectory(prefix="safe-pip-inspect-") as tmp:
                verdicts = checker.check(refs, download_dir=Path(tmp))
        if args.record:
            checker.record(verdicts, index=index_url)
    finally:
        store.close()

    if args.json:
        dump_json([_json(v) for v in verdicts])
    else:
        for v in verdicts:
            print("\n".join(verdict_lines(v)))
    if any(
        v.action is Action.REFUSE and v.code is not ReasonCode.COULD_NOT_CHECK for v in verdicts
    ):
        return EXIT_REFUSED
    if any(v.code is ReasonCode.COULD_NOT_CHECK for v in verdicts):
        return EXIT_COULD_NOT_CHECK
    sys.stdout.flush()
    return EXIT_OK


def _json(v: Verdict) -> dict[str, object]:
    doc = v.to_json()
    res = v.verification
    doc["reason"] = v.reason
    doc["verification_reason"] = res.reason if res else None
    doc["verification_code"] = res.reason_code if res else None
    return doc
