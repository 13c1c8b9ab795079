"""The layout's rules, read from the code's own imports (issue 13): imports point down the layers, never in a cycle;
aggregators keep to their own folders; an emulator stays an independent reading of its provider's API.

Layers, top to bottom: pages and the entry points → ui → services (and the worker, webhooks, CLI) → sync →
providers (with their emulators and the shared emulator machinery) → store → pure modules.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PURE, STORE, PROVIDERS, SYNC, SERVICES, UI, PAGES = range(7)
LAYER_NAMES = ["pure", "store", "providers", "sync", "services", "ui", "pages"]
SERVICE_MODULES = {"finance.services", "finance.analysts", "finance.worker", "finance.jobs", "finance.webhooks",
                   "finance.demo", "finance.cli", "finance.file_import", "finance.control_server",
                   "finance.cli_analyst", "finance.cli_keys"}
PAGE_MODULES = {"app", "finance.__main__"}
PAGES_MAY_NOT_IMPORT = ("finance.store", "finance.providers", "finance.sandbox", "finance.sync")
NAMES_ALLOWED_IN = {"finance/providers/registry.py", "finance/config.py"}
"""Outside its own folder a provider is named only where the list of providers and its settings are kept."""


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer(module: str) -> int:
    if module in PAGE_MODULES or module.startswith("pages."):
        return PAGES
    if module.startswith("finance.ui"):
        return UI
    if module in SERVICE_MODULES:
        return SERVICES
    if module == "finance.sync":
        return SYNC
    if module.startswith(("finance.providers", "finance.sandbox")):
        return PROVIDERS
    if module.startswith("finance.store"):
        return STORE
    return PURE


def sources() -> Iterator[Path]:
    yield ROOT / "app.py"
    yield from sorted((ROOT / "pages").glob("*.py"))
    yield from sorted((ROOT / "finance").rglob("*.py"))


def known_modules() -> set[str]:
    return {module_name(path) for path in sources()}


def imports(path: Path, modules: set[str]) -> Iterator[tuple[str, int]]:
    """(imported project module, line) for every import in `path`, including imports inside functions."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, `level - 1` packages up
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for name in names:
            while name and name not in modules:  # `finance.store.schema.accounts` → `finance.store.schema`
                name = name.rpartition(".")[0]
            if name:
                yield name, node.lineno


def graph() -> dict[str, list[tuple[str, int]]]:
    modules = known_modules()
    return {module_name(path): list(dict.fromkeys(imports(path, modules))) for path in sources()}


def provider_of(module: str) -> str | None:
    """The aggregator a module belongs to (`finance.providers.<name>`, a package), else None."""
    parts = module.split(".")
    if len(parts) >= 3 and parts[:2] == ["finance", "providers"] and (
            ROOT / "finance" / "providers" / parts[2] / "__init__.py").exists():
        return parts[2]
    return None


def upward_imports(edges: dict[str, list[tuple[str, int]]]) -> list[str]:
    found = []
    for module, targets in edges.items():
        for target, line in targets:
            if layer(target) > layer(module):
                found.append(f"{module}:{line} imports {target} ({LAYER_NAMES[layer(module)]} → "
                             f"{LAYER_NAMES[layer(target)]})")
            if layer(module) == PAGES and target.startswith(PAGES_MAY_NOT_IMPORT):
                found.append(f"{module}:{line} imports {target}: pages call the services, not the store or sync")
    return found


def cycles(edges: dict[str, list[tuple[str, int]]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target, _ in edges.get(node, []):
            if target == node:
                continue
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def crossings(edges: dict[str, list[tuple[str, int]]]) -> list[str]:
    """A provider importing another provider, or an emulator importing its provider's client side."""
    found = []
    for module, targets in edges.items():
        own = provider_of(module)
        emulator = own is not None and ".sandbox" in module.removeprefix(f"finance.providers.{own}")
        for target, line in targets:
            theirs = provider_of(target)
            if own and theirs and theirs != own:
                found.append(f"{module}:{line} imports {target}: providers never import each other")
            elif emulator and target.startswith("finance.providers") and not target.startswith(
                    f"finance.providers.{own}.sandbox"):
                found.append(f"{module}:{line} imports {target}: an emulator never imports the client side")
            elif not own and theirs and module != "finance.providers.registry" and layer(module) != PAGES:
                found.append(f"{module}:{line} imports {target}: shared code asks the registry, not a provider")
    return found


def provider_names() -> list[str]:
    return sorted(p.name for p in (ROOT / "finance" / "providers").iterdir() if (p / "__init__.py").exists())


def test_no_import_points_up_a_layer():
    assert upward_imports(graph()) == []


def test_no_import_cycles():
    assert cycles(graph()) == []


def test_providers_keep_to_their_folders_and_emulators_stay_independent():
    assert len(provider_names()) >= 2
    assert crossings(graph()) == []


def test_shared_code_never_names_a_provider():
    """Outside a provider's folder, only the registry and the settings name one (code, comments and the widget's
    JavaScript, HTML and CSS alike): `grep -rli <name> finance pages app.py` lists nothing else; and a provider's
    folder names no other provider."""
    names = provider_names()
    files = [ROOT / "app.py", *sorted(p for folder in ("finance", "pages") for p in (ROOT / folder).rglob("*")
                                      if p.is_file() and "__pycache__" not in p.parts
                                      and p.suffix != ".mo")]  # compiled catalogs: built from the .po, not kept
    offenders = []
    for path in files:
        relative = path.relative_to(ROOT).as_posix()
        if relative in NAMES_ALLOWED_IN:
            continue
        own = re.match(r"finance/providers/(\w+)/", relative)
        unwelcome = [n for n in names if not (own and own.group(1) == n)]  # a provider names only itself
        pattern = re.compile("|".join(unwelcome), re.IGNORECASE)
        offenders += [f"{relative}:{number}: {line.strip()[:80]}"
                      for number, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]
    assert offenders == []


def test_modules_and_classes_stay_small():
    too_big = []
    for path in sources():
        text = path.read_text()
        relative = path.relative_to(ROOT).as_posix()
        if text.count("\n") > 700:
            too_big.append(f"{relative}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef) and node.end_lineno and node.end_lineno - node.lineno + 1 > 300:
                too_big.append(f"{relative}: class {node.name} has {node.end_lineno - node.lineno + 1} lines")
    assert too_big == []


# The rules above must be able to fail: each is tried once on a made-up module graph.

def test_the_rules_catch_what_they_forbid():
    edges = {
        "finance.store.schema": [("finance.sync", 3)],
        "finance.sync": [("finance.store.schema", 5)],
        "pages.overview": [("finance.store.queries", 9)],
        "finance.store.queries": [],
    }
    assert upward_imports(edges) == [
        "finance.store.schema:3 imports finance.sync (store → sync)",
        "pages.overview:9 imports finance.store.queries: pages call the services, not the store or sync",
    ]
    assert cycles(edges) == [["finance.store.schema", "finance.sync"]]


@pytest.mark.parametrize(("module", "target", "why"), [
    ("finance.providers.{a}.client", "finance.providers.{b}.mapping", "providers never import each other"),
    ("finance.providers.{a}.sandbox.items", "finance.providers.{a}.mapping", "an emulator never imports"),
    ("finance.webhooks", "finance.providers.{a}.provider", "shared code asks the registry"),
])
def test_the_provider_rules_catch_what_they_forbid(module, target, why):
    a, b = provider_names()[:2]
    module, target = module.format(a=a), target.format(a=a, b=b)
    problems = crossings({module: [(target, 1)]})
    assert len(problems) == 1 and why in problems[0]
