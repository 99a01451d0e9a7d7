"""The verifying index behind ``safe-pip serve``: no HTTP server code here, only what to answer.

:class:`VerifyingIndex` reads one upstream project page at a time, verifies every file's PEP 740
provenance against the sha256 the upstream page claims (in parallel; verdicts cached in memory
by ``(filename, sha256)`` for the object's lifetime), and decides each file with the
:class:`~safe_pip.check.Checker`'s policy and history. A file request is answered only with
bytes whose sha256 equals the attested digest, checked before the first byte is sent.

A cached verdict never outlives upstream's listing: every page read drops the project's cached
entries the page no longer lists, and a file request is answered from the cache only while the
project's last page read is younger than ``page_ttl`` seconds and listed the file (otherwise the
page is read again). Every file link of a quarantined project (PEP 792) is a 403. Nor does it
outlive the other facts it depends on: the project's stored history (another run, replica or
``history forget``), the policy file (edited: read again, every verdict decided again; one
that no longer loads is a 503), the ``expires`` date of the entry that allowed it, or the time
a too-new file becomes old enough.

Failures raise :class:`ServeError`, which carries the HTTP status and a one-line reason.
"""

from __future__ import annotations

import contextlib
import hashlib
import html.parser
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal, Protocol
from urllib.parse import unquote, urljoin, urlsplit

from packaging.utils import canonicalize_name

from safe_pip.errors import NetworkError, SafePipError
from safe_pip.models import Action, FileRef, ReasonCode, Verdict, VerifyStatus
from safe_pip.policy.rules import too_new_by_upload_time
from safe_pip.sources.wheel import is_wheel_name
from safe_pip.text import clean

if TYPE_CHECKING:
    from packaging.version import Version

    from safe_pip.check import Checker
    from safe_pip.net import ProjectPage, SimpleIndex
    from safe_pip.policy.age import AgeCheck

Mode = Literal["filter", "block"]
MODES: tuple[Mode, ...] = ("filter", "block")
_IO_THREADS = 32
_AHEAD_THREADS = 8  # page reads ahead at once (each waits on the I/O pool)
#: Page reads ahead per index in all: a verified wheel (any signed first-use project) can name
#: some 200,000 dependencies in its 4 MiB METADATA; the installer reads those pages one at a
#: time and stops at the first that fails, the read-ahead would read (and start verifying)
#: them all at once. Past the cap the installer's own requests read the pages as before.
MAX_READ_AHEAD = 256
DEFAULT_PAGE_TTL = 60.0  # seconds a file link is answered from its project's last page read


class ServeError(Exception):
    """An answer other than 200: the status, a one-line reason and (optionally) a fix."""

    def __init__(
        self, status: int, reason: str, *, fix: str | None = None, verdict: Verdict | None = None
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.fix = fix
        #: What this failure means for the file, for an installer's report, where known: a
        #: refusal its bytes proved (not the attested ones, not a valid wheel), or the
        #: could-not-check decision with its own reason (provenance or history unreadable).
        self.verdict = verdict

    def body(self) -> bytes:
        """The text/plain answer, sanitised like every other output (threat T22): its
        reason and fix carry index-supplied text (file names, yanked reasons, PEP 792
        status reasons), whose control characters and escape sequences are shown inert."""
        text = f"safe-pip serve: {clean(self.reason, limit=2000)}\n"
        if self.fix:
            text += f"fix: {clean(self.fix, limit=1000)}\n"
        return text.encode("utf-8", "replace")


@dataclass(frozen=True)
class Entry:
    """One upstream file and what safe-pip decided about it."""

    ref: FileRef  # as upstream lists it (upstream URL, claimed sha256)
    verdict: Verdict
    provenance: bytes | None = field(default=None, repr=False)
    requires_python: str | None = None
    transient: bool = False  # could not check (network, store): never cached, never served
    pending: bool = False  # lazy index: listed, decided when its file is first requested

    @property
    def sha256(self) -> str:
        return (self.ref.sha256 or "").lower()

    @property
    def allowed(self) -> bool:
        return (
            self.verdict.allowed and not self.transient and not self.pending and bool(self.sha256)
        )

    @property
    def verified(self) -> bool:
        v = self.verdict.verification
        return bool(v and v.verified)


@dataclass(frozen=True)
class ProjectView:
    """One project page after verification: every upstream file with its verdict."""

    name: str
    entries: tuple[Entry, ...]
    versions: tuple[str, ...]
    last_serial: int | None
    status: str | None = None  # PEP 792 project status upstream gave (mirrored in our pages)
    status_reason: str | None = None

    @property
    def quarantined(self) -> bool:
        """PEP 792: an index MUST NOT offer a quarantined project's files (threat T25)."""
        return (self.status or "").strip().lower() == "quarantined"


@dataclass(frozen=True)
class _PageState:
    """What the last read of a project's upstream page said (consulted by file requests)."""

    read_at: float  # time.monotonic() when the read started
    listed: frozenset[tuple[str, str]]  # (filename, sha256) of every file the page listed
    quarantined: bool


#: Per-file events: in ``events`` and the JSON log always, on the human stream only when
#: ``verbose`` (by default each client request is one ``request`` line that sums them up).
DETAIL_EVENTS = frozenset({"allow", "refuse", "error", "served"})


class Observer(Protocol):
    """What a :class:`VerifyingIndex` reports for metrics (see :mod:`safe_pip.serve.metrics`)."""

    def verdict(self, verdict: str, code: str) -> None: ...
    def cache_lookups(self, hits: int, misses: int) -> None: ...
    def upstream(self, kind: str, seconds: float, status: int | None) -> None: ...


class _NoObserver:
    def verdict(self, verdict: str, code: str) -> None:
        pass

    def cache_lookups(self, hits: int, misses: int) -> None:
        pass

    def upstream(self, kind: str, seconds: float, status: int | None) -> None:
        pass


class EventLog:
    """Events (decisions, refusals, served files, upstream failures, client requests): human
    lines on ``stream`` (stderr by default; per-file events only when ``verbose``), and every
    event as a JSON line in ``json_path`` when given."""

    def __init__(
        self,
        stream: IO[str] | None = None,
        json_path: Path | None = None,
        *,
        quiet: bool = False,
        keep: bool = False,
        verbose: bool = False,
    ) -> None:
        self._stream = None if quiet else (stream if stream is not None else sys.stderr)
        self.verbose = verbose
        self._lock = threading.Lock()
        self._json: IO[str] | None = None
        if json_path is not None:
            self._json = Path(json_path).open("a", encoding="utf-8")  # noqa: SIM115 - lives with us
        self.keep = keep  # also collect events in ``events`` (tests, library users)
        self.events: list[dict[str, Any]] = []

    def close(self) -> None:
        with self._lock:
            if self._json is not None:
                self._json.close()
                self._json = None

    def emit(self, event: str, text: str, **fields: Any) -> None:
        record: dict[str, Any] = {
            "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "event": event,
            **fields,
        }
        line = f"safe-pip serve: {event:8} {clean(text, limit=1000)}"
        with self._lock:
            if self.keep:
                self.events.append(record)
            if self._stream is not None and (self.verbose or event not in DETAIL_EVENTS):
                try:
                    self._stream.write(line + "\n")
                    self._stream.flush()
                except (OSError, ValueError):
                    pass
            if self._json is not None:
                from safe_pip.text import clean_json

                self._json.write(json.dumps(clean_json(record), sort_keys=False) + "\n")
                self._json.flush()


class _ExtrasParser(html.parser.HTMLParser):
    """filename -> data-requires-python, from a PEP 503 page (the net client drops it)."""

    def __init__(self, base: str) -> None:
        super().__init__(convert_charrefs=True)
        self.base = base
        self.requires_python: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "a":
            return
        a = dict(attrs)
        href, rp = a.get("href"), a.get("data-requires-python")
        if href and rp:
            name = unquote(urlsplit(urljoin(self.base, href)).path.rsplit("/", 1)[-1])
            self.requires_python[name] = rp


def _requires_python(body: bytes, ctype: str, base: str) -> dict[str, str]:
    """Best effort: the ``requires-python`` of each file on a raw upstream page."""
    out: dict[str, str] = {}
    try:
        if "json" in ctype:
            data = json.loads(body)
            for f in data.get("files", []) if isinstance(data, dict) else []:
                if isinstance(f, dict):
                    name, rp = f.get("filename"), f.get("requires-python")
                    if isinstance(name, str) and isinstance(rp, str) and rp:
                        out[name] = rp
        else:
            parser = _ExtrasParser(base)
            parser.feed(body.decode("utf-8", "replace"))
            out = parser.requires_python
    except (ValueError, RecursionError, AssertionError):
        return {}
    return out


def _file_digest(path: Path | None) -> str | None:
    """The sha256 of the policy file's text at ``path`` (None: no path, or it does not read
    now: the first request then reads it again, and answers 503 while it does not)."""
    from safe_pip.policy.file import read_policy_text

    if path is None:
        return None
    try:
        return hashlib.sha256(read_policy_text(path).encode("utf-8")).hexdigest()
    except SafePipError:
        return None


def too_new_verdict(ref: FileRef, sha: str, check: AgeCheck) -> Verdict:
    """The refusal of a file whose index upload-time already shows it too new (not verified:
    nothing about it is allowed, it is only left out of the page)."""
    from safe_pip.policy.age import fmt_time, format_duration

    assert check.acceptable_from is not None
    assert check.release.time is not None
    return Verdict(
        project=ref.project,
        version=ref.version,
        filename=ref.filename,
        sha256=sha,
        action=Action.REFUSE,
        code=ReasonCode.REFUSED_TOO_NEW,
        reason=f"too new: uploaded {fmt_time(check.release.time)} (index upload-time, "
        f"index-asserted), younger than the {format_duration(check.min_age)} minimum release "
        f"age ({check.rule}); acceptable from {fmt_time(check.acceptable_from)} at the "
        "earliest (left out without being verified)",
        rule=check.rule,
        fix=f"wait until {fmt_time(check.acceptable_from)}; if you need it now, run once with "
        "--min-release-age 0",
        release_time=check.release.time.isoformat(),
        release_time_source=check.release.source,
        min_release_age=format_duration(check.min_age),
        acceptable_from=check.acceptable_from.isoformat(),
    )


def _outlived(verdict: Verdict, now: datetime) -> bool:
    """Whether a kept verdict must be decided again at ``now`` because a time it depends on
    has passed: a ``refused-too-new`` file that has since become old enough (served once it
    is old enough, without restarting the server), or an allow whose policy entry expired
    (``allowed_until``: an unsigned file stops being served the day its ``[[unsigned]]`` or
    ``[[unsigned-project]]`` entry expires). An unreadable time counts as passed."""
    if verdict.code is ReasonCode.REFUSED_TOO_NEW and verdict.acceptable_from:
        when = verdict.acceptable_from
    elif verdict.allowed and verdict.allowed_until:
        when = verdict.allowed_until
    else:
        return False
    try:
        return datetime.fromisoformat(when) <= now
    except (ValueError, TypeError):
        return True


def status_for(exc: SafePipError) -> int:
    """The HTTP status ``safe-pip serve`` answers when upstream fails this way."""
    from safe_pip.net import (
        ConnectionFailed,
        DeadlineExceeded,
        HttpStatusError,
        ProjectNotFound,
    )

    if isinstance(exc, ProjectNotFound):
        return 404
    if isinstance(exc, ConnectionFailed):
        return 503
    if isinstance(exc, DeadlineExceeded):
        return 504
    if isinstance(exc, HttpStatusError) and exc.status in (429, 503):
        return 503
    return 502


class VerifyingIndex:
    """What ``safe-pip serve`` answers, independent of the HTTP server."""

    def __init__(
        self,
        checker: Checker,
        upstream: str,
        *,
        mode: Mode = "filter",
        log: EventLog | None = None,
        jobs: int | None = None,
        refresh_clock: bool = False,
        tmp_root: Path | None = None,
        page_ttl: float = DEFAULT_PAGE_TTL,
        lazy: bool = False,
        record: bool = True,
        file_cache: Path | None = None,
        core_metadata: bool = False,
        read_ahead: bool = False,
        watch_policy: bool = True,
    ) -> None:
        from safe_pip.net import SimpleIndex

        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        if not page_ttl >= 0:  # also rejects NaN
            raise ValueError(f"page_ttl must be >= 0 seconds, not {page_ttl!r}")
        if not upstream.endswith("/"):
            upstream += "/"
        self.checker = checker
        self.upstream_url = upstream
        self.upstream: SimpleIndex = SimpleIndex(checker.http, upstream)
        self.mode: Mode = mode
        self.log = log or EventLog(quiet=True)
        #: told about verdicts, cache look-ups and upstream latency (metrics)
        self.observer: Observer = _NoObserver()
        self.refresh_clock = refresh_clock
        #: A file link is answered from the cache only while its project's last page read is
        #: younger than this (seconds) and listed the file; otherwise the page is read again, so
        #: a file upstream removes, or a project it quarantines (PEP 792), stops being served
        #: within page_ttl. 0: every file request reads the page.
        self.page_ttl = float(page_ttl)
        #: Lazy (``safe-pip install`` resolving through it, block mode): pages list every
        #: upstream file undecided, and a file is verified and decided when it is requested,
        #: so only the files the installer picks are verified (not every file of every page).
        self.lazy = lazy
        #: Record a served file's verdict before sending its bytes (a verdict is served only
        #: once the history write it depends on succeeded). Off for ``safe-pip install``'s
        #: resolving index: what it serves only feeds pip's resolution; install decides and
        #: records (compare-and-set) what it installs.
        self.record = record
        #: Verified files by sha256, kept across runs (``safe-pip install``): a file is served
        #: from here only when its bytes hash to the attested sha256 again, else re-fetched.
        self.file_cache = file_cache
        #: Advertise PEP 658/714 core metadata for every wheel on the pages and answer
        #: ``<wheel>.metadata`` (:meth:`metadata`): the METADATA of the verified bytes for an
        #: allowed wheel, a stand-in naming only project and version for a refused one, so the
        #: installer's resolution completes and every refused file it picked is known
        #: (``safe-pip install``'s resolving index; ADR 0007).
        self.core_metadata = core_metadata
        #: Read ahead: once a verified wheel's METADATA is served, read (and start deciding)
        #: the upstream pages of the dependencies it names, in parallel, while the installer
        #: is still busy with this one; its request for such a page then takes that read
        #: (once, while younger than ``page_ttl``). Installers resolve one page at a time, so
        #: this turns a chain of upstream round trips into one wave (``safe-pip install``).
        self.read_ahead = read_ahead
        self._ahead: dict[str, Future[tuple[float, ProjectView, list[Entry]]]] = {}
        self._ahead_started = 0  # page reads ahead so far (at most MAX_READ_AHEAD)
        self._ahead_pool = ThreadPoolExecutor(
            max_workers=_AHEAD_THREADS, thread_name_prefix="safe-pip-ahead"
        )
        #: The refused wheels answered with a stand-in, by (filename, sha256), in request order.
        self._stand_ins: dict[tuple[str, str], Verdict] = {}
        #: The files the installer asked for (wheel, ``.metadata``) that could not be checked
        #: (answered 5xx), by (filename, sha256), in request order (``core_metadata`` only).
        self._unchecked: dict[tuple[str, str], Verdict] = {}
        #: Lazy, without the index's history window: decide a file with its page's releases
        #: (:meth:`_page_decides`). Off only where no history is judged (``allow learn``).
        self.page_sequence = True
        self._pending: dict[tuple[str, str], Entry] = {}  # lazy: listed, not decided yet
        self._deciding: dict[tuple[str, str], Future[Entry]] = {}  # lazy: decided ahead
        self._pool = ThreadPoolExecutor(
            max_workers=max(1, jobs or checker.jobs), thread_name_prefix="safe-pip-verify"
        )
        # All upstream I/O runs on fixed pools, never on the per-connection handler threads:
        # the Http client keeps one session per thread, so a bounded set of threads means a
        # bounded set of sessions and keep-alive connections to upstream that get reused.
        self._io = ThreadPoolExecutor(max_workers=_IO_THREADS, thread_name_prefix="safe-pip-io")
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str], Entry] = {}  # (filename, sha256) -> verified entry
        self._cached_keys: dict[str, set[tuple[str, str]]] = {}  # project -> its keys in _cache
        self._pages: dict[str, _PageState] = {}  # project -> its last page read
        self._project_locks: dict[str, threading.Lock] = {}
        self._seen: set[str] = set()
        #: project -> (filename, sha256) this server recorded in its current history (under
        #: _lock; dropped with the project's cached verdicts when its history changes)
        self._recorded: dict[str, set[tuple[str, str]]] = {}
        self._record_lock = threading.Lock()
        #: project -> fingerprint of its stored history when its cached verdicts were decided
        self._history_fp: dict[str, str | None] = {}
        #: the policy file the checker's policy was read from (None: not from a file), and the
        #: sha256 of its content then: a changed file is read again (:meth:`_sync_policy`)
        self._policy_path: Path | None = checker.policy.path if watch_policy else None
        self._policy_digest = _file_digest(self._policy_path)
        self._policy_lock = threading.Lock()
        self._policy_gen = 0  # bumped on every reload: a verdict decided before is not cached
        self._own_tmp = tmp_root is None
        self.tmp_root = Path(tmp_root or tempfile.mkdtemp(prefix="safe-pip-serve-"))
        self.closed = False

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._ahead_pool.shutdown(wait=False, cancel_futures=True)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._io.shutdown(wait=False, cancel_futures=True)
        if self._own_tmp:
            shutil.rmtree(self.tmp_root, ignore_errors=True)

    def readiness(self) -> list[str]:
        """What keeps this server from answering now (empty: ready): the upstream index must
        answer HTTP (any status; a 404 for a probe name is fine) and the history store must be
        readable."""
        from safe_pip.net import redact

        problems: list[str] = []
        probe = "safe-pip-readiness-probe"
        upstream = redact(self.upstream_url)  # the body answers anyone: no password in it
        try:
            resp = self._io.submit(
                self.checker.http.get_bytes, self.upstream.project_url(probe), max_bytes=1 << 20
            ).result()
            if resp.status >= 500:
                problems.append(f"upstream {upstream} answers HTTP {resp.status}")
        except SafePipError as exc:
            problems.append(f"upstream {upstream} unreachable: {exc.message}")
        except Exception as exc:  # fail closed: not ready
            problems.append(f"upstream {upstream}: {type(exc).__name__}: {exc}")
        store = self.checker.store
        if store is not None:
            try:
                store.ping()
            except SafePipError as exc:
                problems.append(f"history store unreadable: {exc.message}")
            except Exception as exc:
                problems.append(f"history store: {type(exc).__name__}: {exc}")
        return [clean(p, limit=500) for p in problems]

    # -- policy -----------------------------------------------------------------------------------

    def _sync_policy(self) -> None:
        """Read the policy file again when its content changed since it was read: the new
        policy decides from then on, and every cached verdict (and the checker's cached
        histories, whose window the policy sizes) is dropped, so nothing allowed by an entry
        that was removed or changed stays served. A policy file that no longer loads is a 503
        for every request until it does (never the old policy's verdicts)."""
        from safe_pip.policy.file import parse_policy, read_policy_text

        path = self._policy_path
        if path is None:
            return
        fix = f"fix {path} (`safe-pip allow list --policy {path}` shows what does not load)"
        try:
            text = read_policy_text(path)
        except SafePipError as exc:
            raise ServeError(
                503,
                f"{exc.message}; nothing is served until the policy file can be read",
                fix=exc.fix or f"restore {path}",
            ) from None
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        with self._policy_lock:
            if digest == self._policy_digest:
                return
            old = self.checker.policy
            try:
                new = parse_policy(text, path, pyproject=path.name == "pyproject.toml")
            except SafePipError as exc:
                reason = exc.message
                self.log.emit("policy", f"{path} changed and does not load: {reason} -> HTTP 503")
                raise ServeError(
                    503,
                    f"the policy file {path} changed and does not load: {reason}; nothing is "
                    "served until it does",
                    fix=fix,
                ) from None
            new = replace(
                new, explicit=old.explicit, min_release_age_override=old.min_release_age_override
            )
            with self._lock:
                self.checker.policy = new
                self._policy_digest = digest
                self._policy_gen += 1
                self._cache.clear()
                self._cached_keys.clear()
                self._pending.clear()
                self._deciding.clear()
                self._ahead.clear()
            self.checker.forget_cached_histories()
        self.log.emit(
            "policy",
            f"{path} changed: read again; every cached verdict is decided again under it",
            path=str(path),
        )

    # -- projects ---------------------------------------------------------------------------------

    def seen_projects(self) -> list[str]:
        with self._lock:
            return sorted(self._seen)

    def _project_lock(self, name: str) -> threading.Lock:
        with self._lock:
            lock = self._project_locks.get(name)
            if lock is None:
                lock = self._project_locks[name] = threading.Lock()
            return lock

    def project(self, name: str) -> ProjectView:
        """Fetch ``name``'s upstream page and decide every file on it. Raises ServeError.
        With ``read_ahead``, a read of the page started ahead (:meth:`_read_ahead`) less than
        ``page_ttl`` seconds ago answers instead, once."""
        check_project_name(name)
        self._sync_policy()  # a policy change drops what was read ahead too
        ahead = self._take_read_ahead(name)
        view, transient = ahead if ahead is not None else self._read_project(name)
        if transient:
            self.checker.forget_cached_history(view.name)  # read again on the next request
            first = transient[0]
            raise ServeError(
                503,
                f"could not check {len(transient)} file(s) of {view.name} (e.g. "
                f"{first.ref.filename}: {first.verdict.reason}); refusing to serve a partial page",
                fix="retry later; the upstream index or its provenance is unavailable",
            )
        return view

    def _read_project(self, name: str, *, ahead: bool = False) -> tuple[ProjectView, list[Entry]]:
        """Read and decide ``name``'s upstream page: the view, and those of its entries that
        could not be checked (never cached). Drops the project's cached entries the page no
        longer lists. Raises ServeError when the page itself cannot be had. ``ahead``: a read
        ahead of the installer (:meth:`_read_ahead`): the failures it logs say so."""
        norm = check_project_name(canonicalize_name(name))
        self._sync_policy()
        started = time.monotonic()
        page, requires_python = self._io.submit(self._fetch_page, norm, ahead).result()
        self._check_serial(norm, page.last_serial, ahead=ahead)
        if self.refresh_clock:
            self.checker.now = datetime.now(timezone.utc)
        # One verification per project at a time: concurrent clients asking for the same page
        # wait for the first one's work instead of repeating it (the cache then answers).
        with self._project_lock(norm):
            self._io.submit(self._warm_history, norm, page).result()
            if self.lazy:
                entries = self._undecided(page.files, requires_python)
                self._decide_ahead(entries)
            else:
                entries = self._decide_all(page.files, requires_python)
        view = ProjectView(
            norm,
            tuple(entries),
            page.versions,
            page.last_serial,
            page.status,
            page.status_reason,
        )
        state = _PageState(
            started,
            frozenset((f.filename, (f.sha256 or "").lower()) for f in page.files),
            view.quarantined,
        )
        with self._lock:
            self._seen.add(norm)
            self._remember_page(norm, state)
        return view, [e for e in entries if e.transient]

    def _remember_page(self, norm: str, state: _PageState) -> None:
        """Record ``norm``'s page read (unless a later-started read is recorded already) and drop
        the project's cached entries this page does not list (all of them when it is
        quarantined), so that a request for one reads the page again. Caller holds _lock."""
        known = self._pages.get(norm)
        if known is None or known.read_at <= state.read_at:
            self._pages[norm] = state
        keys = self._cached_keys.get(norm)
        if not keys:
            return
        for key in [k for k in keys if state.quarantined or k not in state.listed]:
            keys.discard(key)
            self._cache.pop(key, None)

    def _fetch_page(self, norm: str, ahead: bool = False) -> tuple[ProjectPage, dict[str, str]]:
        from safe_pip.net import SIMPLE_ACCEPT, HttpStatusError, MalformedResponse, ProjectNotFound
        from safe_pip.net import redact as _redact

        http = self.checker.http
        url = self.upstream.project_url(norm)
        started = time.monotonic()
        try:
            if url.startswith("file:"):
                return self.upstream.project(norm), {}
            resp = http.get_bytes(url, max_bytes=http.limits.max_page_bytes, accept=SIMPLE_ACCEPT)
            what = f"upstream page for {norm} ({_redact(resp.url)})"
            if resp.status == 404:
                raise ProjectNotFound(
                    f"{norm} was not found on the upstream index {_redact(self.upstream_url)}",
                    status=404,
                )
            if resp.status != 200:
                raise HttpStatusError(f"{what}: HTTP {resp.status}", status=resp.status)
            ctype = resp.content_type
            if ctype in ("application/vnd.pypi.simple.v1+json", "application/json"):
                page = self.upstream._parse_json(canonicalize_name(norm), resp, what)
            elif ctype in ("text/html", "application/vnd.pypi.simple.v1+html", ""):
                page = self.upstream._parse_html(canonicalize_name(norm), resp, what)
            else:
                raise MalformedResponse(f"{what}: unexpected content type {ctype!r}")
            self.observer.upstream("page", time.monotonic() - started, None)
            return page, _requires_python(resp.body, ctype, resp.url)
        except SafePipError as exc:
            status = status_for(exc)
            self.observer.upstream("page", time.monotonic() - started, status)
            if status != 404:
                self.log.emit(
                    "upstream",
                    f"{norm}: upstream failed ({exc.message}) -> HTTP {status}",
                    project=norm,
                    status=status,
                    reason=exc.message,
                    seconds=round(time.monotonic() - started, 3),
                    **_ahead_field(ahead),
                )
                reason = f"upstream index unavailable for {norm}: {exc.message}"
                fix = "retry later; safe-pip serve never serves what it could not verify"
            else:
                reason, fix = exc.message, "check the project name"
            raise ServeError(status, reason, fix=fix) from None

    def _warm_history(self, norm: str, page: ProjectPage) -> None:
        """Load the project's known-good history once, before any of its files is decided,
        its index window read from ``page`` (not fetched again): one sequence for the whole
        page (each file is placed in it at its own publication time by decide()). First drop
        every cached verdict of the project when its history in the store changed since they
        were decided (this server recorded a file, another run recorded one, or someone
        forgot the project)."""
        self._sync_history(norm)
        # the history's window is read from this very page (one read per page and run)
        self.checker.offer_page(self.upstream.index_url, page)
        # An error here is met again by decide() for each file, which refuses (could not check).
        with contextlib.suppress(SafePipError):
            self.checker.history_for(norm, index=self.upstream.index_url)

    def _stored_fingerprint(self, norm: str) -> str | None:
        store = self.checker.store
        if store is None:
            return None
        return store.fingerprint(norm)

    def _sync_history(self, norm: str) -> bool:
        """Drop ``norm``'s cached verdicts and history when its stored history changed since
        they were decided. True when they were dropped. A store that cannot be read raises
        ServeError (503): a verdict that depends on it is not served."""
        with self._record_lock:  # never between a record of ours and its fingerprint
            try:
                current = self._stored_fingerprint(norm)
            except SafePipError as exc:
                raise ServeError(
                    503,
                    f"could not read the history of {norm}: {exc.message}",
                    fix=exc.fix or "retry later",
                ) from None
            with self._lock:
                known = self._history_fp.get(norm)
                if known == current:
                    return False
                self._history_fp[norm] = current
                self._recorded.pop(norm, None)  # recorded in a history that is gone
                for key in self._cached_keys.pop(norm, set()):
                    self._cache.pop(key, None)
        self.checker.forget_cached_history(norm)
        return known is not None

    def _check_serial(self, norm: str, serial: int | None, *, ahead: bool = False) -> None:
        """threat T21: a page older than one already seen (by this server, or by any run that
        recorded it in the history store: the checker's SerialGuard) is logged ("stale") and
        refused with 503. A higher serial is recorded in the store at once."""
        from safe_pip.errors import StaleIndexError

        try:
            self.checker.serials.observe(self.upstream_url, norm, serial)
        except StaleIndexError as exc:
            self.log.emit(
                "stale",
                f"{norm}: upstream served serial {exc.serial}, older than {exc.previous} seen "
                "before (stale mirror or replayed page) -> HTTP 503",
                project=norm,
                serial=exc.serial,
                previous_serial=exc.previous,
                **_ahead_field(ahead),
            )
            raise ServeError(503, exc.message, fix=exc.fix) from None
        except SafePipError as exc:  # the store could not be read or written: fail closed
            raise ServeError(
                503,
                f"could not check the serial of {norm}'s upstream page: {exc.message}",
                fix=exc.fix or "retry later",
            ) from None

    def _decide_all(self, refs: Iterable[FileRef], requires_python: dict[str, str]) -> list[Entry]:
        refs = list(refs)
        gen = self._policy_gen
        out: list[Entry | None] = [None] * len(refs)
        todo: list[int] = []
        with self._lock:
            for i, ref in enumerate(refs):
                hit = self._cache.get((ref.filename, (ref.sha256 or "").lower()))
                if (
                    hit is not None
                    and _same_status(hit.ref, ref)  # a status change re-decides
                    and not _outlived(hit.verdict, self.checker.now)
                ):
                    out[i] = replace(
                        hit, ref=ref, requires_python=requires_python.get(ref.filename)
                    )
                else:
                    todo.append(i)
        self.observer.cache_lookups(len(refs) - len(todo), len(todo))
        if todo:
            futures = [
                self._pool.submit(self._verify, refs[i], requires_python.get(refs[i].filename))
                for i in todo
            ]
            for i, fut in zip(todo, futures, strict=True):
                out[i] = fut.result()
        entries = self._one_decision([e for e in out if e is not None])
        fresh = {id(out[i]) for i in todo}
        with self._lock:
            for e in entries:
                if e.transient or gen != self._policy_gen:  # decided under an older policy
                    continue
                key = (e.ref.filename, e.sha256)
                self._cache[key] = e
                self._cached_keys.setdefault(canonicalize_name(e.ref.project), set()).add(key)
        for e, before in zip(entries, [e for e in out if e is not None], strict=True):
            if id(before) in fresh or e.verdict is not before.verdict:
                self._log_decision(e)
        return entries

    def _undecided(self, refs: Iterable[FileRef], requires_python: dict[str, str]) -> list[Entry]:
        """Lazy mode: the cached verdict of each file, else a pending entry (decided when the
        file is requested)."""
        out: list[Entry] = []
        left_out: list[Entry] = []
        with self._lock:
            for ref in refs:
                key = (ref.filename, (ref.sha256 or "").lower())
                rp = requires_python.get(ref.filename)
                hit = self._cache.get(key)
                if (
                    hit is not None
                    and _same_status(hit.ref, ref)
                    and not _outlived(hit.verdict, self.checker.now)
                ):
                    out.append(replace(hit, ref=ref, requires_python=rp))
                    continue
                young = too_new_by_upload_time(ref, self.checker.policy, self.checker.now)
                if young is not None:
                    # left out of the page before anything is verified (see _verify); cached
                    # until it is old enough, logged once
                    entry = Entry(ref, too_new_verdict(ref, key[1], young), None, rp)
                    self._cache[key] = entry
                    self._cached_keys.setdefault(canonicalize_name(ref.project), set()).add(key)
                    left_out.append(entry)
                    out.append(entry)
                    continue
                pending = _refuse(
                    ref, key[1], ReasonCode.COULD_NOT_CHECK, "not decided yet", fix=""
                )
                entry = Entry(ref, pending, None, rp, pending=True)
                self._pending[key] = entry
                out.append(entry)
        for entry in left_out:
            self._log_decision(entry)
        return out

    def _decide_ahead(self, entries: Sequence[Entry]) -> None:
        """Lazy mode: start deciding the pending files of the newest release in the background
        (the installer most likely asks for one of them next); a request waits for it. Only
        files whose provenance the upstream page itself points to: a look-up by name on the
        provenance index (which discloses the name) waits until the file is requested."""
        from packaging.version import InvalidVersion, Version

        from safe_pip.net import provenance_source

        def version(e: Entry) -> Version | None:
            try:
                return Version(e.ref.version)
            except InvalidVersion:
                return None

        if self._page_decides():
            return  # a file is decided with its page's releases (_decide_with_page), not alone
        versions = [v for e in entries if not e.ref.yanked and (v := version(e)) is not None]
        if not versions:
            return
        newest = max(versions)
        with self._lock:
            for e in entries:
                key = (e.ref.filename, e.sha256)
                if (
                    e.pending
                    and key not in self._deciding
                    and version(e) == newest
                    and provenance_source(e.ref) is not None
                ):
                    self._deciding[key] = self._pool.submit(
                        self._decide_one, e.ref, e.requires_python, ahead=True
                    )

    def _decide_pending(self, entry: Entry) -> Entry:
        """The decision for a pending entry: the one started ahead, else (also when that one
        could not check the file: the installer's own request tries once more, and only its
        failure counts) made now. Without the index's history window
        (:meth:`_page_decides`), with the releases of its page (:meth:`_decide_with_page`)."""
        if self._page_decides():
            return self._decide_with_page(entry)
        with self._lock:
            ahead = self._deciding.pop((entry.ref.filename, entry.sha256), None)
        if ahead is not None:
            try:
                decided = ahead.result()
                if not decided.transient:
                    return decided
                # its history may have failed to read: read again (as project() does)
                self.checker.forget_cached_history(canonicalize_name(entry.ref.project))
            except Exception:  # noqa: S110 - decided again below, where errors are handled
                pass
        return self._decide_one(entry.ref, entry.requires_python)

    def _page_decides(self) -> bool:
        """Lazy, and the index's history window is not read (``--no-index-history``, or
        ``index-history-depth = 0``): a file decided alone would be "first use" even when its
        own page changes publisher (acme's 1.0, then an attacker's 2.0, both signed), where
        the eager index refuses it (one served page is one decision, ADR 0012). So a pending
        file is decided with its page's releases."""
        return (
            self.lazy
            and self.page_sequence
            and (
                not self.checker.index_history
                or self.checker.policy.defaults.index_history_depth <= 0
            )
        )

    def _decide_with_page(self, entry: Entry) -> Entry:
        """``entry`` (pending) decided together with one file of every other release its
        project's last page read listed (a wheel preferred; not those left out as too new):
        one decision, the page's releases placed in the project's sequence at their own
        publication times, so a publisher change anywhere on the page refuses every file
        allowed on first use (as the eager index's page). Each decision is cached (a later
        request reuses them). When another release of the page cannot be checked, the
        sequence cannot be judged: ``entry`` is could-not-check (fail closed). A project with
        an attested record in this machine's history is judged by that history alone."""
        norm = canonicalize_name(entry.ref.project)
        try:
            if self.checker.history_for(norm, index=self.upstream.index_url).was_attested():
                return self._decide_one(entry.ref, entry.requires_python)
        except SafePipError:
            pass  # decide() meets it again and says could not check
        key = (entry.ref.filename, entry.sha256)
        with self._project_lock(norm):
            with self._lock:
                state = self._pages.get(norm)
                listed = sorted(state.listed) if state is not None else []
                known = [
                    hit
                    for k in listed
                    if (hit := self._pending.get(k) or self._cache.get(k)) is not None
                    and hit.verdict.code is not ReasonCode.REFUSED_TOO_NEW
                ]
            picks: dict[str, Entry] = {}
            for e in sorted(
                known, key=lambda e: (not e.ref.filename.endswith(".whl"), e.ref.filename)
            ):
                picks.setdefault(e.ref.version, e)
            picks[entry.ref.version] = entry
            group = list(picks.values())
            gen = self._policy_gen
            futures = {
                id(e): self._pool.submit(self._verify, e.ref, e.requires_python)
                for e in group
                if e.pending
            }
            decided = [futures[id(e)].result() if id(e) in futures else e for e in group]
            mine = decided[group.index(entry)]
            other = next((e for e in decided if e.transient and e is not mine), None)
            if mine.transient or other is not None:
                if not mine.transient:
                    assert other is not None
                    mine = replace(
                        mine,
                        verdict=_refuse(
                            mine.ref,
                            mine.sha256,
                            ReasonCode.COULD_NOT_CHECK,
                            f"{other.ref.filename}, another release on {norm}'s page, could not "
                            f"be checked ({other.verdict.reason}), so the page's publisher "
                            "sequence cannot be judged without the index's history",
                            fix="retry later; the upstream index or its provenance is unavailable",
                        ),
                        provenance=None,
                        transient=True,
                    )
                self._log_decision(mine)
                return mine
            settled = self._one_decision(decided)
            with self._lock:
                if gen == self._policy_gen:
                    for e in settled:
                        k = (e.ref.filename, e.sha256)
                        self._pending.pop(k, None)
                        self._cache[k] = e
                        self._cached_keys.setdefault(norm, set()).add(k)
            for e, was in zip(settled, group, strict=True):
                if was.pending or e.verdict is not was.verdict:
                    self._log_decision(e)
            return next(e for e in settled if (e.ref.filename, e.sha256) == key)

    def _decide_one(
        self, ref: FileRef, requires_python: str | None, *, ahead: bool = False
    ) -> Entry:
        gen = self._policy_gen
        entry = self._verify(ref, requires_python)
        if not entry.transient:
            key = (ref.filename, entry.sha256)
            with self._lock:
                if gen != self._policy_gen:  # decided under an older policy: not kept
                    self._pending.pop(key, None)
                    self._log_decision(entry)
                    return entry
                self._pending.pop(key, None)
                self._cache[key] = entry
                self._cached_keys.setdefault(canonicalize_name(ref.project), set()).add(key)
        self._log_decision(entry, ahead=ahead)
        return entry

    def _one_decision(self, entries: list[Entry]) -> list[Entry]:
        """One page is one decision: its files are one window of the project's sequence, so
        files allowed on first use or as known are refused when the page's files together
        change publisher (:meth:`safe_pip.check.Checker.one_decision`)."""
        verdicts = self.checker.one_decision(
            [e.verdict for e in entries],
            [replace(e.ref, index=self.upstream.index_url) for e in entries],
        )
        return [
            e if v is e.verdict else replace(e, verdict=v, provenance=None)
            for e, v in zip(entries, verdicts, strict=True)
        ]

    def _verify(self, ref: FileRef, requires_python: str | None) -> Entry:
        """Verify ``ref``'s provenance against the digest upstream claims, then decide."""
        from safe_pip.check import QUARANTINED, Prepared, quarantined_verdict

        checker = self.checker
        sha = (ref.sha256 or "").lower()
        if (ref.project_status or "").strip().lower() == QUARANTINED:
            # refused whatever its attestation says (threat T25): not even looked at
            return Entry(ref, quarantined_verdict(ref, sha), None, requires_python)
        if not sha:
            verdict = _refuse(
                ref,
                "",
                ReasonCode.COULD_NOT_CHECK,
                "the upstream page gives no sha256 for this file, so its provenance cannot be "
                "checked before download",
                fix="use an upstream index that publishes sha256 hashes (PEP 503 #sha256=)",
            )
            return Entry(ref, verdict, None, requires_python)
        young = too_new_by_upload_time(ref, checker.policy, checker.now)
        if young is not None:
            # left out before anything is verified: the resolver picks an older release
            return Entry(ref, too_new_verdict(ref, sha, young), None, requires_python)
        provenance: bytes | None = None
        error: str | None = None
        try:
            provenance = self._provenance(ref)
        except SafePipError as exc:
            error = exc.message
        except Exception as exc:  # fail closed
            error = f"{type(exc).__name__}: {exc}"
        prep = Prepared(replace(ref, url=None, local_path=None), None, sha, provenance, error)
        try:
            result = checker.verify_prepared(prep)
            verdict = checker.decide(ref, result)
        except SafePipError as exc:
            verdict = _refuse(ref, sha, ReasonCode.COULD_NOT_CHECK, exc.message, fix=exc.fix or "")
            return Entry(ref, verdict, None, requires_python, transient=True)
        except Exception as exc:  # fail closed
            verdict = _refuse(
                ref, sha, ReasonCode.COULD_NOT_CHECK, f"{type(exc).__name__}: {exc}", fix=""
            )
            return Entry(ref, verdict, None, requires_python, transient=True)
        if verdict.allowed and _is_sdist(ref.filename) and not checker.policy.defaults.allow_sdist:
            verdict = replace(
                verdict,
                action=Action.REFUSE,
                code=ReasonCode.REFUSED_SDIST,
                reason=f"{ref.filename} is an sdist and the policy does not allow sdists "
                f"(verified: {verdict.reason})",
                rule=checker.policy.label(),
                fix="set allow-sdist = true in [defaults] of the policy; through safe-pip "
                "serve an sdist's build dependencies are verified too",
            )
        transient = result.status is VerifyStatus.ERROR or (
            verdict.code is ReasonCode.COULD_NOT_CHECK and not verdict.allowed
        )
        keep = provenance if result.verified else None
        return Entry(ref, verdict, keep, requires_python, transient=transient)

    def _provenance(self, ref: FileRef) -> bytes | None:
        from safe_pip.net import provenance_source

        checker = self.checker
        if provenance_source(ref) is None and (
            checker.provenance_index is None
            or checker.provenance_index.rstrip("/") == self.upstream_url.rstrip("/")
        ):
            # The upstream page is the provenance index, and it lists none for this file.
            return None
        return checker.fetch_provenance(ref)

    def _log_decision(self, e: Entry, *, ahead: bool = False) -> None:
        v = e.verdict
        ident = v.identity.describe() if v.identity else "-"
        if e.transient:
            event, word = "error", "COULD-NOT-CHECK"
        elif v.action is Action.REFUSE:
            event, word = "refuse", "REFUSED"
        else:
            event, word = "allow", "allowed" if v.action is Action.ALLOW else "WARN"
        self.observer.verdict("could-not-check" if e.transient else v.action.value, v.code.value)
        text = f"{word} {v.project} {v.version} {v.filename} [{v.code.value}] identity: {ident}"
        if v.action is not Action.ALLOW or e.transient:
            text += f" - {v.reason}"
        self.log.emit(
            event,
            text,
            project=v.project,
            version=v.version,
            filename=v.filename,
            sha256=v.sha256 or e.sha256,
            verdict=v.action.value,
            code=v.code.value,
            reason=v.reason,
            rule=v.rule,
            identity=v.identity.to_json() if v.identity else None,
            fix=v.fix,
            provenance_state=v.provenance_state,
            release_time=v.release_time,
            acceptable_from=v.acceptable_from,
            **_ahead_field(ahead and e.transient),
        )

    # -- files ------------------------------------------------------------------------------------

    def lookup(self, project: str, sha256: str, filename: str) -> Entry:
        """The entry for a served file link.

        From the cache only while the project's last page read is younger than ``page_ttl``
        and listed this file; otherwise the upstream page is read again first (which also
        re-checks the project's PEP 792 status). Raises ServeError: 404 when the page does not
        list the file, 403 (both modes) for any file of a quarantined project, 503 when this
        file could not be checked, and 502/503/504 when the page cannot be read."""
        norm = check_project_name(canonicalize_name(project))
        sha = sha256.lower()
        key = (filename, sha)
        self._sync_policy()  # a policy change drops every cached verdict
        self._sync_history(norm)  # a history change drops the project's cached verdicts
        with self._lock:
            hit = self._cache.get(key)
            if hit is None and self.lazy:
                hit = self._pending.get(key)
            state = self._pages.get(norm)
        fresh = (
            state is not None
            and not state.quarantined
            and key in state.listed
            and time.monotonic() - state.read_at < self.page_ttl
            and (hit is None or not _outlived(hit.verdict, self._clock()))
        )
        if hit is None or not fresh:
            view, _ = self._read_project(norm)
            hit = next(
                (e for e in view.entries if e.ref.filename == filename and e.sha256 == sha), None
            )
            if view.quarantined:
                raise self._quarantined(view, hit, filename, sha)
        if hit is not None and hit.pending:
            hit = self._decide_pending(hit)
        if hit is not None and hit.transient:
            raise ServeError(
                503,
                f"could not check {filename} of {norm}: {hit.verdict.reason}",
                fix="retry later; the upstream index or its provenance is unavailable",
                verdict=hit.verdict,
            )
        if hit is None or canonicalize_name(hit.ref.project) != norm:
            raise ServeError(
                404,
                f"{project}: no file {filename} with sha256 {sha256[:16]}... on the upstream index",
                fix="refresh the project page; the file may have been removed or replaced",
            )
        with self._lock:
            stood = self._stand_ins.get(key)
        if stood is not None and hit.verdict is not stood:
            # A wheel answered with a stand-in stays refused for this index's life, whatever
            # a later decision says: its cached refusal can be dropped (a history change, a
            # page read again) and decided again from its provenance alone, which does not
            # repeat a refusal found in its METADATA (refused-invalid-wheel); the installer
            # resolved it as refused, so it must never be served or installed.
            hit = replace(hit, verdict=stood, provenance=None, pending=False)
        return hit

    def _clock(self) -> datetime:
        """Now, for a cached verdict's times: the wall clock when the server keeps its clock
        current (``refresh_clock``), else the checker's fixed ``now``."""
        return datetime.now(timezone.utc) if self.refresh_clock else self.checker.now

    def _quarantined(
        self, view: ProjectView, hit: Entry | None, filename: str, sha: str
    ) -> ServeError:
        """The 403 for a file link of a project upstream quarantined (PEP 792, threat T25),
        whatever the file's cached verdict was; its reason carries upstream's status reason."""
        from safe_pip.check import quarantined_verdict

        ref = FileRef(
            project=view.name,
            version=hit.ref.version if hit is not None else "",
            filename=filename,
            sha256=sha,
            index=self.upstream_url,
            project_status=view.status,
            project_status_reason=view.status_reason,
        )
        entry = Entry(ref, quarantined_verdict(ref, sha))
        self._log_decision(entry)
        denied = self.refusal(entry)
        assert denied is not None  # a quarantined verdict is always a refusal
        return denied

    def refusal(self, entry: Entry) -> ServeError | None:
        """The 403 for a refused file (None when it may be served)."""
        if entry.allowed:
            return None
        v = entry.verdict
        return ServeError(
            403,
            f"{v.filename} refused [{v.code.value}]: {v.reason}",
            fix=v.fix or None,
            verdict=v,
        )

    def fetch(self, entry: Entry) -> Path:
        """Download an allowed file from upstream into a private temporary file and return it,
        only if its sha256 is the attested one. The caller deletes the file's directory."""
        denied = self.refusal(entry)
        if denied is not None:
            raise denied
        dest, cached = self._download(entry)
        self._check_metadata_or_drop(entry, dest, dest.parent)
        if not cached:
            self._to_cache(entry, dest)
        return dest

    def _download(self, entry: Entry) -> tuple[Path, bool]:
        """An allowed file's bytes in a private temporary directory (from the file cache or
        upstream), only when they hash to the attested sha256; and whether they came from
        the cache. Raises ServeError (502/503/504) before anything is served."""
        from safe_pip.net import HashMismatch

        ref = entry.ref
        if not ref.url:
            raise ServeError(502, f"upstream lists no URL for {ref.filename}")
        try:
            workdir = Path(tempfile.mkdtemp(prefix="dl-", dir=self.tmp_root))
        except OSError as exc:
            raise ServeError(
                503,
                f"could not create a temporary directory: {exc.strerror or exc}",
                fix="check free space and permissions of the server's temporary directory",
            ) from None
        dest = workdir / "file"
        http = self.checker.http
        # Never more than the index declared, and never more than the configured ceiling
        # (an upstream declaring a huge size must not lift the cap; threat T13).
        cap = http.limits.max_file_bytes
        if ref.size is not None and 0 <= ref.size < cap:
            cap = ref.size
        started = time.monotonic()
        if self._from_cache(entry, dest):
            return dest, True
        try:
            self._io.submit(
                http.download, ref.url, dest, max_bytes=cap, expected_sha256=entry.sha256
            ).result()
            self.observer.upstream("file", time.monotonic() - started, None)
        except HashMismatch as exc:
            self.observer.upstream("file", time.monotonic() - started, 502)
            shutil.rmtree(workdir, ignore_errors=True)
            self.log.emit(
                "mismatch",
                f"{ref.filename}: upstream bytes do not match the attested sha256 "
                f"{entry.sha256[:16]}... - not served ({exc.message})",
                project=ref.project,
                filename=ref.filename,
                sha256=entry.sha256,
                reason=exc.message,
            )
            raise ServeError(
                502,
                f"{ref.filename}: the bytes upstream sent do not match the attested sha256 "
                f"{entry.sha256} ({exc.message}); refusing to serve them",
                fix="the file changed upstream after it was signed, or was altered in transit",
                verdict=hash_mismatch_verdict(entry.verdict, exc.message),
            ) from None
        except NetworkError as exc:
            shutil.rmtree(workdir, ignore_errors=True)
            status = status_for(exc)
            status = 502 if status == 404 else status
            self.observer.upstream("file", time.monotonic() - started, status)
            self.log.emit(
                "upstream",
                f"{ref.filename}: download failed ({exc.message}) -> HTTP {status}",
                project=ref.project,
                filename=ref.filename,
                status=status,
                reason=exc.message,
            )
            raise ServeError(
                status,
                f"could not fetch {ref.filename} from upstream: {exc.message}",
                fix="retry later; safe-pip serve never serves what it could not verify",
            ) from None
        except OSError as exc:  # our own disk (temporary file), not upstream
            shutil.rmtree(workdir, ignore_errors=True)
            raise ServeError(
                503,
                f"could not store {ref.filename} in a temporary file: {exc.strerror or exc}",
                fix="check free space and permissions of the server's temporary directory",
            ) from None
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        return dest, False

    def _from_cache(self, entry: Entry, dest: Path) -> bool:
        """Copy a cached file to ``dest`` if its bytes have the attested sha256 (else drop it)."""
        from safe_pip.check import sha256_path

        if self.file_cache is None:
            return False
        cached = self.file_cache / entry.sha256
        try:
            shutil.copyfile(cached, dest)
            if sha256_path(dest) == entry.sha256:
                return True
            cached.unlink(missing_ok=True)  # damaged or altered: fetched again
        except OSError:
            pass
        dest.unlink(missing_ok=True)
        return False

    def _to_cache(self, entry: Entry, path: Path) -> None:
        """Keep a verified file for later runs (best effort; read back only by hash)."""
        if self.file_cache is None:
            return
        try:
            self.file_cache.mkdir(mode=0o700, parents=True, exist_ok=True)
            tmp = self.file_cache / f".{entry.sha256}.{threading.get_ident()}.tmp"
            shutil.copyfile(path, tmp)
            os.replace(tmp, self.file_cache / entry.sha256)
        except OSError:
            pass

    def _check_metadata_or_drop(self, entry: Entry, dest: Path, workdir: Path) -> None:
        """The last checks before bytes are served: a wheel's own metadata
        (:func:`safe_pip.sources.wheel.check_wheel`: a valid wheel of its project and version,
        no direct URL dependency), then the history write the verdict depends on
        (``_commit``)."""
        try:
            if is_wheel_name(entry.ref.filename):
                self._check_metadata(entry, dest)
            self._commit(entry)
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise

    def _commit(self, entry: Entry) -> None:
        """Record ``entry``'s verdict in the history before any byte is served: a verdict is
        served only if the history write it depends on succeeded. A write refused because the
        history changed meanwhile (another publisher recorded by another run) is a 403 and
        drops the project's cached verdicts; a store that cannot be written is a 503."""
        from safe_pip.errors import RefusedError

        if not self.record:
            return
        v = entry.verdict
        key = (v.filename, entry.sha256)
        norm = canonicalize_name(v.project)
        with self._record_lock:
            with self._lock:
                if key in self._recorded.get(norm, ()):
                    return
            try:
                before = self._stored_fingerprint(norm)
                self.checker.record([v], index=self.upstream_url)
                after = self._stored_fingerprint(norm)
            except RefusedError as exc:
                self._drop(norm)
                self.log.emit(
                    "refuse",
                    f"REFUSED {v.project} {v.version} {v.filename} [history changed] - "
                    f"{exc.message}",
                    project=v.project,
                    filename=v.filename,
                    reason=exc.message,
                )
                raise ServeError(
                    403,
                    f"{v.filename} refused [{ReasonCode.REFUSED_PUBLISHER_CHANGE.value}]: "
                    f"{exc.message}",
                    fix=exc.fix or None,
                ) from None
            except SafePipError as exc:
                self.log.emit(
                    "history",
                    f"could not record {v.filename} in the history: {exc.message} -> HTTP 503",
                    filename=v.filename,
                    reason=exc.message,
                )
                raise ServeError(
                    503,
                    f"could not record {v.filename} in the history ({exc.message}); a file is "
                    "served only once the history write it depends on succeeded",
                    fix=exc.fix or "retry later",
                ) from None
            # This server changed the project's history: files not decided yet are decided
            # against it. The cached verdicts stay valid (the page's first-use files name one
            # publisher, the one just recorded), unless someone else changed the history too.
            with self._lock:
                ours = self._history_fp.get(norm, before) == before
                if ours:
                    self._history_fp[norm] = after
                    self._recorded.setdefault(norm, set()).add(key)
        if ours:
            self.checker.forget_cached_history(norm)
        else:
            self._drop(norm)

    def _drop(self, norm: str) -> None:
        with self._lock:
            self._history_fp.pop(norm, None)
            self._recorded.pop(norm, None)
            for key in self._cached_keys.pop(norm, set()):
                self._cache.pop(key, None)
        self.checker.forget_cached_history(norm)

    def _check_metadata(self, entry: Entry, path: Path) -> None:
        """Refuse (403) a wheel that is not a valid wheel of its project and version
        (refused-invalid-wheel: the installer would skip it and quietly take another version)
        or whose metadata requires a direct URL (refused-direct-url-dependency: the installer
        would fetch, and for an sdist or source tree build, that URL with nothing verified):
        the same check as for ``.metadata`` (:meth:`_wheel_metadata`). The verdict replaces
        the cached one, so the refusal is reported and kept."""
        _body, refused = self._wheel_metadata(entry, path)
        if refused is None:
            return
        denied = self.refusal(self._replace_verdict(entry, refused))
        assert denied is not None  # check_wheel's verdicts are refusals
        raise denied

    def metadata(self, entry: Entry) -> CoreMetadata:
        """The answer to ``<wheel>.metadata`` (PEP 658) for a decided wheel entry.

        An allowed wheel is fetched (bytes hashing to the attested sha256, as for a file
        request) and its own METADATA is served, read from those bytes: never upstream's
        ``.metadata``. The wheel is refused instead (and answered like a refused one) when it
        is not a valid wheel of the page's project and version (not exactly one
        ``.dist-info``, a METADATA that is missing, larger than 4 MiB, not UTF-8, or names
        another project or version: pip would skip such a wheel and quietly take another
        version), or when its METADATA requires a direct URL. A refused wheel gets a stand-in
        built by safe-pip alone: ``Metadata-Version``, ``Name`` (the page's project),
        ``Version`` (from the validated filename) and nothing else, so none of the refused
        file's own (attacker-controlled) metadata reaches the installer; the refusal is kept
        (:meth:`stand_ins`) and the file itself stays a 403, so the stand-in is never
        installed."""
        filename = entry.ref.filename
        project = check_project_name(canonicalize_name(entry.ref.project))
        if not self.core_metadata or not filename.endswith(".whl"):
            raise ServeError(404, f"no core metadata for {filename}")
        version = wheel_version(filename, project)
        if entry.allowed:
            entry, body = self._verified_metadata(entry, project, version)
            if body is not None:
                return CoreMetadata(body, entry.verdict, stand_in=False)
        with self._lock:
            self._stand_ins.setdefault((filename, entry.sha256), entry.verdict)
        return CoreMetadata(stand_in_metadata(project, version), entry.verdict, stand_in=True)

    def _read_ahead(self, metadata: bytes) -> None:
        """Start reading the pages of the dependencies ``metadata`` (a verified wheel's
        METADATA) names, unless read or being read already: only requirements by name whose
        markers hold here without extras (anything else the installer may not ask for)."""
        import email.parser

        from packaging.markers import InvalidMarker, UndefinedComparison, UndefinedEnvironmentName
        from packaging.requirements import InvalidRequirement, Requirement

        if not self.read_ahead or self.closed:
            return
        msg = email.parser.BytesParser().parsebytes(metadata, headersonly=True)
        for value in msg.get_all("Requires-Dist") or []:
            try:
                req = Requirement(str(value))
                if req.url or (req.marker is not None and not req.marker.evaluate({"extra": ""})):
                    continue
            except (
                InvalidRequirement,
                InvalidMarker,
                UndefinedComparison,
                UndefinedEnvironmentName,
            ):
                continue
            norm = canonicalize_name(req.name)
            if not _NORMALIZED_NAME.fullmatch(norm):
                continue
            with self._lock:
                if norm in self._ahead or norm in self._pages:
                    continue
                if self._ahead_started >= MAX_READ_AHEAD:
                    return
                self._ahead_started += 1
                try:
                    self._ahead[norm] = self._ahead_pool.submit(self._read_ahead_one, norm)
                except RuntimeError:  # shutting down
                    return

    def _read_ahead_one(self, norm: str) -> tuple[float, ProjectView, list[Entry]]:
        started = time.monotonic()
        view, transient = self._read_project(norm, ahead=True)
        return started, view, transient

    def _take_read_ahead(self, norm: str) -> tuple[ProjectView, list[Entry]] | None:
        """The read ahead of ``norm``'s page (waiting for it if it is under way), if it
        succeeded (every file checked) less than ``page_ttl`` seconds ago; each is taken once."""
        with self._lock:
            future = self._ahead.pop(norm, None)
        if future is None:
            return None
        try:
            started, view, transient = future.result()
        except Exception:  # the request reads the page itself and says why
            return None
        if transient or time.monotonic() - started >= self.page_ttl:
            return None  # (a read ahead that could not check a file is read again, too)
        return view, transient

    def stand_ins(self) -> list[Verdict]:
        """The refusals this index answered with a stand-in ``.metadata``, in request order:
        every refused wheel the installer looked at while resolving."""
        with self._lock:
            return list(self._stand_ins.values())

    def note_unchecked(self, project: str, sha256: str, filename: str, error: ServeError) -> None:
        """Keep what the installer's request for ``filename`` (the file, or its ``.metadata``)
        answered with a 5xx ``error`` means, for the report (:meth:`unchecked`): the refusal
        the failure proves (its bytes are not the attested ones, or not a valid wheel: its
        cached verdict becomes that refusal), else could-not-check naming the index's host
        and the reason. Only for a file this index listed (``core_metadata``)."""
        from safe_pip.net import redact

        if not self.core_metadata or error.status < 500:
            return
        key = (filename, sha256.lower())
        with self._lock:
            hit = self._cache.get(key) or self._pending.get(key)
            if hit is None or key in self._stand_ins or key in self._unchecked:
                return
            try:
                host = urlsplit(self.upstream_url).hostname or redact(self.upstream_url)
            except ValueError:
                host = redact(self.upstream_url)
            refused = (
                error.verdict
                if error.verdict
                and error.verdict.action is Action.REFUSE
                and error.verdict.code is not ReasonCode.COULD_NOT_CHECK
                else None
            )
            if refused is not None:
                verdict = refused
            else:
                why = error.verdict.reason if error.verdict is not None else error.reason
                verdict = _refuse(
                    hit.ref,
                    key[1],
                    ReasonCode.COULD_NOT_CHECK,
                    f"not checked through the index {host} (HTTP {error.status}): {why}",
                    fix=error.fix or "retry later; check the index URL and your network",
                )
            self._unchecked[key] = verdict
        if refused is not None:
            self._replace_verdict(hit, refused)

    def unchecked(self) -> list[Verdict]:
        """The files the installer asked for that could not be checked, or were refused for
        what their bytes showed (:meth:`note_unchecked`), in request order."""
        with self._lock:
            return list(self._unchecked.values())

    def _verified_metadata(
        self, entry: Entry, project: str, version: Version
    ) -> tuple[Entry, bytes | None]:
        """(entry, METADATA) of an allowed wheel, read from its verified bytes (kept in the
        file cache); else (the entry refused, None): its bytes are not the attested ones
        (refused-hash-mismatch), not a valid wheel of ``project`` ``version``, or its
        METADATA requires a direct URL. Other failures raise ServeError (could not check)."""
        try:
            dest, cached = self._download(entry)
        except ServeError as err:
            if err.verdict is None or err.verdict.code is ReasonCode.COULD_NOT_CHECK:
                raise
            return self._replace_verdict(entry, err.verdict), None
        try:
            body, refused = self._wheel_metadata(entry, dest)
            if refused is None:
                self._commit(entry)
                if not cached:
                    self._to_cache(entry, dest)
                self._read_ahead(body)
                return entry, body
        finally:
            shutil.rmtree(dest.parent, ignore_errors=True)
        return self._replace_verdict(entry, refused), None

    def _wheel_metadata(self, entry: Entry, path: Path) -> tuple[bytes, Verdict | None]:
        """The METADATA of the verified wheel at ``path``, or the refusal it earns: one check
        for a file request and a ``.metadata`` request alike (and for ``safe-pip install``'s
        wheelhouse), :func:`safe_pip.sources.wheel.check_wheel`."""
        from safe_pip.sources.wheel import check_wheel

        project = canonicalize_name(entry.ref.project)
        return check_wheel(entry.verdict, path, entry.ref.filename, project)

    def _replace_verdict(self, entry: Entry, verdict: Verdict) -> Entry:
        """``entry`` refused with ``verdict``: replaces the cached entry and is logged."""
        refused = replace(entry, verdict=verdict, provenance=None)
        key = (entry.ref.filename, entry.sha256)
        with self._lock:
            if key in self._cache:
                self._cache[key] = refused
        self._log_decision(refused)
        return refused

    def listed(self, name: str) -> frozenset[tuple[str, str]] | None:
        """(filename, sha256) of every file the last successful read of ``name``'s upstream
        page listed; None when no read of it succeeded (not found, failed, never asked)."""
        with self._lock:
            state = self._pages.get(canonicalize_name(name))
        return None if state is None else state.listed

    def served(self, entry: Entry, client: str) -> None:
        """Log a served file (its history record was written by :meth:`fetch`)."""
        v = entry.verdict
        self.log.emit(
            "served",
            f"{v.filename} sha256={entry.sha256[:16]}... to {client}",
            project=v.project,
            version=v.version,
            filename=v.filename,
            sha256=entry.sha256,
            client=client,
        )


@dataclass(frozen=True)
class CoreMetadata:
    """The answer to ``<wheel>.metadata``: the body and the wheel's verdict."""

    body: bytes
    verdict: Verdict
    stand_in: bool  # True: the wheel is refused and ``body`` is safe-pip's stand-in


def wheel_version(filename: str, project: str) -> Version:
    """The version of a wheel of ``project`` named ``filename`` (404 when the name is not a
    valid wheel filename of that project: no metadata is served for it)."""
    from safe_pip.sources.wheel import wheel_version as parse

    try:
        return parse(filename, project)
    except ValueError as exc:
        raise ServeError(404, str(exc)) from None


def stand_in_metadata(project: str, version: Version) -> bytes:
    """The core metadata served for a refused wheel: built from the page's project name and
    the validated filename's version only (both can hold no newline), nothing of the file."""
    return f"Metadata-Version: 2.1\nName: {project}\nVersion: {version}\n\n".encode()


def hash_mismatch_verdict(verdict: Verdict, why: str) -> Verdict:
    """``verdict`` turned into refused-hash-mismatch: the bytes upstream sent for the file do
    not hash to the sha256 its page lists and its provenance attests (``why``)."""
    return replace(
        verdict,
        action=Action.REFUSE,
        code=ReasonCode.REFUSED_HASH_MISMATCH,
        reason=(
            f"the bytes the index sent for {verdict.filename} do not hash to the sha256 it "
            f"lists and the provenance attests ({clean(why, limit=300)}); they were not "
            f"served (the file as listed: {verdict.reason})"
        ),
        rule="attested sha256",
        fix=(
            "find out why the index serves other bytes than it lists (a mirror or proxy "
            "altering files, or a file replaced upstream) before installing it; a retry "
            "fetches the file again"
        ),
    )


#: PEP 503's normalized form: the only project names an upstream URL is ever built from.
_NORMALIZED_NAME = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


def check_project_name(name: str) -> str:
    """``name`` when it is a PEP 503 normalized project name; else ServeError 404, before
    any upstream URL is built from it (``/simple/%2Fadmin%2Fsecret/`` must never make safe-pip
    fetch ``<upstream host>/admin/secret/``)."""
    if not _NORMALIZED_NAME.fullmatch(name):
        raise ServeError(
            404,
            f"not a valid project name: {clean(name, limit=100)!s}",
            fix="ask for a project by its PEP 503 normalized name (lower case, runs of "
            "'-', '_' and '.' as one '-')",
        )
    return name


def _ahead_field(ahead: bool) -> dict[str, bool]:
    """``{"ahead": True}`` for an event of work done ahead of the installer (a page read
    ahead, a file decided ahead): its failure is not one the installer met."""
    return {"ahead": True} if ahead else {}


def _same_status(a: FileRef, b: FileRef) -> bool:
    return (a.project_status, a.project_status_reason) == (
        b.project_status,
        b.project_status_reason,
    )


def _is_sdist(filename: str) -> bool:
    return not filename.endswith(".whl")


def _refuse(ref: FileRef, sha: str, code: ReasonCode, reason: str, *, fix: str) -> Verdict:
    return Verdict(
        project=ref.project,
        version=ref.version,
        filename=ref.filename,
        sha256=sha,
        action=Action.REFUSE,
        code=code,
        reason=reason,
        rule="serve",
        fix=fix,
    )
