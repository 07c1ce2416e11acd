"""The module layout of tl/: each module one job, no import circle (read off the import
statements, those inside functions included), and the layering the design relies on."""

import ast
from pathlib import Path

TL = Path(__file__).resolve().parents[1] / "tl"


def tl_imports() -> dict[str, set[str]]:
    """{module: the tl modules it imports anywhere in its source} for every module of tl/."""
    graph = {}
    for path in sorted(TL.glob("*.py")):
        name = path.stem
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                if node.module == "tl":  # from tl import checkpoint, dist
                    imported |= {alias.name for alias in node.names}
                elif node.module.startswith("tl."):
                    imported.add(node.module.split(".")[1])
            elif isinstance(node, ast.Import):
                imported |= {a.name.split(".")[1] for a in node.names if a.name.startswith("tl.")}
        graph[name] = imported - {name, "__init__"}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as [a, b, ..., a], or None (depth-first search)."""
    state = {}  # module -> "open" while on the stack, "done" after

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt, path + [nxt])):
                return cycle
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start, [start])):
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_no_import_circle_in_tl():
    graph = tl_imports()
    assert {"model", "hf", "checkpoint", "dist", "training", "rundir"} <= set(graph)
    assert find_cycle(graph) is None, find_cycle(graph)


def test_each_module_keeps_to_its_job():
    graph = tl_imports()
    assert graph["dist"] == set()  # process group, FSDP, collectives: no tl imports
    assert graph["model"] == set()  # the model does no file I/O
    assert "hf" not in graph["checkpoint"] and "model" not in graph["checkpoint"]  # training state only
    assert "sft" not in graph["ppo"]  # PPO shares only tl.training with SFT
    for name in graph:  # tl/ is the method; tasks/ (the data) may import it, never the reverse
        source = (TL / f"{name}.py").read_text()
        assert "from tasks" not in source and "import tasks" not in source, name
