"""The code's rules, run: one command that exits 1 with a list of what breaks them, and 0
when nothing does (CI runs it before the tests).

    python scripts/check_code.py            # every check
    python scripts/check_code.py layers names   # some: ruff, format, layers, names, imports

- ``ruff``: ``ruff check .``; ``format``: ``ruff format --check .``;
- ``layers``: no import pointing up the layers of the package (:data:`LAYERS`, the one
  place their order is written; docs/layout.md points here);
- ``names``: every path and module named in README.md and docs/, and in the docstrings
  and comments of src/, tests/ and benchmarks/, exists (a renamed module leaves no
  reader looking for it);
- ``imports``: every import inside a function of src/ says why in a comment (to keep
  torch out of a start-up or the config check, an optional package, ...).
"""

from __future__ import annotations

import ast
import importlib.util
import io
import re
import subprocess
import sys
import tokenize
from collections.abc import Callable, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "imagenet_multilabel"

# The package's layers, bottom to top: a module imports only from its own layer or below.
# Each entry is one layer; names are the package's top-level modules and packages.
LAYERS = [
    "core",
    "data models",
    "scoring",
    "lit training",
    "runs",
    "reports",
    "tracking",
    "checks",
    "builders",
    "tasks",
    "propose",
    "sweeps",
    "entry",
    "commands",
]
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer.split()}
# files whose names docs mention without being this repository's (outputs of a run, other
# projects' files, files a user writes)
NOT_OURS = re.compile(
    r"(^|/)(outputs?|multirun|checkpoints|predictions|figures|wandb|csv|thumbs|exemplars|photos"
    r"|imagenet-a|imagenet-r|sketch|\.hydra|\.submitit)(/|$)|^lightning/"
)
# other projects' scripts the docs compare with (ImageNet-C's generator, timm's validate.py)
OTHER_PROJECTS = {"make_imagenet_c.py", "validate.py"}


def check_ruff() -> list[str]:
    """``ruff check .``: its findings, one per line."""
    return _run([sys.executable, "-m", "ruff", "check", "--output-format=concise", "."])


def check_format() -> list[str]:
    """``ruff format --check .``: the files it would reformat."""
    return _run([sys.executable, "-m", "ruff", "format", "--check", "."])


def _run(command: list[str]) -> list[str]:
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if proc.returncode == 0:
        return []
    lines = (proc.stdout + proc.stderr).splitlines()
    return [ln for ln in lines if ln.strip() and not ln.startswith(("Found ", "[*]"))]


# ------------------------------------------------------------------------------ layers


def _layer(module: str) -> str:
    """The top-level name (``tasks`` of ``imagenet_multilabel.tasks.evaluate``)."""
    return module.split(".")[1] if module.count(".") else ""


def check_layers(root: Path = PACKAGE) -> list[str]:
    """Every import of the package's own modules that points up a layer, and every
    top-level module or package missing from :data:`LAYERS`."""
    problems = []
    tops = {
        p.stem if p.is_file() else p.name
        for p in root.iterdir()
        if (p.suffix == ".py" and p.stem not in ("__init__", "__main__"))
        or (p.is_dir() and (p / "__init__.py").is_file())
    }
    problems += [f"{root.name}/{t}: not in any layer of LAYERS" for t in sorted(tops - set(RANK))]
    for f in sorted(root.rglob("*.py")):
        src = f.relative_to(root).parts[0].removesuffix(".py")
        if src not in RANK:
            continue
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                if not name.startswith(f"{root.name}."):
                    continue
                dst = _layer(name)
                if RANK.get(dst, -1) > RANK[src]:
                    where = f.relative_to(root.parent)
                    problems.append(f"{where}:{node.lineno}: imports {name} ({dst} is above {src})")
    return problems


# ------------------------------------------------------------------------------- names

PATH = re.compile(r"^[\w.@-]+(/[\w.@-]+)*/?$")
SUFFIXES = (".py", ".yaml", ".md", ".sh", ".js", ".css", ".toml")
DOTTED = re.compile(r"^(imagenet_multilabel|hydra_plugins)(\.\w+)+$")
RELATIVE = re.compile(r"^(\.{1,3})(\w+)(\.\w+)*$")


def _quoted(text: str) -> Iterator[tuple[str, bool]]:
    """(token, whether a Sphinx role names it) of the tokens in backquotes (one or two),
    the targets of Markdown links, and the modules of ``python -m`` commands."""
    for m in re.finditer(r"(:\w+:)?``([^`\n]+)``|(:\w+:)?`([^`\n]+)`", text):
        role = bool(m.group(1) or m.group(3))
        yield (m.group(2) or m.group(4)).strip().lstrip("~"), role
    for m in re.finditer(r"\]\(([^)\s]+)\)", text):
        yield m.group(1).split("#")[0], False
    for m in re.finditer(r"python -m ([\w.]+)", text):
        yield m.group(1), False
    # paths written without quotes (``see data/datasets/composites.py``), not in a URL
    for m in re.finditer(r"(?<![\w./:`-])((?:[\w.-]+/)+[\w.-]+\.(?:py|yaml|md))\b(?!`)", text):
        yield m.group(1), False


def _module_exists(dotted: str) -> bool:
    """``a.b.c`` is a module or package of src/, or a name in one (``a.b:func`` style too)."""
    parts = dotted.replace(":", ".").split(".")
    for n in range(len(parts), 0, -1):
        base = REPO / "src" / Path(*parts[:n])
        if base.with_suffix(".py").is_file() or (base / "__init__.py").is_file():
            rest = parts[n:]
            if not rest:
                return True
            module = (
                base.with_suffix(".py")
                if base.with_suffix(".py").is_file()
                else base / "__init__.py"
            )
            return rest[0] in _top_names(module)
    return False


_TOP: dict[Path, set[str]] = {}


def _top_names(module: Path) -> set[str]:
    """The names a module defines or imports at its top level."""
    if module not in _TOP:
        names: set[str] = set()
        for node in ast.parse(module.read_text(encoding="utf-8")).body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names |= {t.id for t in targets if isinstance(t, ast.Name)}
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        _TOP[module] = names
    return _TOP[module]


def _path_exists(token: str, bases: list[Path]) -> bool:
    token = token.split("::")[0].rstrip("/")
    return any((base / token).exists() for base in bases)


def _names_in(text: str, bases: list[Path], module: Path | None = None) -> Iterator[str]:
    """The paths and modules named in ``text`` that do not exist (``bases``: the folders a
    relative path may start from; ``module``: the source file, for ``.relative`` names)."""
    for token, role in _quoted(text):
        token = token.removeprefix("src/imagenet_multilabel/").split(":")[0]
        if token.startswith(("http", "/", "~", "../", "$")) or NOT_OURS.search(token):
            continue
        if DOTTED.match(token):
            if not _module_exists(token):
                yield token
        elif role and module is not None and re.fullmatch(r"\w+(\.\w+)+", token):
            if not _absolute_exists(module, token):
                yield token
        elif token.startswith("."):
            m = RELATIVE.match(token)
            if (
                role
                and module is not None
                and m
                and not _relative_exists(module, token, len(m.group(1)))
            ):
                yield token
        elif PATH.match(token) and token.count("/") == 1 and token.endswith("/"):
            if not _path_exists(token, bases) and not _is_folder(token[:-1]):
                yield token
        elif PATH.match(token) and ("/" in token) and token.endswith((*SUFFIXES, "/")):
            if not _path_exists(token, bases):
                yield token
        elif (
            PATH.match(token)
            and "/" not in token
            and token.endswith(".py")
            and token not in OTHER_PROJECTS
            and not _anywhere(token)
        ):
            yield token


def _is_folder(name: str) -> bool:
    """A folder of the package or of conf/ has this name (``metrics/``, ``launcher/``)."""
    return any(p.is_dir() for top in (PACKAGE, REPO / "conf") for p in top.rglob(name))


_FILES: set[str] = set()


def _anywhere(name: str) -> bool:
    """A bare file name (``folders.py``) is some file of src/, tests/, benchmarks/ or scripts/."""
    if not _FILES:
        for top in ("src", "tests", "benchmarks", "scripts"):
            _FILES.update(p.name for p in (REPO / top).rglob("*.py"))
        _FILES.update(p.name for p in REPO.glob("*.py"))
    return name in _FILES


def _relative_exists(module: Path, token: str, dots: int) -> bool:
    """``.names`` / ``..data.splits`` seen from ``module``: a module, package or a name
    defined in one (the module itself for one dot and a name of its own)."""
    anchor = module.parent
    for _ in range(dots - 1):
        anchor = anchor.parent
    parts = token.lstrip(".").split(".")
    if dots == 1 and parts[0] in _top_names(module):
        return True
    path = anchor
    for i, part in enumerate(parts):
        if (path / part).is_dir() and (path / part / "__init__.py").is_file():
            path = path / part
            continue
        if (path / f"{part}.py").is_file():
            rest = parts[i + 1 :]
            return not rest or rest[0] in _top_names(path / f"{part}.py")
        init = path / "__init__.py"
        return init.is_file() and part in _top_names(init)
    return True


def _absolute_exists(module: Path, token: str) -> bool:
    """A Sphinx role's ``a.b``: a name of this module (``Scorer.score``), a module of the
    package (``core.distributed``) or an importable one (``torch.nn``)."""
    first = token.split(".")[0]
    if first in _top_names(module):
        return True
    if (PACKAGE / first).is_dir() or (PACKAGE / f"{first}.py").is_file():
        return _module_exists(f"{PACKAGE.name}.{token}")
    try:
        return importlib.util.find_spec(first) is not None
    except (ImportError, ValueError):
        return False


def _comments_and_docstrings(source: str) -> Iterator[tuple[int, str]]:
    """(line, text) of every comment and docstring of a Python source."""
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            yield tok.start[0], tok.string
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=False)
            if doc:
                yield (node.body[0].lineno if node.body else 1), doc


# the folders whose Python files' docstrings and comments ``names`` reads
NAMED_IN = ("src", "tests", "benchmarks")


def check_names(repo: Path = REPO) -> list[str]:
    """Every path and module named in README.md, docs/*.md and the docstrings and comments
    of the Python files of :data:`NAMED_IN` that does not exist."""
    problems = []
    common = [repo, repo / "src", PACKAGE, repo / "conf", repo / "tests"]
    for doc in [repo / "README.md", *sorted((repo / "docs").glob("*.md"))]:
        text = doc.read_text(encoding="utf-8")
        for lineno, line in enumerate(text.splitlines(), 1):
            for token in _names_in(line, [doc.parent, *common]):
                problems.append(
                    f"{doc.relative_to(repo)}:{lineno}: names {token}, which does not exist"
                )
    for f in sorted(f for top in NAMED_IN for f in (repo / top).rglob("*.py")):
        bases = [f.parent, f.parent.parent, *common]
        for lineno, text in _comments_and_docstrings(f.read_text(encoding="utf-8")):
            for token in _names_in(text, bases, module=f):
                problems.append(
                    f"{f.relative_to(repo)}:{lineno}: names {token}, which does not exist"
                )
    return problems


# ----------------------------------------------------------------------------- imports


def check_imports(root: Path = REPO / "src") -> list[str]:
    """Every import inside a function says why it is not at the top of its module: a
    comment in the statement, on the line above, or above the imports it is grouped with."""
    problems = []
    for f in sorted(root.rglob("*.py")):
        lines = f.read_text(encoding="utf-8").splitlines()
        for fn in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if not isinstance(node, (ast.Import, ast.ImportFrom)):
                    continue
                k = node.lineno - 2
                while k >= 0 and (
                    not lines[k].strip() or lines[k].strip().startswith(("import ", "from "))
                ):
                    k -= 1
                said = "#" in "\n".join(lines[node.lineno - 1 : node.end_lineno])
                if not said and not (k >= 0 and lines[k].strip().startswith("#")):
                    where = f.relative_to(root.parent)
                    problems.append(
                        f"{where}:{node.lineno}: an import inside {fn.name}() without a "
                        "comment saying why it is not at the top"
                    )
    return problems


CHECKS: dict[str, Callable[[], list[str]]] = {
    "ruff": check_ruff,
    "format": check_format,
    "layers": check_layers,
    "names": check_names,
    "imports": check_imports,
}


def main(argv: list[str]) -> int:
    wanted = argv or list(CHECKS)
    unknown = [w for w in wanted if w not in CHECKS]
    if unknown:
        print(f"error: unknown check {unknown[0]!r}: use {', '.join(CHECKS)}", file=sys.stderr)
        return 2
    failed = 0
    for name in wanted:
        problems = CHECKS[name]()
        print(f"{name}: {'ok' if not problems else f'{len(problems)} problem(s)'}")
        for problem in problems:
            print(f"  {problem}")
        failed += bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
