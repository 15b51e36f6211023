"""The package's layers point one way: each module imports only its own component and the layers below it.

LAYERS is the rule, bottom first. A component (a subpackage or top-level module of ``shoal``) may import
itself and any component of a lower layer; never one of its own layer (coordinator and workers stay side by
side) nor one above. Every import counts: at module level, inside functions, under ``if TYPE_CHECKING:``.
"""

import ast
import subprocess
import sys
from pathlib import Path

import shoal

PACKAGE = Path(shoal.__file__).parent

LAYERS: list[tuple[str, ...]] = [
    ("common",),  # messages, keys, requests, session specs: imports nothing of shoal above it
    ("store",),  # Redis: connection, private server, specs, heartbeats
    ("spiders",),  # the Spider API and what loads, links and results spiders
    ("coordinator", "workers", "fetchers", "engines", "demo"),  # side by side: neither imports the other
    ("client", "local"),  # a service's crawls from outside; a crawl on this machine
    ("dashboard",),
    ("cli",),  # the commands
    ("__main__", "__init__"),  # the package's entry points: ``python -m shoal``, ``shoal.Client``
]
#: The one upward import: Spider.start() and Spider.stream() are Scrapling's way to run a crawl on this
#: machine, so those two methods call the local runner (inside the methods, when they run).
ALLOWED = {("spiders/spider.py", "shoal.local.run")}
RANK = {component: rank for rank, layer in enumerate(LAYERS) for component in layer}


def component(module: str) -> str:
    """The component a dotted ``shoal.…`` module belongs to (``__init__`` for the package itself)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts)


def submodule(base: str, name: str) -> str:
    """The module ``from base import name`` imports: ``base.name`` when that is a module, else ``base``."""
    path = PACKAGE.parent.joinpath(*base.split("."), name)
    return f"{base}.{name}" if path.with_suffix(".py").exists() or path.is_dir() else base


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """Every ``shoal`` module ``path`` imports, with the line, wherever the import statement stands."""
    found = []
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found += [(node.lineno, submodule(base, alias.name)) for alias in node.names]
    return sorted({(line, name) for line, name in found if name == "shoal" or name.startswith("shoal.")})


def test_every_component_has_a_layer() -> None:
    components = {
        module_name(path).split(".")[1] if "." in module_name(path) else "__init__" for path in PACKAGE.rglob("*.py")
    }
    assert components - set(RANK) == set(), "add these components to LAYERS"


def test_imports_point_down() -> None:
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = component(module_name(path))
        relative = path.relative_to(PACKAGE).as_posix()
        for line, target in imported_modules(path):
            imported = component(target)
            if imported == source or (relative, target) in ALLOWED:
                continue
            if RANK[imported] >= RANK[source]:
                way = "sideways" if RANK[imported] == RANK[source] else "upward"
                wrong.append(f"shoal/{relative}:{line} imports {target} ({way}: {source} -> {imported})")
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


def test_a_worker_process_loads_no_coordinator_client_or_cli() -> None:
    code = "import sys, shoal.workers.worker; print('\\n'.join(m for m in sys.modules if m.startswith('shoal')))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    above = [m for m in loaded if component(m) in ("coordinator", "client", "cli", "local", "dashboard")]
    assert not above, f"importing shoal.workers.worker loads {above}"


def holds(path: Path) -> str:
    """What a module holds: the first paragraph of its docstring, on one line."""
    docstring = ast.get_docstring(ast.parse(path.read_text(), str(path))) or ""
    return " ".join(docstring.split("\n\n")[0].split())


def package_table() -> str:
    """The README's table of the package: one row per file, saying what it holds."""
    rows = ["| file | holds |", "|---|---|"]
    for path in sorted(PACKAGE.rglob("*.py")):
        rows.append(f"| `{path.relative_to(PACKAGE.parent).as_posix()}` | {holds(path).replace('|', '/')} |")
    return "\n".join(rows)


def test_every_module_says_what_it_holds_and_the_readme_lists_each_file() -> None:
    missing = [str(path.relative_to(PACKAGE.parent)) for path in PACKAGE.rglob("*.py") if not holds(path)]
    assert not missing, f"modules without a docstring: {missing}"
    readme = (PACKAGE.parent / "README.md").read_text()
    start, end = "<!-- package table: tests/test_layers.py writes it -->\n", "\n<!-- end of package table -->"
    listed = readme[readme.index(start) + len(start) : readme.index(end)]
    assert listed == package_table(), "update the README's package table to:\n" + package_table()
