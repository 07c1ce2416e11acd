"""Isolated tool execution: `Sandbox(tools).run(call) -> Result`.

    with Sandbox(TOOLS) as box:
        r = box.run(Call("get_weather_current", {"city": "Paris"}))
        r.ok, r.output, r.category, r.message, r.feedback   # feedback = what follows `Output:`

Contract: `run` never raises for a Call (only once closed); whatever the tool's code does or writes,
the caller returns a consistent Result: ok=True has category all_right, no message and at most
`max_output` characters of output (else the output-limit error); ok=False has no output, another
category of tl.classify.FEEDBACK_CATEGORIES and a message of at most 1,024 characters such that
`classify_feedback(message) == category` (a reply breaking this is a `500 Server Error`); strings are
valid UTF-8 (lone surrogates -> U+FFFD). Validation (in the caller; `validate_call` is public) is
worded like Python: `NameError: name 'x' is not defined` (tool_hallucination), `TypeError: f() got an
unexpected keyword argument 'x'` (param_hallucination), `... missing 1 required positional argument:
'y'` (param_missing), `... argument 'n' must be int, not str` (others). A tool's exception reads as a
traceback's last line, `Name: message` (or `Name`) for names ending in Error/Exception and built-in
exceptions, else `Error: Name: message`; timeouts, crashes, memory, output limits: tool_instability.

A warm worker (tl/sandbox_worker.py: scrubbed environment, tools imported) forks a child per call in a
fresh empty scratch dir, fds 0-2 on /dev/null and no other, under RLIMIT_AS (memory_mb), CPU, FSIZE, NOFILE, CORE = 0,
NPROC = 0; every wait ends at the call's deadline, then the child is killed. `Sandbox.isolation`
reports the layers: network (root: the worker's own network namespace; else seccomp bans AF_INET/6
too); readonly_fs (root: a mount namespace, read-only but scratch); disk_quota (root: each call's
scratch is its own tmpfs of 4 x max_file_mb, unmounted after it); separate_uid (root: an unused uid per
worker, no groups); ipc (root: an IPC namespace per call); seccomp (x86_64, aarch64; root not needed):
EPERM for socket families but AF_INET/6 (Unix, VSOCK, netlink, packet), SysV IPC, POSIX mqueues,
keyrings, memfd, clone/fork/exec, signals, ptrace, process_vm_*, io_uring, bpf, perf, userfaultfd,
mounts, namespaces, file handles, modules. Not bubblewrap/nsjail: they start a process per use, so per
call they cost a fresh interpreter (~50 ms: under 100 calls/s on 2 cores), and around the worker only
they leave the per-call layers here anyway; neither is installed here, many clusters cannot add a
system package or setuid helper, and the install stays pip-only. They would add a PID namespace.

NOT covered: kernel exploits through the allowed syscalls, side channels (no VM); no PID namespace
(other processes' /proc/<pid>/cmdline) and world-readable files (/etc/passwd, the Python install) stay
readable; no cgroup (RLIMIT_AS bounds a call's memory, not kernel memory such as pipe buffers). Without
root the child is the caller's user: it reads and writes that user's files (/tmp, /dev/shm carry data
to later calls), disk is bounded per file only, the network is cut by seccomp only. Without seccomp
(another architecture) it can also signal the caller, and host Unix sockets, VSOCK, memfd, keyrings
stay open. Root without CAP_SETUID keeps the child root. `run_in_process` has no isolation at all.
"""
import builtins
import contextlib
import io
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection

from tl.classify import (ALL_RIGHT, FEEDBACK_CATEGORIES, OTHERS, PARAM_HALLUCINATION, PARAM_MISSING,
                         TOOL_HALLUCINATION, TOOL_INSTABILITY, classify_feedback)
from tl.calls import Call

# Imported by the worker before it isolates itself: after the uid drop the child may be unable to read
# the Python install (e.g. a pyenv under /root), so model code can import only what is loaded. These
# cover short scripts and what attacks reach for (encodings.idna: for socket.create_connection).
PRELOAD = ("math", "cmath", "json", "re", "datetime", "itertools", "functools", "collections", "statistics",
           "random", "string", "decimal", "fractions", "textwrap", "heapq", "bisect", "operator", "calendar",
           "time", "socket", "subprocess", "shutil", "pathlib", "ctypes", "encodings.idna")
_IN_CHILD = False  # set in a sandbox child process, read by tools that must never run elsewhere
_UID_BASE = 1_000_000  # child uid = _UID_BASE + (owner pid << 8) + worker slot: unused, one per worker
_FIELDS = ("ok", "output", "category", "message")


def in_sandbox_child() -> bool:
    """True only inside a sandbox child process (after its limits were applied)."""
    return _IN_CHILD


@dataclass(frozen=True)
class Result:
    """The outcome of one call. category: a feedback category of tl.classify; feedback: the text that
    follows `Output:` in the prompt; to_dict(): the `result` field of a trajectory's tool message."""

    ok: bool
    output: str = ""
    category: str = ALL_RIGHT
    message: str = ""

    @property
    def feedback(self) -> str:
        return self.output if self.ok else self.message

    def to_dict(self) -> dict:
        return {"ok": self.ok, "category": self.category, "message": self.message}


def _fail(category: str, message: str) -> Result:
    return Result(False, "", category, message)


def _output_limit(size: int, limit: int) -> Result:
    return _fail(TOOL_INSTABILITY, f"500 Server Error: output limit exceeded ({size} characters, the limit is {limit})")


def _utf8(s: str) -> str:  # untrusted text may hold lone surrogates, which UTF-8 cannot encode
    return s if s.isascii() else s.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _exception_result(e: BaseException) -> Result:
    """An exception as a traceback's last line, worded so that tl.classify reads it as a failure."""
    name, text, builtin = type(e).__name__[:100], "", getattr(builtins, type(e).__name__, None)
    with contextlib.suppress(Exception):  # a custom __str__ may fail
        text = str(e)
    if not (name.isidentifier() and (name.endswith(("Error", "Exception")) or isinstance(builtin, type)
                                     and issubclass(builtin, BaseException) and not name.endswith("Warning"))):
        name = f"Error: {name}"  # `Boom: x` would read as an ordinary output
    message = _utf8(name + (": " + (text if len(text) <= 500 else text[:500] + "...") if text else ""))
    return _fail(classify_feedback(message), message)


class OutputLimitExceeded(Exception):
    pass


class CappedStringIO(io.StringIO):
    """A text sink that raises OutputLimitExceeded once more than `limit` characters are written."""

    def __init__(self, limit: int):
        super().__init__()
        self.limit, self.size = limit, 0

    def write(self, s):
        self.size += len(s)
        if self.size > self.limit:
            raise OutputLimitExceeded(f"more than {self.limit} characters printed")
        return super().write(s)


_JSON_TYPES = {"string": ((str,), "str"), "integer": ((int,), "int"), "number": ((int, float), "float"),
               "boolean": ((bool,), "bool"), "array": ((list,), "list"), "object": ((dict,), "dict"),
               "null": ((type(None),), "NoneType")}  # exact types: a bool is no int, as in JSON


def validate_call(call, schemas) -> Result | None:
    """Check a call against the tool schemas (a {name: schema} dict or a list of schemas): None when
    it may run, else the failed Result with Python's wording, in Python's order (unknown name,
    unexpected keyword, missing required, wrong type). None for an optional parameter = not given."""
    call = Call.from_dict(call)
    schema = (schemas if isinstance(schemas, dict) else {s["name"]: s for s in schemas}).get(call.name)
    if schema is None:
        return _fail(TOOL_HALLUCINATION, f"NameError: name '{call.name}' is not defined")
    props, required = schema["parameters"].get("properties", {}), schema["parameters"].get("required", [])
    for key in call.arguments:
        if key not in props:
            return _fail(PARAM_HALLUCINATION, f"TypeError: {call.name}() got an unexpected keyword argument '{key}'")
    if missing := [f"'{k}'" for k in required if k not in call.arguments]:  # 'a' / 'a' and 'b' / 'a', 'b', and 'c'
        listed = " and ".join(missing) if len(missing) <= 2 else ", ".join(missing[:-1]) + ", and " + missing[-1]
        return _fail(PARAM_MISSING, f"TypeError: {call.name}() missing {len(missing)} required positional "
                                    f"argument{'s' if len(missing) > 1 else ''}: {listed}")
    for key, value in call.arguments.items():
        types, py_name = _JSON_TYPES.get(props[key].get("type"), (None, None))
        if types and type(value) not in types and not (value is None and key not in required):
            return _fail(OTHERS, f"TypeError: {call.name}() argument '{key}' must be {py_name}, not {type(value).__name__}")
    return None


def _given_arguments(call: Call, schema: dict) -> dict:
    required = schema["parameters"].get("required", [])  # None for an optional parameter: its default
    return {k: v for k, v in call.arguments.items() if v is not None or k in required}


def _invoke(fn, arguments: dict, max_output: int) -> Result:
    """Call a tool and word the outcome; shared by the sandbox child and run_in_process."""
    try:
        value = fn(**arguments)
        output = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    except MemoryError:
        return _fail(TOOL_INSTABILITY, "500 Server Error: the tool ran out of memory")
    except OutputLimitExceeded as e:
        return _fail(TOOL_INSTABILITY, f"500 Server Error: output limit exceeded ({e})")
    except BaseException as e:  # the tool's own failure
        if isinstance(e, KeyboardInterrupt) and not _IN_CHILD:
            raise  # Ctrl-C in the caller's own process is the user's, not the tool's
        return _exception_result(e)
    return _output_limit(len(output), max_output) if len(output) > max_output else Result(True, _utf8(output))


def run_in_process(tools, call, *, max_output: int = 8192) -> Result:
    """Validate and run a call in *this* process, with the sandbox's validation and wording but no
    isolation at all. For trusted tools only; it refuses `run_python`, which must run in a Sandbox."""
    tools, call = _tool_dict(tools), Call.from_dict(call)
    failed = validate_call(call, {n: t.schema for n, t in tools.items()})
    if failed is None and call.name == "run_python":
        raise ValueError("run_in_process: run_python executes model-written code; run it in a Sandbox")
    return failed or _invoke(tools[call.name].fn, _given_arguments(call, tools[call.name].schema), max_output)


def _tool_dict(tools) -> dict:  # {name: tool} from a dict or a list of objects with .schema and .fn
    return dict(tools) if isinstance(tools, dict) else {t.schema["name"]: t for t in tools}


# ----------------------------------------------------------------------------- the caller's side


def _remove_tree(path: str):
    """Delete a tree whatever its depth and modes, best effort and never raising: rmdir or rmtree, else
    coreutils, which walk it iteratively (Python 3.11's rmtree recurses: a deep tree makes it raise)."""
    with contextlib.suppress(OSError):
        return os.rmdir(path)  # the common case: nothing left
    with contextlib.suppress(Exception):
        return shutil.rmtree(path)
    for argv in (["chmod", "-R", "u+rwx", path], ["rm", "-rf", path]):  # a child as our own user may lock dirs
        with contextlib.suppress(Exception):
            subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           timeout=600)


_BOOT = ("import json, sys; from multiprocessing.connection import Connection; conn = Connection(0); "
         "hello = json.loads(conn.recv_bytes()); sys.path[:0] = hello['sys_path']; "
         "import tl.sandbox_worker; tl.sandbox_worker.main(hello, conn)")


class _Worker:
    """The caller's handle on one worker process: a socket channel, replies read with a deadline. Its
    stderr is the caller's (only the worker's own crashes reach it; a child's goes to /dev/null)."""

    def __init__(self, hello: dict, slot: int):
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "HOME": hello["scratch_root"],
               "TMPDIR": hello["scratch_root"], "PYTHONDONTWRITEBYTECODE": "1"}
        ours, theirs = socket.socketpair()
        with theirs:
            self.proc = subprocess.Popen([sys.executable, "-I", "-c", _BOOT], stdin=theirs, stdout=subprocess.DEVNULL,
                                         env=env, cwd=hello["scratch_root"], start_new_session=True)
        self.slot, self.conn = slot, Connection(ours.detach())
        self.conn.send_bytes(json.dumps(hello).encode())

    def ask(self, request: str | None, timeout: float) -> dict:
        """Send a request (if any) and read the reply within `timeout` s; EOFError if none comes."""
        try:
            if request is not None:
                self.conn.send_bytes(request.encode())
            if not self.conn.poll(timeout):
                raise EOFError(f"no answer within {timeout:g} s")
            return json.loads(self.conn.recv_bytes())
        except (OSError, EOFError) as e:
            raise EOFError(str(e) or "the worker process exited") from None

    def kill(self):
        with contextlib.suppress(OSError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # the worker and any child it has running
        self.proc.wait()
        self.conn.close()


def _checked(reply: dict, max_output: int) -> Result:
    """A worker's reply as a Result that keeps the contract, whatever the tool's code wrote."""
    ok, output, category, message = (reply.get(k) for k in _FIELDS)
    if ok is True and category == ALL_RIGHT and message == "" and isinstance(output, str):
        return Result(True, _utf8(output)) if len(output) <= max_output else _output_limit(len(output), max_output)
    if ok is False and category in FEEDBACK_CATEGORIES and category != ALL_RIGHT and isinstance(message, str) \
            and 0 < len(message) <= 1024 and classify_feedback(_utf8(message)) == category:
        return _fail(category, _utf8(message))
    return _fail(TOOL_INSTABILITY, "500 Server Error: the tool process sent a malformed result")


def _shutdown(workers: list, root: str):
    for w in workers:
        with contextlib.suppress(Exception):
            w.kill()
    _remove_tree(root)


class Sandbox:
    """Runs tool calls in warm, isolated worker processes (see the module docstring).

    tools: a {name: Tool} dict or a list of Tools (tasks.toolbox.Tool or anything with `.fn` and
    `.schema`); each `fn` must be a module-level function of an importable module (workers import it
    by name). timeout: wall-clock seconds per call; memory_mb: the child's address-space limit;
    max_output: the longest output (characters) returned; workers: warm processes (calls run in
    parallel through `map`). Thread-safe. Close it (or use `with`) to stop the workers.
    """

    def __init__(self, tools, *, timeout: float = 5.0, memory_mb: int = 512, max_output: int = 8192,
                 workers: int = 2, max_file_mb: int = 16):
        self.tools = _tool_dict(tools)
        self.schemas = {name: t.schema for name, t in self.tools.items()}
        self.timeout, self.max_output = timeout, max_output
        where = {n: (getattr(t.fn, "__module__", None), getattr(t.fn, "__qualname__", "")) for n, t in self.tools.items()}
        for name, (module, qualname) in where.items():
            if not module or module == "__main__" or "<locals>" in qualname:
                raise ValueError(f"Sandbox: tool {name!r} must be a module-level function of an importable module "
                                 f"(workers import it by name); found {module}.{qualname}")
        self._root = tempfile.mkdtemp(prefix="tl-sandbox-")
        os.chmod(self._root, 0o755)
        tl_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        self._hello = {"sys_path": [tl_root] + [p for p in sys.path if p], "tools": where, "limits": {
            "timeout": timeout, "memory_mb": memory_mb, "max_output": max_output, "max_file_mb": max_file_mb}}
        self._workers: list[_Worker] = []
        self._finalizer = weakref.finalize(self, _shutdown, self._workers, self._root)
        self._idle, self._lock, self._pool, self._closed = queue.Queue(), threading.Lock(), None, False
        started = [self._start(slot) for slot in range(workers)]  # all start at once, then handshake
        self.isolation = [self._handshake(w) for w in started][0]
        for w in started:
            self._idle.put(w)

    def _start(self, slot: int) -> _Worker:
        scratch_root = tempfile.mkdtemp(prefix=f"w{slot}-", dir=self._root)
        os.chmod(scratch_root, 0o755)
        w = _Worker(dict(self._hello, scratch_root=scratch_root, uid=_UID_BASE + (os.getpid() << 8) + slot % 256), slot)
        with self._lock:
            self._workers.append(w)
        return w

    def _handshake(self, w: _Worker) -> dict:
        try:
            reply = w.ask(None, 60.0)
        except EOFError as e:
            reply = {"error": f"{e}; see its stderr"}
        if not reply.get("ready"):
            raise RuntimeError(f"Sandbox: a worker failed to start: {reply.get('error')}")
        return reply["isolation"]

    def _replace(self, w: _Worker) -> _Worker:
        w.kill()
        with self._lock:
            if w in self._workers:
                self._workers.remove(w)
        self._handshake(fresh := self._start(w.slot))
        return fresh

    def run(self, call) -> Result:
        """Validate and execute one call. Never raises for what the call holds or the tool does (only
        when the sandbox is closed); the Result keeps the contract of the module docstring."""
        if self._closed:
            raise RuntimeError("Sandbox.run: the sandbox is closed")
        try:
            call = Call.from_dict(call)
            if (failed := validate_call(call, self.schemas)) is not None:
                return Result(False, "", failed.category, _utf8(failed.message))
            req = json.dumps({"name": call.name, "arguments": _given_arguments(call, self.schemas[call.name])})
        except Exception as e:  # a Call built in Python with, say, a set in it or a list for a name
            return _exception_result(e)
        w = self._idle.get()
        try:
            if w.proc.poll() is not None:  # killed from outside while idle: replace it before use
                w = self._replace(w)
            try:
                return _checked(w.ask(req, self.timeout + 10.0), self.max_output)
            except EOFError as e:  # the worker itself died or hung
                w = self._replace(w)
                return _fail(TOOL_INSTABILITY, f"500 Server Error: the sandbox worker was lost ({e})")
        except Exception as e:  # e.g. no replacement worker could start; the next call tries again
            return _fail(TOOL_INSTABILITY, f"500 Server Error: the sandbox failed ({_exception_result(e).message})")
        finally:
            self._idle.put(w)

    def map(self, calls) -> list[Result]:
        """Run many calls, spread over the workers in parallel; results in input order."""
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max(1, len(self._workers)), thread_name_prefix="tl-sandbox")
        return list(self._pool.map(self.run, calls))

    def worker_pids(self) -> list[int]:
        with self._lock:
            return [w.proc.pid for w in self._workers]

    def close(self):
        """Stop the workers and remove every file the sandbox made; never raises."""
        self._closed = True
        with contextlib.suppress(Exception):
            if self._pool is not None:
                self._pool.shutdown()
        self._finalizer()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
