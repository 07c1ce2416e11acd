"""BFCL-v3 (Berkeley Function-Calling Leaderboard) single-turn AST categories, read and judged by the
rules of BFCL's own checker: its decoder for prompting models (`decode`) and value rules (`value_ok`).

Files are JSON Lines despite the `.json` suffix: `BFCL_v3_<category>.json` holds `{"id", "question":
[[{"role", "content"}, ...]], "function": [schema, ...]}`, `possible_answer/<same name>` `{"id",
"ground_truth": [{name: {param: [acceptable values]}}, ...]}` ("": the key may be omitted unless
required), paired by position as in BFCL (ids differ once). bfcl-eval's `BFCL_v4_*` and
`simple_python` files are read under the v3 names. Items keep BFCL's schemas: its checker reads their
type words.
"""

from __future__ import annotations

import ast
import importlib.util
import operator
import re
import warnings
from pathlib import Path

from tasks.base import BenchmarkError, Item, Loaded, read_jsonl_lines, record_ids, require
from tl.calls import EOS_MARK, Call
from tl.parse import MAX_CHARS, Parsed, parse

CATEGORIES = (
    "simple",
    "multiple",
    "parallel",
    "parallel_multiple",
    "irrelevance",
    "live_simple",
    "live_multiple",
    "live_parallel",
    "live_parallel_multiple",
    "live_irrelevance",
    "live_relevance",
)
# Categories without a possible_answer file: in the irrelevance ones no call is right, in live_relevance
# any call is.
NO_ANSWER_FILE = ("irrelevance", "live_irrelevance", "live_relevance")
_FILE = re.compile(r"BFCL_v(\d+)_(simple_python|" + "|".join(CATEGORIES) + r")\.json$")
# BFCL's type words, and the normal form's -> the Python type BFCL's checker expects
_TYPES = {
    "string": str,
    "any": str,
    "integer": int,
    "float": float,
    "number": float,
    "boolean": bool,
    "array": list,
    "tuple": list,
    "dict": dict,
    "object": dict,
}


def _type(schema) -> type | None:
    word = (schema or {}).get("type")
    return _TYPES.get(word) if isinstance(word, str) else None


def _holds_dicts(prop) -> str | None:
    """ "dict" for a dict parameter, "list" for a list of dicts (both read by BFCL's dict_checker)."""
    if _type(prop) is dict:
        return "dict"
    if _type(prop) is list and _type(prop.get("items")) is dict:
        return "list"
    return None


def package_data_dir():
    """The installed bfcl-eval package's data folder (found without importing it), or None."""
    spec = importlib.util.find_spec("bfcl_eval")
    if not (spec and spec.submodule_search_locations):
        return None
    data = Path(list(spec.submodule_search_locations)[0]) / "data"
    return data if data.is_dir() else None


def find_files(path) -> dict:
    """{category: question file} under `path` (a folder, or one file); the newest BFCL version of each."""
    path = Path(path)
    found = {}  # category -> (BFCL version, file)
    candidates = [path] if path.is_file() else sorted(path.glob("BFCL_v*_*.json"))
    for f in candidates:
        m = _FILE.search(f.name)
        if not m:
            continue
        version = int(m.group(1))
        category = "simple" if m.group(2) == "simple_python" else m.group(2)
        if category not in found or version > found[category][0]:
            found[category] = (version, f)
    return {c: found[c][1] for c in CATEGORIES if c in found}


def _messages(question, where) -> list[dict]:
    if not isinstance(question, list) or not question or not all(isinstance(t, list) for t in question):
        raise BenchmarkError(
            f"{where}: 'question' should be a non-empty list of turns, each a list of messages; "
            f"found {question!r:.120}"
        )
    messages = [m for turn in question for m in turn]
    for m in messages:
        well_formed = (
            isinstance(m, dict)
            and m.get("role") in ("system", "user", "assistant")
            and isinstance(m.get("content"), str)
        )
        if not well_formed:
            raise BenchmarkError(
                f"{where}: a question message should be {{'role': system|user|assistant, 'content': str}}, "
                f"found {m!r:.120}"
            )
    if not messages:
        raise BenchmarkError(f"{where}: 'question' holds no message")
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def _check_functions(functions, category, where):
    """Schemas as BFCL's checker reads them: `name`, `parameters.properties` of its type words."""
    if not functions and "irrelevance" not in category:
        raise BenchmarkError(
            f"{where}: 'function' is empty; a {category} item needs the functions it may call"
        )
    for i, f in enumerate(functions):
        if not isinstance(f, dict) or not isinstance(f.get("name"), str) or not f["name"].strip():
            # OpenAI's {"type": "function", "function": {...}} is none: BFCL's checker reads f["name"]
            found = f"keys {sorted(f)}" if isinstance(f, dict) else f"{type(f).__name__} {f!r:.80}"
            raise BenchmarkError(
                f"{where}: function {i}: expected a BFCL schema {{name, description, parameters}}; "
                f"found {found}"
            )
        at = f"{where}: function {i} ({f['name']})"
        params = f.get("parameters")
        well_formed = (
            isinstance(params, dict)
            and isinstance(params.get("properties"), dict)
            and isinstance(params.get("required", []), list)
        )
        if not well_formed:
            raise BenchmarkError(
                f"{at}: 'parameters' should be {{type, properties: {{...}}, required}}; found {params!r:.120}"
            )
        for key, prop in params["properties"].items():
            if not isinstance(prop, dict) or _type(prop) is None:
                if isinstance(prop, dict):
                    found = f"type {prop.get('type')!r:.60}"
                else:
                    found = f"{type(prop).__name__} {prop!r:.60}"
                raise BenchmarkError(
                    f"{at}: parameter {key!r} should be {{type: {'|'.join(_TYPES)}, ...}}; found {found}"
                )
            if not isinstance(prop.get("items", {}), dict):
                raise BenchmarkError(f"{at}: parameter {key!r}: 'items' should be a schema object")


def _check_ground_truth(gold, functions, where):
    """`[{name: {param: [acceptable values]}}, ...]`, at least one call; an acceptable dict maps each key
    to a list of acceptable values."""
    if not gold:
        raise BenchmarkError(
            f"{where}: ground_truth is empty; this category expects at least one call "
            f"(only the irrelevance categories have none, and no answer file)"
        )
    props_of = {f["name"]: f["parameters"]["properties"] for f in functions}
    for g in gold:
        one_call = isinstance(g, dict) and len(g) == 1 and isinstance(next(iter(g.values())), dict)
        if not one_call:
            raise BenchmarkError(
                f"{where}: each ground_truth entry should be {{name: {{param: [values]}}}}, found {g!r:.120}"
            )
        ((name, params),) = g.items()
        for key, values in params.items():
            if not isinstance(values, list):
                raise BenchmarkError(
                    f"{where}: ground_truth {name}.{key} should be a list of acceptable values, "
                    f"found {type(values).__name__} {values!r:.80}"
                )
            holds = _holds_dicts(props_of.get(name, {}).get(key, {}))
            for v in values:
                # the acceptable dicts: v itself for a dict parameter, v's elements for a list of dicts
                if holds == "dict":
                    candidates = [v]
                elif holds and isinstance(v, list):
                    candidates = v
                else:
                    candidates = []
                for d in candidates:
                    if isinstance(d, dict) and not all(isinstance(x, list) for x in d.values()):
                        raise BenchmarkError(
                            f"{where}: ground_truth {name}.{key}: an acceptable dict should map each key "
                            f"to a list of acceptable values, found {d!r:.80}"
                        )


def load_category(question_file, category: str) -> list[Item]:
    """One category's question file (and its possible_answer file) -> Items (mode "bfcl")."""
    question_file = Path(question_file)
    wheres, records = zip(*read_jsonl_lines(question_file))
    # without an answer file: no gold calls, and no answer line to name in errors
    answers = [[] for _ in records]
    answer_at = [None] * len(records)
    if category not in NO_ANSWER_FILE:
        answer_file = question_file.parent / "possible_answer" / question_file.name
        rows = read_jsonl_lines(answer_file, allow_empty=True)  # an empty one: the count check says more
        if len(rows) != len(records):  # BFCL asserts equal lengths
            raise BenchmarkError(
                f"{answer_file}: {len(rows)} answers for the {len(records)} questions of "
                f"{question_file.name}; BFCL pairs them by position, so the counts must match"
            )
        answer_at = [at for at, _ in rows]
        answers = [require(r, "ground_truth", list, at) for at, r in rows]
    ids = record_ids(records, question_file, wheres)
    items = []
    for where, rec, item_id, gold, at in zip(wheres, records, ids, answers, answer_at):
        functions = require(rec, "function", list, where)
        _check_functions(functions, category, where)
        messages = _messages(rec.get("question"), where)
        single_call = len(gold) == 1 and isinstance(gold[0], dict) and len(gold[0]) == 1
        if category in ("simple", "live_simple") and single_call:
            # BFCL's simple checker expects the question's function by *its* name (simple_363's gold
            # says find_closest for restaurant_search.find_closest)
            gold = [{functions[0]["name"]: next(iter(gold[0].values()))}]
        if at is not None:
            _check_ground_truth(gold, functions, at)
        items.append(Item(item_id, "bfcl", functions, messages, gold, "bfcl", category, reader="bfcl"))
    return items


def load(path=None) -> list[Loaded]:
    """All categories under `path` as one unit "bfcl" (metrics per category); no path: bfcl-eval's
    data."""
    if path is None:
        path = package_data_dir()
        if path is None:
            raise BenchmarkError(
                "BFCL: no data path given and the bfcl-eval package is not installed "
                "(pip install bfcl-eval --no-deps, or pass --data DIR with BFCL_v3_*.json)"
            )
    files = find_files(path)
    if not files:
        raise BenchmarkError(
            f"{path}: no BFCL question files found "
            f"(expected BFCL_v3_<category>.json, categories {', '.join(CATEGORIES)})"
        )
    items = [it for category, f in files.items() for it in load_category(f, category)]
    if len({it.id for it in items}) != len(items):
        raise BenchmarkError(f"{path}: BFCL ids repeat across category files; expected each id once")
    return [Loaded("bfcl", items)]


def gold_output(item: Item) -> str:
    """The first acceptable answer in BFCL's output format (Python literals), omissible keys left out.
    A key with no acceptable value at all (live_simple_106/112) is left out too: nothing is right
    there."""

    def first(options):
        """The first acceptable value that is not "" (omitted)."""
        return next((v for v in options if v != ""), "")

    def keep(options, required):
        """Whether the key is written: it has acceptable values and may not be omitted."""
        return bool(options) and ("" not in options or required)

    def one(d):
        """An acceptable dict ({key: [acceptable values]}) as its first acceptable dict."""
        if not isinstance(d, dict):
            return d
        return {k: first(v) for k, v in d.items() if keep(v, False)}

    def call(name, args):
        return f"{name}({', '.join(f'{k}={v!r}' for k, v in args.items())})"

    if item.category == "live_relevance":
        return call(item.tools[0]["name"], {})  # any call is right
    if not item.gold:
        return "None of the available functions can answer this request."
    calls = []
    for entry in item.gold:
        ((name, params),) = entry.items()
        schema = next((f["parameters"] for f in item.tools if f["name"] == name), {})
        args = {}
        for k, v in params.items():
            if not keep(v, k in schema.get("required", [])):
                continue
            value = first(v)
            holds = _holds_dicts(schema.get("properties", {}).get(k, {}))
            if holds == "dict":
                args[k] = one(value)
            elif holds and isinstance(value, list):
                args[k] = [one(d) for d in value]
            else:
                args[k] = value
        calls.append(call(name, args))
    return "[" + ", ".join(calls) + "]"


# ----------------------------------------------------------------------------- BFCL's decoder
class _Unreadable(Exception):
    """Text BFCL's decoder does not read (or that would need evaluating)."""


_JSON_NAMES = {"true": True, "false": False, "null": None}
_ARITHMETIC = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}


def _value(node, json_literals: bool):
    """One argument value as BFCL's resolve_ast_by_type reads it, never evaluated."""
    if isinstance(node, ast.Constant):
        return "..." if node.value is Ellipsis else node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.operand, ast.Constant):
        return -node.operand.value  # BFCL negates under every unary operator (+5 reads as -5)
    if isinstance(node, (ast.List, ast.Tuple)):
        values = [_value(e, json_literals) for e in node.elts]
        return values if isinstance(node, ast.List) else tuple(values)
    if isinstance(node, ast.Dict):
        if any(k is None for k in node.keys):
            raise _Unreadable("** inside a dict")
        return {_value(k, json_literals): _value(v, json_literals) for k, v in zip(node.keys, node.values)}
    if isinstance(node, ast.Name):  # a bare identifier is its own name as a string (true -> "true")
        if json_literals and node.id in _JSON_NAMES:
            return _JSON_NAMES[node.id]
        return node.id
    if isinstance(node, ast.Call):  # a call with keywords is a nested call, one without is its source
        if node.keywords:
            return _call(node, json_literals)
        return ast.unparse(node)
    if isinstance(node, ast.Subscript):
        return f"{ast.unparse(node.value)}[{ast.unparse(node.slice)}]"
    if isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
        # BFCL eval()s it; here it is computed, on plain values only and within bounds
        left = _value(node.left, json_literals)
        right = _value(node.right, json_literals)
        numbers = all(type(x) in (int, float, bool) for x in (left, right))
        joined = isinstance(node.op, ast.Add) and type(left) is type(right) and type(left) in (str, list)
        repeated = isinstance(node.op, ast.Mult) and type(left) in (str, list) and type(right) is int
        if not (numbers or joined or repeated):
            raise _Unreadable("arithmetic is read on numbers, + and * on strings or lists only")
        too_long = repeated and len(left) * right > MAX_CHARS
        # an integer power of more than 2**16 bits
        too_big = (
            isinstance(node.op, ast.Pow)
            and isinstance(left, int)
            and isinstance(right, int)
            and abs(right) * abs(left).bit_length() > 1 << 16
        )
        if too_long or too_big:
            raise _Unreadable("a value too large to compute")
        return _ARITHMETIC[type(node.op)](left, right)
    # Other expressions that BFCL's eval() reads (1 << 4, len("ab") + 1) are never evaluated here.
    raise _Unreadable(f"{type(node).__name__} is not a value BFCL's decoder reads without evaluating it")


def _call(node: ast.Call, json_literals: bool) -> dict:
    """A call node as {dotted name: {keyword: value}}."""
    attributes = []  # the dotted name's parts after the first, last first
    func = node.func
    while isinstance(func, ast.Attribute):
        attributes.append(func.attr)
        func = func.value
    if not isinstance(func, ast.Name):
        raise _Unreadable("a call must start with a name")
    # Positional arguments are dropped and a repeated keyword keeps its last value, as in BFCL.
    args = {"**" if kw.arg is None else kw.arg: _value(kw.value, json_literals) for kw in node.keywords}
    return {".".join([func.id, *reversed(attributes)]): args}


def decode(text, json_literals: bool = False) -> Parsed:
    """Model text as BFCL's default_decode_ast_prompting reads it: backticks, newlines and spaces
    stripped from the ends, a missing `[` or `]` added, then one Python list of calls. Unlike tl.parse:
    a bare identifier is a string (JSON literals with `json_literals`), a tuple stays one, a
    keyword-less call or a subscript is its source text, positional arguments are dropped, calls on
    several lines do not decode; arithmetic on numbers, + and * on strings or lists are computed
    (bounded). Undecodable text is "error" ("no_call" if tl.parse reads prose); `[]` is "no_call"."""
    if not isinstance(text, str):
        return Parsed("error", error=f"expected model output as str; found {type(text).__name__}")
    source = text[: MAX_CHARS + len(EOS_MARK)].split(EOS_MARK, 1)[0].strip("`\n ")
    if not source.startswith("["):
        source = "[" + source
    if not source.endswith("]"):
        source = source + "]"
    try:  # size is bounded here; nesting by Python's own parser (a SyntaxError past ~200 levels)
        if len(source) > MAX_CHARS + 2:
            raise _Unreadable(f"output longer than {MAX_CHARS} characters")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            body = ast.parse(source.strip().strip("'"), mode="eval").body
        # a single call, else the list's elements (any other expression has no .elts: AttributeError)
        nodes = [body] if isinstance(body, ast.Call) else body.elts
        if not all(isinstance(n, ast.Call) for n in nodes):
            raise _Unreadable("expected a list of calls")
        calls = [Call(*next(iter(_call(n, json_literals).items()))) for n in nodes]
    except (
        SyntaxError,
        ValueError,
        TypeError,
        AttributeError,
        ArithmeticError,
        RecursionError,
        MemoryError,
        _Unreadable,
    ) as e:
        if parse(text).kind == "no_call":  # prose, not a failed call
            return Parsed("no_call")
        return Parsed("error", error=f"BFCL's decoder cannot read it: {type(e).__name__}: {e}")
    if not calls:
        return Parsed("no_call")
    return Parsed("calls", calls, None, "python")


# ----------------------------------------------------------------------------- BFCL's value rules
def _std(x):
    """BFCL's standardize_string on a string: drop spaces and , . / - _ * ^, lower-case, ' -> "."""
    if type(x) is not str:
        return x
    return re.sub(r"[ ,./\-_*^]", "", x).lower().replace("'", '"')


def _type_ok(value, acceptable, expected, item_type) -> tuple[bool, bool]:
    """BFCL's type_checker -> (valid, is_variable). A value of the schema's type is valid (an array's
    elements of the item type, one level deep, for some acceptable list; a non-list acceptable value
    such as "" lets any array pass); one of the acceptable values' own type is a "variable"."""
    answer_type = next((type(a) for a in acceptable if a != ""), None)
    if type(value) is expected:
        if item_type is None:
            ok = True
        else:
            # some acceptable value is no list, or the elements all pass against that list's values
            ok = any(
                type(a) is not list or all(_type_ok(v, a, item_type, None)[0] for v in value)
                for a in acceptable
            )
        is_variable = answer_type is not None and answer_type is not expected
        return ok, is_variable
    return answer_type is not None and type(value) is answer_type, True


def _dict_ok(value, acceptable) -> bool:
    """BFCL's dict_checker: some acceptable dict takes every key (its value one of that key's
    acceptable values, strings normalised) and has no other key without ""."""
    if not isinstance(value, dict):
        return False

    def takes(a):
        if not isinstance(a, dict):
            return False
        every_key_ok = all(k in a and _std(v) in [_std(x) for x in a[k]] for k, v in value.items())
        nothing_missing = all(k in value or "" in opts for k, opts in a.items())
        return every_key_ok and nothing_missing

    return any(takes(a) for a in acceptable)


def value_ok(value, acceptable: list, prop: dict) -> bool:
    """One predicted value against BFCL's acceptable values under schema property `prop`, as its
    simple_function_checker judges: an int counts for a `float`, a tuple for a `tuple`; the type
    check; then strings normalised, lists element-wise in order (strings normalised), dicts and
    lists of dicts by `_dict_ok`, anything else (and variables) by Python `in` (1 == 1.0)."""
    expected = _type(prop)
    if expected is None:
        raise ValueError(
            f"BFCL parameter type {prop.get('type')!r}: its checker knows only {', '.join(_TYPES)}"
        )
    item_type = _type(prop.get("items")) if expected is list else None
    if prop["type"] == "tuple" and type(value) is tuple:
        value = list(value)
    if expected is float and type(value) is int:
        value = float(value)
    ok, variable = _type_ok(value, acceptable, expected, item_type)
    if not ok:
        return False
    if variable:
        return value in acceptable
    if expected is dict:
        return _dict_ok(value, acceptable)
    if expected is list and item_type is dict:
        # element-wise against some acceptable list of the same length
        return any(
            isinstance(a, (list, str))
            and len(a) == len(value)
            and all(_dict_ok(v, [d]) for v, d in zip(value, a))
            for a in acceptable
        )
    if expected is str:
        return _std(value) in [_std(a) for a in acceptable if type(a) is str]
    if expected is list:
        normalized = [[_std(x) for x in a] if isinstance(a, (list, str)) else a for a in acceptable]
        return [_std(v) for v in value] in normalized
    return value in acceptable
