"""Which tests can differ without ``../shared/data``: a pytest plugin (loaded by conftest.py).

CI runs the suite twice: in the checkout, with ``../shared/data`` beside it, and in a plain
copy with nothing beside it, as on a user's clone. Only the tests whose run depends on
``../shared/data`` can differ between the two, so the plain copy runs just those, marked
``shared``. A test is marked ``shared`` when

- its module names the shared data (``SHARED``, ``SAMPLE``, ``SHARED_LABELS``, ``HAVE_SAMPLE``,
  ``HAVE_SHARED_LABELS``, ``requires_sample``, ``requires_shared_labels`` or
  ``IMAGENET_ML_SHARED``): what it passes to a command it starts comes from there; or
- it was seen reading ``../shared/data`` in the checkout's run: an audit hook records every
  file this process opens, lists, copies or links under it while a test runs (the tests'
  photos come from the sample when it is there, so a test can read it through a helper),
  and ``--shared-log FILE`` appends those tests' ids to ``FILE``.

The package itself never reads ``../shared/data`` (tests/test_shared_data.py checks that
no module under src/ names it), so a command a test starts reads it only through what
the test gives it. ``--shared-from FILE`` (the plain copy's run) marks the tests listed in
``FILE`` as well, and stops with an error when one of them is not collected: the plain copy
then runs at least every test that read ``../shared/data`` in the checkout.
"""

from __future__ import annotations

import inspect
import os
import sys
from pathlib import Path

import pytest

from tests.paths import SHARED

# Names through which a test module reaches the shared data.
SHARED_NAMES = (
    "SHARED",
    "SAMPLE",
    "SHARED_LABELS",
    "HAVE_SAMPLE",
    "HAVE_SHARED_LABELS",
    "requires_sample",
    "requires_shared_labels",
    "IMAGENET_ML_SHARED",
)
# Audit events whose first argument is a path (open, listing, copy, link).
_PATH_EVENTS = {"open", "os.listdir", "os.scandir", "shutil.copyfile", "os.symlink", "os.link"}

_shared_roots: tuple[str, ...] = ()
_current: list[str] = []  # the id of the test running now (empty between tests)
_seen: set[str] = set()  # tests that read the shared data


def _audit(event: str, args: tuple) -> None:
    if event not in _PATH_EVENTS or not _current or not args:
        return
    path = args[0]
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not isinstance(path, str):
        return
    if os.path.abspath(path).startswith(_shared_roots):
        _seen.add(_current[0])


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("shared", "tests that depend on ../shared/data")
    group.addoption(
        "--shared-log",
        metavar="FILE",
        help="append the ids of the tests that read ../shared/data to FILE",
    )
    group.addoption(
        "--shared-from",
        metavar="FILE",
        help="mark the tests listed in FILE (by --shared-log) 'shared'; error if one is missing",
    )


def pytest_configure(config: pytest.Config) -> None:
    global _shared_roots
    roots = {os.path.abspath(SHARED)}
    if SHARED.exists():
        roots.add(str(SHARED.resolve()))
    _shared_roots = tuple(r.rstrip(os.sep) + os.sep for r in roots) + tuple(roots)
    sys.addaudithook(_audit)


def _names_shared(module: object) -> bool:
    try:
        source = inspect.getsource(module)  # type: ignore[arg-type]
    except (OSError, TypeError):
        return False
    return any(name in source for name in SHARED_NAMES)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    listed: set[str] = set()
    source = config.getoption("--shared-from")
    if source and Path(source).is_file():
        listed = {ln.strip() for ln in Path(source).read_text().splitlines() if ln.strip()}
        missing = listed - {item.nodeid for item in items}
        # A listed test may be missing only because -k/-m/paths deselected it: check against
        # the whole collection, before deselection, which is what ``items`` is here.
        if missing:
            raise pytest.UsageError(
                f"{len(missing)} test(s) read ../shared/data in the checkout's run but are not "
                f"collected here: {sorted(missing)[:5]}"
            )
    by_module: dict[str, bool] = {}
    for item in items:
        module = getattr(item, "module", None)
        key = getattr(module, "__name__", "")
        if key not in by_module:
            by_module[key] = module is not None and _names_shared(module)
        if by_module[key] or item.nodeid in listed:
            item.add_marker(pytest.mark.shared)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    _current[:] = [item.nodeid]
    try:
        return (yield)
    finally:
        _current.clear()


def pytest_sessionfinish(session: pytest.Session) -> None:
    log = session.config.getoption("--shared-log")
    if log and _seen:
        with open(log, "a", encoding="utf-8") as f:  # one write: whole lines under xdist
            f.write("".join(f"{nodeid}\n" for nodeid in sorted(_seen)))
