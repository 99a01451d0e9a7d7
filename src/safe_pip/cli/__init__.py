"""The command line (``safe-pip``): argument parsing per command, exit codes; thin. Each
subcommand is ``safe_pip.cli.<name>``. May import every other room (faces, check, options...).

A command module must import nothing heavy at module level (no sigstore, no requests), so that
``safe-pip --help`` starts fast; it defines ``register(subparsers)`` which adds its parser and
sets ``func`` to a callable taking the parsed namespace and returning an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from safe_pip import __version__
from safe_pip.errors import EXIT_CONFIG, EXIT_COULD_NOT_CHECK, SafePipError

# The order subcommands are listed in --help; modules not named here follow, sorted.
_ORDER = ("install", "verify", "serve", "inspect", "allow", "history")

EPILOG = """\
exit codes:
  0  allowed / verified
  1  refused by policy or failed verification
  2  usage or configuration error
  3  could not check (network, index, trust root unavailable)
  4  pip failed after verification passed

Run 'safe-pip COMMAND --help' for a command's options.
"""


def _command_modules() -> list[str]:
    names = [m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")]
    ordered = [n for n in _ORDER if n in names]
    return ordered + sorted(n for n in names if n not in _ORDER)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command; with ``command`` (the first argument, when it names a
    command), of that command alone: the other commands' modules are not even imported (a
    start-up cost of every run)."""
    parser = argparse.ArgumentParser(
        prog="safe-pip",
        description=(
            "Refuse Python packages that are unsigned, signed by a publisher you did not "
            "expect, or whose publisher departs from the package's known-good history "
            "(PEP 740 attestations), before anything is installed."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"safe-pip {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    names = _command_modules()
    for name in [command] if command in names else names:
        module = importlib.import_module(f"safe_pip.cli.{name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``safe-pip`` command. Returns the exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(args_list[0] if args_list else None)
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code) if isinstance(exc.code, int) else EXIT_CONFIG
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return EXIT_CONFIG
    try:
        return int(func(args))
    except SafePipError as exc:
        print(f"safe-pip: error: {_inert(exc)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("safe-pip: interrupted; nothing was installed by this run.", file=sys.stderr)
        return 130
    except Exception as exc:  # fail closed: never a traceback, never "allowed"
        print(
            f"safe-pip: internal error ({type(exc).__name__}: {_clean(exc)}); treating as "
            "'could not check'. Please report this.",
            file=sys.stderr,
        )
        return EXIT_COULD_NOT_CHECK


def _clean(text: object) -> str:
    from safe_pip.text import clean

    return clean(text, limit=2000)


def _inert(exc: SafePipError) -> str:
    """The error's diagnostics with index-controlled text made inert (threat T22): error
    messages quote names, URLs and reasons that came from an index or a lockfile."""
    if exc.fix:
        return f"{_clean(exc.message)}\n  fix: {_clean(exc.fix)}"
    return _clean(exc.message)
