"""Side by side: the project's scorer (tasks.run.score_item) against the benchmarks' own
checkers, on gold answers and systematically corrupted ones. Prints, per benchmark, the cases,
the agreements and every kind of disagreement with its count and one example.

    pip install bfcl-eval --no-deps && pip install tenacity tree_sitter==0.21.3 \\
        tree-sitter-java==0.21.0 tree-sitter-javascript==0.21.4 pandas overrides
    git -C <RoTBench mirror> show HEAD:Code/Evaluation/evaluate.py > /tmp/rotbench_evaluate.py
    python experiments/official_checkers.py --rotbench_evaluate /tmp/rotbench_evaluate.py \\
        --rotbench_data ../shared/data/RoTBench [--bfcl_data DIR] [--limit N] [--examples 1]

Neither checker is copied here: BFCL's is the installed `bfcl_eval` package (its eval_runner's
per-entry functions and ast_checker, with the prompting-model decoder), RoTBench's is its
evaluate.py loaded from the path given. Only BFCL's model registry is stubbed (it imports every
vendor's API client; the checker reads one flag from it, underscore_to_dot, False for
prompting models). A test-and-experiment tool, not a project dependency.

BFCL cases are compared on validity (BFCL's "valid" vs the project's CF); RoTBench cases on
each of TS, PI and CF (evaluate.py's ts_eval / pi_eval / cf_eval on one record). Two more
sections check the documented switches: the project's own call format read with
--bfcl_json_literals against BFCL on the same calls in Python literals, and the project's call
format on RoTBench against evaluate.py on the same call in ReAct.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import io
import json
import os
import random
import sys
import types
from collections import Counter, defaultdict
from contextlib import redirect_stdout

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tasks import bfcl, gold_output, load, rotbench  # noqa: E402
from tasks.base import read_json_list, read_jsonl_lines, record_ids  # noqa: E402
from tasks.run import score_item  # noqa: E402
from tl.calls import Call, format_call  # noqa: E402

MODEL = "prompting-model"  # any name: the stubbed registry keeps dotted names for it


# ----------------------------------------------------------------------------- the official checkers


def bfcl_checker():
    """check(category, text, question, ground_truth) -> BFCL's valid (or 'raised: X')."""
    stub = types.ModuleType("bfcl_eval.constants.model_config")

    class Registry(dict):
        def __missing__(self, name):
            return types.SimpleNamespace(underscore_to_dot=False, is_fc_model=False)

    stub.MODEL_CONFIG_MAPPING = Registry()
    sys.modules["bfcl_eval.constants.model_config"] = stub
    from bfcl_eval.constants.enums import Language, ReturnFormat
    from bfcl_eval.eval_checker import eval_runner
    from bfcl_eval.model_handler.utils import default_decode_ast_prompting

    # what a prompting (OSS) model's handler does: base_oss_handler.decode_ast
    handler = types.SimpleNamespace(
        decode_ast=lambda r, language, has_tool_call_tag: default_decode_ast_prompting(
            r, language, has_tool_call_tag
        )
    )

    def check(category, text, question, ground_truth):
        try:
            if category in bfcl.NO_ANSWER_FILE:
                r = eval_runner._evaluate_single_relevance_entry(
                    handler, question["id"], text, question, MODEL, category
                )
            else:
                r = eval_runner._evaluate_single_ast_entry(
                    handler,
                    question["id"],
                    text,
                    ground_truth,
                    question,
                    MODEL,
                    category,
                    Language.PYTHON,
                    ReturnFormat.PYTHON,
                )
            return bool(r["valid"])
        except Exception as e:  # the checker itself failing on an input
            return f"raised {type(e).__name__}"

    return check


def rotbench_checker(path):
    """check(text, record) -> (TS, PI, CF) as RoTBench's evaluate.py counts one record."""
    spec = importlib.util.spec_from_file_location("rotbench_evaluate", path)
    ev = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ev)
    ev.cata_list = [[] for _ in range(7)]

    def check(text, record):
        test = [{"conversations": [{"from": "assistant", "value": text}]}]
        out = []
        for f in (ev.ts_eval, ev.pi_eval, ev.cf_eval):
            ev.check_list = []
            try:
                with redirect_stdout(io.StringIO()):
                    f(test, [copy.deepcopy(record)])
                out.append(bool(ev.check_list[0][0]))
            except Exception as e:
                out.append(f"raised {type(e).__name__}")
        return tuple(out)

    return check


# ----------------------------------------------------------------------------- BFCL cases


def py(calls) -> str:
    """Calls in BFCL's own output format (Python literals)."""
    texts = []
    for name, args in calls:
        written_args = ", ".join(f"{k}={v!r}" for k, v in args.items())
        texts.append(f"{name}({written_args})")
    return "[" + ", ".join(texts) + "]"


def first(options):
    """The first acceptable value that is not "" (omitted)."""
    return next((v for v in options if v != ""), "")


def written(value, prop):
    """A gold value as a model would write it: an acceptable dict ({key: [acceptable values]}) as its
    first acceptable dict, for a dict parameter or each element of a list of dicts."""
    kind = prop.get("type")

    def one(d):
        if not isinstance(d, dict):
            return d
        return {k: first(v) for k, v in d.items() if v and "" not in v}

    if kind == "dict":
        return one(value)
    list_of_dicts = kind in ("array", "tuple") and (prop.get("items") or {}).get("type") == "dict"
    if list_of_dicts and isinstance(value, list):
        return [one(d) for d in value]
    return value


def example_value(prop, rng):
    """A fixed made-up value of the property's BFCL type."""
    return {
        "string": "zzz",
        "integer": 7,
        "float": 2.5,
        "boolean": True,
        "array": ["zzz"],
        "tuple": ["zzz"],
        "dict": {"zzz": 1},
        "any": "zzz",
    }.get(prop.get("type"), "zzz")


def value_variants(v, prop):
    """(kind, new value or a raw source string) for one gold value."""
    out = []
    if isinstance(v, bool):
        out += [("bool_flipped", not v), ("bool_as_str", str(v)), ("bool_as_int", int(v))]
    elif isinstance(v, int):
        out += [
            ("int_plus_1", v + 1),
            ("int_as_float", float(v)),
            ("int_as_str", str(v)),
            ("int_binop", f"src:{v - 1} + 1"),
            ("int_bitwise_expression", f"src:{v} ^ 0"),
            ("int_plus_sign", f"src:+{v}"),
        ]
    elif isinstance(v, float):
        out += [("float_changed", v + 1.5), ("float_as_str", str(v))]
        if v == int(v):
            out.append(("float_as_int", int(v)))
    elif isinstance(v, str):
        out += [
            ("str_changed", v + "zz"),
            ("str_upper_punct", v.upper().replace(" ", "_") + "."),
            ("str_concatenated", f"src:{v[:1]!r} + {v[1:]!r}"),
            ("str_repeated", f"src:{v!r} * 1"),
            ("str_single_quote", v.replace('"', "'") + "'"),
        ]
        if v.isidentifier():
            out.append(("str_bare_identifier", f"src:{v}"))
        if v in ("true", "false", "null", "True", "False", "None"):
            out.append(("str_as_literal", f"src:{v}"))
    elif isinstance(v, list):
        out += [
            ("list_reversed", v[::-1]),
            ("list_dropped", v[:-1]),
            ("list_as_tuple", f"src:{tuple(v)!r}"),
            ("list_nested_int", [int(x) if isinstance(x, float) and x == int(x) else x for x in v]),
            ("list_nested_float", [float(x) if type(x) is int else x for x in v]),
            ("list_nested_str", [str(x) for x in v]),
            ("list_of_list", [v]),
        ]
    elif isinstance(v, dict):
        if v:
            k0 = next(iter(v))
            out += [
                ("dict_key_dropped", {k: x for k, x in v.items() if k != k0}),
                ("dict_value_changed", {**v, k0: "zzz"}),
            ]
        out += [("dict_key_added", {**v, "zzz": 1})]
    out += [("value_none", None)]
    return out


def src_call(name, args) -> str:
    """A call whose values may be raw source (`src:...`)."""
    written_args = []
    for k, v in args.items():
        if isinstance(v, str) and v.startswith("src:"):
            written_args.append(f"{k}={v[4:]}")  # the source text as is
        else:
            written_args.append(f"{k}={v!r}")
    return f"{name}({', '.join(written_args)})"


def bfcl_cases(question, gold, rng):
    """(kind, text) for one BFCL question; `gold` = ground_truth (may be [])."""
    functions = question["function"]
    names = [f["name"] for f in functions] or ["no_function"]
    schema = {f["name"]: f["parameters"] for f in functions}
    calls = []
    for entry in gold:
        ((name, params),) = entry.items()
        if len(gold) == 1 and len(functions) == 1:
            name = functions[0]["name"]  # as BFCL's simple checker reads it (tasks.bfcl.load_category)
        call_schema = schema.get(name, {"properties": {}, "required": []})
        props = call_schema.get("properties", {})
        required = call_schema.get("required", [])
        args = {
            k: written(first(v), props.get(k, {}))
            for k, v in params.items()
            if v and ("" not in v or k in required)
        }
        calls.append((name, args, params, props))
    plain = [(n, a) for n, a, _, _ in calls]
    out = [
        ("gold", py(plain)),
        ("gold_fenced", f"```python\n{py(plain)}\n```"),
        ("gold_spaced", f"  {py(plain)} \n"),
        ("prose", "I am sorry, none of the functions can help."),
        ("empty_list", "[]"),
        ("empty", ""),
        ("react", f"Thought:\nAction: {names[0]}\nAction Input: {{}}"),
        ("json", json.dumps({"name": names[0], "arguments": {}})),
        ("json_literals", format_call([Call(n, a) for n, a in plain]) if plain else f"{names[0]}()"),
    ]
    if not calls:  # irrelevance / relevance: calls of the offered functions
        for f in functions[:3]:
            req = {
                k: example_value(p, rng)
                for k, p in f["parameters"].get("properties", {}).items()
                if k in f["parameters"].get("required", [])
            }
            out += [
                ("call_offered", py([(f["name"], req)])),
                ("call_no_args", f"{f['name']}()"),
                ("call_unclosed", py([(f["name"], req)])[:-2]),
                ("call_made_up", f"made_up_{f['name']}()"),
            ]
        return out
    inner = py(plain)[1:-1]
    out += [
        ("no_brackets", inner),
        ("trailing_text", py(plain) + " Done."),
        ("name_dots_as_underscores", py([(plain[0][0].replace(".", "_"), plain[0][1])] + plain[1:])),
        ("missing_close", "[" + inner),
        ("missing_open", inner + "]"),
        ("newline_separated", "\n".join(py([c])[1:-1] for c in plain)),
        ("unclosed_call", py(plain)[:-2]),
        ("duplicated_call", py(plain + plain[:1])),
        ("extra_call_other", py(plain + [(rng.choice(names), {})])),
        ("made_up_extra_call", py(plain + [("made_up_tool", {"x": 1})])),
        ("wrong_tool_made_up", py([(plain[0][0] + "_x", plain[0][1])] + plain[1:])),
    ]
    if len(plain) > 1:
        out += [
            ("reversed_calls", py(plain[::-1])),
            ("dropped_call", py(plain[1:])),
            ("shuffled_calls", py(rng.sample(plain, len(plain)))),
        ]
    others = [n for n in names if n != plain[0][0]]
    if others:
        out.append(("wrong_tool_offered", py([(others[0], plain[0][1])] + plain[1:])))
    for ci, (name, args, params, props) in enumerate(calls):

        def with_args(a, raw=False, ci=ci, name=name):
            """The gold calls with call `ci`'s arguments replaced by `a` (`raw`: values may be source)."""
            new = list(plain)
            new[ci] = (name, a)
            if raw:
                return "[" + ", ".join(src_call(n, x) for n, x in new) + "]"
            return py(new)

        # every key with an acceptable value, the optional ones included
        full = {}
        for k, v in params.items():
            if first(v) != "" or k in args:
                full[k] = written(first(v), props.get(k, {}))
        out.append(("with_optional_keys", with_args(full)))
        out.append(("extra_key_undeclared", with_args({**args, "zz_extra": 1})))
        unused = [k for k in props if k not in params]
        if unused:
            out.append(
                ("extra_key_declared", with_args({**args, unused[0]: example_value(props[unused[0]], rng)}))
            )
        out.append(("positional_arg", with_args(args).replace(f"{name}(", f"{name}(1, ", 1)))
        for k, v in args.items():
            out.append(("key_dropped", with_args({x: y for x, y in args.items() if x != k})))
            out.append(("key_renamed", with_args({(x + "_x" if x == k else x): y for x, y in args.items()})))
            alts = [o for o in params[k] if o != "" and o != params[k][0]]
            if alts:
                out.append(("alternative_value", with_args({**args, k: written(alts[0], props.get(k, {}))})))
            for kind, nv in value_variants(v, props.get(k, {})):
                out.append(
                    (kind, with_args({**args, k: nv}, raw=isinstance(nv, str) and nv.startswith("src:")))
                )
        for k, v in full.items():
            if k not in args:
                for kind, nv in value_variants(v, props.get(k, {}))[:3]:
                    out.append(
                        (
                            "optional_" + kind,
                            with_args({**args, k: nv}, raw=isinstance(nv, str) and nv.startswith("src:")),
                        )
                    )
    return out


def bfcl_questions(data_dir):
    """[(category, question, ground truth)] paired by position, as BFCL does."""
    out = []
    for category, qfile in bfcl.find_files(data_dir).items():
        questions = [q for _, q in read_jsonl_lines(qfile)]
        if category in bfcl.NO_ANSWER_FILE:
            answers = [None] * len(questions)
        else:
            answer_rows = read_jsonl_lines(qfile.parent / "possible_answer" / qfile.name)
            answers = [a["ground_truth"] for _, a in answer_rows]
        out += [(category, q, a) for q, a in zip(questions, answers)]
    return out


# ----------------------------------------------------------------------------- RoTBench cases


def react(name, args, thought="") -> str:
    """One ReAct step calling `name` with `args`."""
    return f"Thought:{thought}\nAction: {name}\nAction Input: {json.dumps(args, ensure_ascii=False)}"


def rotbench_cases(answers, tools, rng):
    """(kind, text) for one RoTBench record from its acceptable ReAct answers."""
    golds = []  # (name, arguments), read with evaluate.py's fixed offsets
    for a in answers:
        name = a[a.find("Action:") + 8 : a.find("Action Input:")].rstrip("\n")
        golds.append((name, json.loads(a[a.find("Action Input:") + 14 :])))
    names = [t["name"] for t in tools]
    out = [(f"gold_text_{i}", a) for i, a in enumerate(answers[:3])]
    name, args = golds[0]
    others = [n for n in names if n != name]
    out += [
        ("gold_reserialized", react(name, args)),
        ("thought_text", react(name, args, " I will call the tool.")),
        ("trailing_observation", react(name, args) + "\nObservation:"),
        ("trailing_newline", react(name, args) + "\n"),
        ("no_space_after_action", react(name, args).replace("Action: ", "Action:")),
        ("no_space_after_input", react(name, args).replace("Action Input: ", "Action Input:")),
        ("name_trailing_space", react(name + " ", args)),
        ("name_quoted", react(f'"{name}"', args)),
        ("input_json_string", f"Thought:\nAction: {name}\nAction Input: {json.dumps(json.dumps(args))}"),
        ("input_python_dict", f"Thought:\nAction: {name}\nAction Input: {args!r}"),
        ("input_empty", react(name, {})),
        ("input_missing", f"Thought:\nAction: {name}\n"),
        ("two_actions", react(name, args) + "\n" + react(name, args)),
        ("fenced", "```\n" + react(name, args) + "\n```"),
        ("final_answer", "Thought: done\nFinal Answer: 42"),
        ("made_up_tool", react(name + "_x", args)),
        ("finish_literal", react("finish", args)),
        ("ask_literal", react("ask_to_user", args)),
    ]
    if others:
        out += [("wrong_tool", react(rng.choice(others), args))]
    for k, v in args.items():
        out += [
            ("key_dropped", react(name, {x: y for x, y in args.items() if x != k})),
            ("key_renamed", react(name, {(x + "_x" if x == k else x): y for x, y in args.items()})),
            ("value_changed", react(name, {**args, k: str(v) + "zz"})),
            ("value_as_number", react(name, {**args, k: 1})),
            ("value_as_bool", react(name, {**args, k: True})),
            ("value_none_string", react(name, {**args, k: "None"})),
        ]
    out += [("key_added", react(name, {**args, "zz_extra": "x"}))]
    for alt_name, alt_args in golds[1:3]:  # a mix of two acceptable answers
        out += [
            ("other_gold_name_first_args", react(alt_name, args)),
            ("first_gold_name_other_args", react(name, alt_args)),
        ]
    return out


# ----------------------------------------------------------------------------- running


class Tally:
    """Cases, agreements, and per kind of disagreement its count and up to `limit` examples."""

    def __init__(self):
        self.n = self.agree = 0
        self.kinds = Counter()
        self.examples = defaultdict(list)

    def add(self, same: bool, kind: str, example: str, limit: int):
        self.n += 1
        self.agree += same
        if not same:
            self.kinds[kind] += 1
            if len(self.examples[kind]) < limit:
                self.examples[kind].append(example)

    def report(self, title):
        print(f"\n## {title}\ncases {self.n}, agree {self.agree}, disagree {self.n - self.agree}")
        for kind, count in self.kinds.most_common():
            print(f"  {count:6d}  {kind}")
            for ex in self.examples[kind]:
                print(f"          e.g. {ex}")


def run_bfcl(args, rng):
    check = bfcl_checker()
    data = args.bfcl_data or bfcl.package_data_dir()
    items = {it.id: it for it in load("bfcl", data)[0].items}
    main = Tally()
    literals = Tally()  # the --bfcl_json_literals section
    per_cat = Counter()
    gold_invalid = []
    for category, q, gt in bfcl_questions(data)[: args.limit]:
        item = items[q["id"]]
        for kind, text in [("project_gold_output", gold_output(item)), *bfcl_cases(q, gt or [], rng)]:
            official = check(category, text, q, gt)
            ours = score_item(item, text)["CF"]
            per_cat[category] += 1
            where = f"{q['id']}: {text[:160]!r} official={official} project={ours}"
            main.add(official == ours, f"{kind} (official {official}, project {ours})", where, args.examples)
            if kind == "project_gold_output" and official is not True:
                gold_invalid.append(q["id"])
            if kind == "json_literals" and gt:
                # --bfcl_json_literals: the project's format vs BFCL on the same calls in Python literals
                gold_text = next(t for k, t in bfcl_cases(q, gt, rng) if k == "gold")
                official = check(category, gold_text, q, gt)
                ours = score_item(item, text, bfcl_json_literals=True)["CF"]
                literals.add(
                    official == ours,
                    f"project format with --bfcl_json_literals (official {official}, project {ours})",
                    f"{q['id']}: {text[:160]!r}",
                    args.examples,
                )
    main.report(f"BFCL ({', '.join(f'{c} {n}' for c, n in per_cat.items())} cases)")
    print(f"  tasks.gold_output answers BFCL itself rejects: {gold_invalid}")
    literals.report(
        "BFCL, --bfcl_json_literals: format_call output vs BFCL on the same calls in Python literals"
    )


def run_rotbench(args, rng):
    check = rotbench_checker(args.rotbench_evaluate)
    main = Tally()
    equivalent = Tally()  # the project's call format vs evaluate.py on ReAct
    files = rotbench.find_files(args.rotbench_data)
    for f in files:
        records = read_json_list(f)
        unit = rotbench.load_file(f)
        items = {it.id: it for it in unit.items}
        for rec, rid in list(zip(records, record_ids(records, f)))[: args.limit]:
            item = items[rid]
            answers = rec["conversations"][-1]["value"]
            tools = rotbench.tool_list_from_prompt(rec["conversations"][0]["value"], f)
            for kind, text in rotbench_cases(answers, tools, rng):
                official = check(text, rec)
                scored = score_item(item, text)
                ours = tuple(scored[stage] for stage in ("TS", "PI", "CF"))
                main.add(
                    official == ours,
                    f"{kind} (official TS/PI/CF {official}, project {ours})",
                    f"{f.parent.name}/{f.stem} {rid[:40]!r}: {text[:160]!r}",
                    args.examples,
                )
            # the project's own call format vs evaluate.py on the same call in ReAct
            for gold in item.gold[:2]:
                official = check(react(gold.name, gold.arguments), rec)
                scored = score_item(item, format_call(gold))
                ours = tuple(scored[stage] for stage in ("TS", "PI", "CF"))
                equivalent.add(
                    official == ours,
                    f"official on ReAct {official}, project on format_call {ours}",
                    f"{rid[:40]!r}: {format_call(gold)[:120]!r}",
                    args.examples,
                )
    main.report(f"RoTBench ({len(files)} files; each case compared on (TS, PI, CF))")
    equivalent.report("RoTBench: the project's call format vs evaluate.py on the same call in ReAct")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rotbench_evaluate", help="path of RoTBench's Code/Evaluation/evaluate.py")
    p.add_argument("--rotbench_data", help="RoTBench's Data folder (First_Turn/, Third_Turn/) or one file")
    p.add_argument("--bfcl_data", help="BFCL_v3_*.json folder (default: the bfcl-eval package's data)")
    p.add_argument("--skip_bfcl", action="store_true")
    p.add_argument("--limit", type=int, help="records per file / BFCL questions")
    p.add_argument("--examples", type=int, default=1, help="examples shown per disagreement kind")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    rng = random.Random(args.seed)
    if not args.skip_bfcl:
        run_bfcl(args, rng)
    if args.rotbench_evaluate and args.rotbench_data:
        run_rotbench(args, rng)


if __name__ == "__main__":
    main()
