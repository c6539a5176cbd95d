"""docs/design.md's module map is the code's: who imports whom, each module listed once.

The table under "## Modules" has a row per module of the package: its name, its job, the
package modules it imports (at the top or inside a function, comma-separated, "—" for none),
and notable standard-library modules. This test reads the imports from the code itself.
"""

from __future__ import annotations

import ast
import re

from support.helpers import ROOT

PACKAGE = ROOT / "duckdns"


def run_time_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node of ``tree`` but the body of an ``if TYPE_CHECKING:``: what is imported there
    is for the type checker only (mypy.ini), never at run time, so it is no arrow of the map."""
    nodes, todo = [], [tree]
    while todo:
        node = todo.pop()
        nodes.append(node)
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            todo.extend(node.orelse)
        else:
            todo.extend(ast.iter_child_nodes(node))
    return nodes


def imports_in_code() -> dict[str, set[str]]:
    """module -> the package modules it imports at run time, anywhere in it."""
    modules = {path.stem: path for path in PACKAGE.glob("*.py")}
    found: dict[str, set[str]] = {}
    for name, path in modules.items():
        used: set[str] = set()
        for node in run_time_nodes(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "duckdns":
                used.update(alias.name for alias in node.names if alias.name in modules)
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("duckdns."):
                used.add(node.module.split(".")[1])
            elif isinstance(node, ast.Import):
                used.update(
                    alias.name.split(".")[1]
                    for alias in node.names
                    if alias.name.startswith("duckdns.")
                )
        found[name] = used - {name}
    return found


def imports_in_design() -> dict[str, set[str]]:
    text = (ROOT / "docs/design.md").read_text()
    section = text.split("\n## Modules\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        match = re.fullmatch(r"`(\w+)`", cells[0]) if len(cells) >= 3 else None
        if not match:
            continue
        assert match[1] not in rows, f"{match[1]} is listed twice"
        listed = cells[2]
        rows[match[1]] = (
            set() if listed == "—" else {name.strip(" `") for name in listed.split(",")}
        )
    return rows


def test_every_module_is_in_the_map_with_exactly_its_imports():
    code, design = imports_in_code(), imports_in_design()
    assert set(design) == set(code), "modules missing from or extra in docs/design.md"
    wrong = {m: (sorted(design[m]), sorted(code[m])) for m in code if design[m] != code[m]}
    assert not wrong, f"docs/design.md (listed, in the code): {wrong}"


def test_data_flows_one_way():
    """No import circles, and the bottom modules import nothing of the package."""
    code = imports_in_code()

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(
            nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt}))
            for nxt in code[start]
        )

    circles = [m for m in code if reaches(m, m, {m})]
    assert not circles, f"import circles through {circles}"
    assert code["report"] == set()
    assert code["records"] == set(), "the run records sit under every module"
    assert code["state"] <= {"records", "report"}, "the storage layer knows no feature"
    assert not [m for m in code if "cli" in code[m] and m != "__main__"], "only __main__ runs cli"


def exit_tables() -> list[dict[int, str]]:
    """The tables under "### Exit status" in docs/design.md: {code: enum member name} each."""
    text = (ROOT / "docs/design.md").read_text()
    section = text.split("\n### Exit status\n", 1)[1].split("\n## ", 1)[0]
    tables = [block for block in section.split("\n\n") if block.startswith("|")]
    return [
        {int(code): name for code, name in re.findall(r"^\| (\d+) \| `(\w+)` \|", block, re.M)}
        for block in tables
    ]


def test_the_exit_status_tables_are_the_code_s():
    """docs/design.md shows ExitStatus and CheckStatus, code for code, name for name."""
    from duckdns import CheckStatus, ExitStatus

    assert exit_tables() == [
        {int(s): s.name for s in ExitStatus},
        {int(s): s.name for s in CheckStatus},
    ]


def test_outcome_words_are_spelled_only_in_records_result():
    """How things went has one vocabulary, records.Result: no other module spells its words.

    "ok" and "error" are left out of the search: they are words of other vocabularies too (the
    probe's state, decide.PROBE_OK; a report level, "error"; a notification child's verdict).
    A ``__slots__`` entry is an attribute's name, and a docstring is prose.
    """
    from duckdns.records import Result

    words = {str(word) for word in Result} - {"ok", "error"}
    assert words == {"ko", "updated", "nochange", "cleared", "down", "reminder", "up"}
    spelled = []
    for path in sorted((ROOT / "duckdns").glob("*.py")):
        if path.name == "records.py":
            continue
        tree = ast.parse(path.read_text())
        skip = set()
        for node in ast.walk(tree):
            body = getattr(node, "body", None)
            if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
                skip.add(id(body[0].value))  # a docstring
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "__slots__" for t in node.targets
            ):
                skip.update(id(n) for n in ast.walk(node.value))
        spelled += [
            f"{path.name}:{node.lineno}: {node.value!r}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and node.value in words and id(node) not in skip
        ]
    assert not spelled, f"use duckdns.records.Result: {spelled}"
