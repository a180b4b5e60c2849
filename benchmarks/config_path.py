"""How often one ``python evaluate.py`` (or ``train.py``) enters the checks and the
builders: the path the config takes from the entry point to the forward pass.

    python benchmarks/config_path.py [evaluate|train] [hydra overrides ...]

Runs the root script in this process under ``sys.setprofile`` and counts the calls into
the checks (``checks.py`` and every ``check_*`` function or method of the package,
wherever it lives) and into the builders (``builders.py`` and every ``build_*``
function), counting a call only where it comes from outside the checks and builders (a
check calling its helpers is one entry). Prints each entry in order, the counts, the
number of switches between checking and building, and how many of the checks ran twice.
The run folder goes to a temp folder. Reference (issue 29, before the checks moved beside
their concepts): evaluate entered checks.py 6 times and builders.py 8 times.
"""

from __future__ import annotations

import itertools
import runpy
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))  # measure this checkout, not an installed copy
PACKAGE = str(REPO / "src" / "imagenet_multilabel")


def _kind(code) -> str | None:
    """'check', 'build' or None for a function of the package."""
    if not code.co_filename.startswith(PACKAGE) or code.co_name == "<module>":
        return None  # an import is not the config entering
    name = code.co_name
    if code.co_filename.endswith("/checks.py") or name.startswith("check_"):
        return "check"
    if code.co_filename.endswith("/builders.py") or name.startswith("build_"):
        return "build"
    return None


def main() -> None:
    task = sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].count("=") else "evaluate"
    overrides = [a for a in sys.argv[1:] if a != task]
    entries: list[tuple[str, str]] = []
    depth = [0]  # calls of checks/builders under way (nested ones are not entries)

    def profile(frame, event, arg):
        if event not in ("call", "return"):
            return
        kind = _kind(frame.f_code)
        if kind is None:
            return
        if event == "call":
            if depth[0] == 0:
                where = Path(frame.f_code.co_filename).relative_to(PACKAGE)
                entries.append((kind, f"{where}:{frame.f_code.co_name}"))
            depth[0] += 1
        else:
            depth[0] -= 1

    out = tempfile.mkdtemp(prefix="config_path_")
    sys.argv = [str(REPO / f"{task}.py"), f"hydra.run.dir={out}", *overrides]
    sys.setprofile(profile)
    threading.setprofile(profile)
    try:
        runpy.run_path(str(REPO / f"{task}.py"), run_name="__main__")
    except SystemExit as e:
        if e.code not in (0, None):
            raise
    finally:
        sys.setprofile(None)
        threading.setprofile(None)

    print(f"\n{task}.py: entries into the checks and the builders, in order")
    for i, (kind, name) in enumerate(entries, 1):
        print(f"  {i:2d} {kind:5s} {name}")
    kinds = Counter(kind for kind, _ in entries)
    modules = Counter(name.partition(":")[0] for _, name in entries)
    switches = sum(a[0] != b[0] for a, b in itertools.pairwise(entries))
    twice = [n for n, c in Counter(name for _, name in entries).items() if c > 1]
    print(f"checks entered: {kinds['check']}; builders entered: {kinds['build']}")
    print(
        f"checks.py entered: {modules['checks.py']}; builders.py entered: {modules['builders.py']}"
    )
    print(f"switches between checking and building: {switches}")
    print(f"functions entered more than once: {', '.join(twice) or 'none'}")


if __name__ == "__main__":
    main()
