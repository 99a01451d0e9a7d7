"""``safe-pip hook``: make plain ``pip install`` and ``uv pip install`` go through a
``safe-pip serve``, show what is configured where, and undo it byte for byte."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from safe_pip.errors import EXIT_COULD_NOT_CHECK, EXIT_OK, EXIT_REFUSED, ConfigError

DESCRIPTION = """\
Point pip and uv at a safe-pip serve, with no other package source left:

  safe-pip hook install --index-url http://127.0.0.1:8740/simple/ --user
  safe-pip hook status --user
  safe-pip hook uninstall --user

Scopes: --user (default: your pip.conf and uv.toml), --venv PATH (that environment's pip.conf;
uv has no per-environment configuration), --global (the machine's; usually needs root).

install writes index-url and switches off pypi-url, extra-index-url, find-links and no-index in
pip's file for the scope, which overrides every lower level; uv gets the server as its default
index.
It refuses while a source it cannot switch off remains: a higher pip level, a PIP_* / UV_*
variable, another uv level (uv adds up indexes across levels). --force writes anyway.

status lists the files, the sources that remain (pip's own merged view through
`python -m pip config list`) and whether the index answers. Exit 0 when every pip install goes
through an answering index, 1 when the hook is missing or another source remains, 3 when the
index does not answer.

uninstall puts back each file exactly as it was before install (or removes it when there was
none); it refuses when the file changed since, unless --force.

Command-line options and requirements files can still name other indexes
(--extra-index-url, --find-links): no configuration file can forbid that.
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "hook",
        help="point plain pip and uv at a safe-pip serve (install, status, uninstall)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    common = argparse.ArgumentParser(add_help=False)
    scope = common.add_mutually_exclusive_group()
    scope.add_argument(
        "--user", action="store_true", help="your own pip.conf and uv.toml (default)"
    )
    scope.add_argument(
        "--venv", metavar="PATH", help="the pip.conf of the virtual environment at PATH"
    )
    scope.add_argument(
        "--global",
        dest="global_",
        action="store_true",
        help="the machine's pip.conf and uv.toml (usually needs root)",
    )
    hsub = parser.add_subparsers(dest="hook_command", metavar="SUBCOMMAND")

    p = hsub.add_parser(
        "install",
        parents=[common],
        help="write pip's and uv's configuration for the scope",
        description="Write pip's and uv's configuration so that every install goes through "
        "the safe-pip serve at --index-url, with every other source switched off.",
    )
    p.add_argument(
        "--index-url",
        required=True,
        metavar="URL",
        help="the serve's simple index, e.g. http://127.0.0.1:8740/simple/",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="write the hook even though other sources remain (status keeps naming them)",
    )
    p.set_defaults(func=run_install)

    p = hsub.add_parser(
        "status",
        parents=[common],
        help="show what is configured where, what other sources remain, whether the index answers",
    )
    p.add_argument(
        "--python",
        metavar="PATH",
        help="the interpreter whose pip to ask (default: the --venv's, else this one)",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run_status)

    p = hsub.add_parser(
        "uninstall",
        parents=[common],
        help="put back pip's and uv's configuration as it was before install",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="restore even over changes made to the files since install",
    )
    p.set_defaults(func=run_uninstall)

    def usage(_args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    parser.set_defaults(func=usage)


def _scope(args: argparse.Namespace) -> tuple[str, Path | None]:
    if args.venv:
        return "venv", Path(args.venv).absolute()
    if args.global_:
        return "global", None
    return "user", None


def _check_url(url: str) -> str:
    import ipaddress
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"--index-url {url}: not an http(s) URL",
            fix="pass the serve's simple index, e.g. --index-url http://127.0.0.1:8740/simple/",
        )
    if any(c.isspace() for c in url) or "\x00" in url:
        raise ConfigError(f"--index-url {url!r}: contains whitespace")
    if parts.scheme == "http":
        host = parts.hostname
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ConfigError(
                f"--index-url {url}: plain http to another host can be read and changed on the "
                "way (and pip ignores it without --trusted-host)",
                fix="put the serve behind a TLS reverse proxy and pass its https:// URL",
            )
    return url if url.endswith("/") else url + "/"


def run_install(args: argparse.Namespace) -> int:
    from safe_pip import hook
    from safe_pip.text import clean

    scope, venv = _scope(args)
    url = _check_url(args.index_url)
    written, remaining, notes = hook.install(url, scope, venv=venv, force=args.force)  # type: ignore[arg-type]
    for w in written:
        before = "edited (original kept)" if w.target.path.exists() and w.existed else "written"
        print(f"{w.target.tool}: {w.target.path} {before}")
    for n in notes:
        print(f"note: {n}")
    for s in remaining:
        print(f"warning: still a source (forced): {clean(s.describe())}", file=sys.stderr)
    ok, answer = hook._probe(url)
    if not ok:
        print(
            f"warning: {clean(url)} {answer}; pip and uv fail until the serve answers there",
            file=sys.stderr,
        )
    print(f"undo: safe-pip hook uninstall {_scope_flag(scope, venv)}")
    return EXIT_OK


def _scope_flag(scope: str, venv: Path | None) -> str:
    return {"user": "--user", "global": "--global"}.get(scope, f"--venv {venv}")


def run_status(args: argparse.Namespace) -> int:
    from safe_pip import hook
    from safe_pip.output.render import dump_json
    from safe_pip.text import clean

    scope, venv = _scope(args)
    python = Path(args.python) if args.python else (None if venv else Path(sys.executable))
    st = hook.status(scope, venv=venv, python=python)  # type: ignore[arg-type]
    safe = st.hooked and not [s for s in st.remaining if s.tool == "pip"]
    code = EXIT_OK if safe and st.index_ok else (EXIT_REFUSED if not safe else EXIT_COULD_NOT_CHECK)
    if args.json:
        dump_json(
            {
                "scope": st.scope,
                "index_url": st.index_url,
                "index_answers": st.index_ok,
                "index_answer": st.index_answer,
                "files": st.files,
                "remaining_sources": [
                    {"tool": s.tool, "where": s.where, "key": s.key, "value": s.value}
                    for s in st.remaining
                ],
                "pip_effective": st.pip_effective,
                "notes": st.notes,
                "ok": code == EXIT_OK,
            }
        )
        return code
    for f in st.files:
        if f["hooked"]:
            state = "hook -> " + str(f["index_url"])
            if not f["unchanged"]:
                state += " (changed since install)"
        else:
            state = "no hook" + ("" if f["exists"] else " (no file)")
        print(f"{f['tool']:3} {scope:6} {f['path']}: {clean(state)}")
    for n in st.notes:
        print(f"note: {n}")
    if st.pip_effective is not None:
        shown = {
            k: v
            for k, v in st.pip_effective.items()
            if k.rsplit(".", 1)[-1] in hook.PIP_SOURCE_KEYS
        }
        print(
            "pip's effective sources (pip config list): "
            + (", ".join(f"{k}={v!r}" for k, v in sorted(shown.items())) or "none set")
        )
    if st.remaining:
        print("other sources that remain:")
        for s in st.remaining:
            print(f"  {clean(s.describe())}")
    else:
        print("other sources that remain: none")
    if st.index_url:
        print(f"index {clean(st.index_url)}: {clean(st.index_answer or '')}")
    if code == EXIT_OK:
        print("ok: every pip install goes through the safe-pip serve")
    elif not st.hooked:
        print(f"not hooked: safe-pip hook install --index-url URL {_scope_flag(scope, venv)}")
    elif not safe:
        print("NOT SAFE: pip can still take packages from the sources above")
    else:
        print("the index does not answer: installs fail until the serve runs")
    return code


def run_uninstall(args: argparse.Namespace) -> int:
    from safe_pip import hook

    scope, venv = _scope(args)
    done = hook.uninstall(scope, venv=venv, force=args.force)  # type: ignore[arg-type]
    if not done:
        print(f"no hook installed for {_scope_flag(scope, venv)}")
    for t, what in done:
        print(f"{t.tool}: {t.path} {what}")
    return EXIT_OK
