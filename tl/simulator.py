"""The offline stand-in for ToolEyes' live web APIs: validate each call, fabricate an answer.

ToolEyes' 95 tool groups call real web services (weather, finance, search, ...) that cannot be
reached offline, and their answers change over time anyway. DE/CE/VA only need to know whether
a *call* was right, so the simulator does exactly two things:

1. Validation against the task's tool schemas with the sandbox's own function
   (`tl.sandbox.validate_call`), so the feedback is worded like Python's errors and classified
   like every other feedback: unknown tool -> `NameError: name 'x' is not defined`
   (tool_hallucination), extra key -> `... got an unexpected keyword argument 'x'`
   (param_hallucination), missing required key -> `... missing 1 required positional argument`
   (param_missing), wrong JSON type -> `... argument 'n' must be str, not int` (others, a CE).
   The type check is stricter than the original Python tools, which mostly accept any value.
2. For a valid call, a deterministic made-up output: a JSON object naming the tool, echoing the
   arguments and carrying a result string derived from a hash of the call, so the same call
   always gets the same answer and different calls get different ones. It contains no real data:
   a model cannot learn facts from it, only that its call went through. `ask_to_user` is
   answered with a fixed reply that there is no further information (nobody is there to ask).

What it does not simulate: tool failures and instability (real APIs time out, rate-limit and
return errors), semantic checks (a valid call with a nonsense value succeeds), and outputs whose
content the model's next step depends on.
"""

from __future__ import annotations

import hashlib
import json

from tl.sandbox import Result, validate_call
from tl.calls import Call, normalize_tools

ASK_TO_USER = "ask_to_user"
NO_USER_REPLY = "The user has no further information to add. Continue with what you have."


def fabricate_output(call: Call, tool: dict) -> str:
    """A deterministic, plausible-looking JSON output for a valid call (see the module docstring)."""
    key = json.dumps([call.name, call.arguments], sort_keys=True, ensure_ascii=False)
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
    what = tool.get("description", "").strip().split("\n")[0][:120] or call.name
    return json.dumps({"status": "success", "tool": call.name, "arguments": call.arguments,
                       "result": f"[simulated {digest[:12]}] {what}"}, ensure_ascii=False)


class Simulator:
    """`Simulator(tools).run(call) -> tl.sandbox.Result`, the executor interface of tl.episode."""

    def __init__(self, tools):
        self.tools = {t["name"]: t for t in normalize_tools(tools)}

    def run(self, call) -> Result:
        call = Call.from_dict(call)
        failed = validate_call(call, self.tools)
        if failed is not None:
            return failed
        if call.name == ASK_TO_USER:
            return Result(True, NO_USER_REPLY)
        return Result(True, fabricate_output(call, self.tools[call.name]))
