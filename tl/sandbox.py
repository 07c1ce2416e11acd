"""Isolated tool execution: `Sandbox(tools).run(call) -> Result`.

    with Sandbox(TOOLS) as box:
        r = box.run(Call("get_weather_current", {"city": "Paris"}))
        r.ok, r.output, r.category, r.message, r.feedback   # feedback = what follows `Output:`

How a call runs:
1. Validation, in the caller, against the tool's schema. Failures are worded like Python's own
   errors and never reach a worker: unknown tool -> `NameError: name 'x' is not defined`
   (tool_hallucination); extra key -> `TypeError: f() got an unexpected keyword argument 'x'`
   (param_hallucination); missing key -> `TypeError: f() missing 1 required positional argument:
   'y'` (param_missing); wrong JSON type -> `TypeError: f() argument 'n' must be int, not str`
   (others). `validate_call` is public so a simulator can give the same feedback.
2. Execution in a warm worker: a pre-started Python process (`subprocess`, scrubbed environment)
   that has imported the tools. For every call the worker forks a *fresh child*, so no call can
   corrupt the worker or see what an earlier call left behind (this holds for `run_python` too:
   model-written code always runs in a throw-away process). Forking a warm interpreter costs about
   a millisecond; starting Python costs ~50x that.
3. The child chdirs into a fresh scratch directory (deleted afterwards), redirects fds 0-2 to
   /dev/null, closes every other inherited fd, and sets rlimits: RLIMIT_AS (memory_mb),
   RLIMIT_CPU, RLIMIT_FSIZE, RLIMIT_NOFILE, RLIMIT_CORE = 0 and RLIMIT_NPROC = 0 (it cannot start
   a process or a thread: a fork bomb fails at its first fork). The worker kills it at the
   wall-clock timeout and caps the size of what it sends back.
4. When the caller is root, each worker also enters its own network namespace (no interfaces but
   a downed loopback: no network at all) and mount namespace (the whole filesystem re-mounted
   read-only except the scratch directory), and each child drops to an unused uid/gid (unique per
   Sandbox, no supplementary groups) before running the tool: it can neither signal the caller
   nor read files only root can read, such as other processes' /proc/<pid>/environ. Without root
   the sandbox tries an unprivileged user+network namespace for the network and skips the rest.
   `Sandbox.isolation` reports what was actually applied.

Feedback categories (`tl.classify`): ok -> all_right; validation errors as above; an exception
raised by the tool -> tool_call_failure (`ValueError: unknown city 'Pariss'`); a timeout, a
crash, the memory limit or the output cap -> tool_instability, worded so that
`tl.classify.classify_feedback(result.feedback) == result.category` (`TimeoutError: ... timed
out ...`, `500 Server Error: ...`).

What it does NOT protect against -- this is process isolation, not a VM or a seccomp jail:
- Kernel exploits and side channels: the child still talks to the same kernel with the full
  syscall surface (no seccomp filter).
- Without root: the child runs as the caller's user, so it can signal (kill) the caller and its
  other processes, and read and write everything that user can; the network is cut only if
  unprivileged user namespaces are allowed. Only the rlimits, the timeout, the scratch cwd, the
  scrubbed environment and the closed fds apply.
- With root, files readable by everyone (e.g. /etc/passwd, the Python install) can be read, and
  the child can still signal the other children of the same Sandbox (same uid) running at the
  same time.
- CPU and memory are limited per call, not in total; disk use is limited per file (RLIMIT_FSIZE)
  and by the scratch filesystem, not in total; there is no cgroup.
- Tools that run in-process (`run_in_process`, used by the synthetic data generator for the
  trusted toolbox functions) get validation and error wording but no isolation at all.
Linux only (namespaces, prctl, mount_setattr via ctypes). Where root is not available the
sandbox silently degrades to the non-root guarantees above; check `Sandbox.isolation` if you
rely on more. Root without CAP_SETUID (some containers) keeps the child root: then
RLIMIT_NPROC does not bind and a fork bomb is not stopped.
"""
from __future__ import annotations

import ctypes
import io
import json
import math
import os
import queue
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

from tl.classify import (ALL_RIGHT, FEEDBACK_CATEGORIES, OTHERS, PARAM_HALLUCINATION, PARAM_MISSING,
                         TOOL_CALL_FAILURE, TOOL_HALLUCINATION, TOOL_INSTABILITY)
from tl.schema import Call

# Modules the worker imports before it isolates itself. After the uid drop the child may be unable
# to read the Python installation (e.g. a pyenv under /root), so model code can only import what is
# already loaded; these cover what short scripts use, plus the modules attacks reach for (so that
# a test of, say, a socket attack hits the real barrier, not an ImportError).
PRELOAD = ("math", "cmath", "json", "re", "datetime", "itertools", "functools", "collections", "statistics",
           "random", "string", "decimal", "fractions", "textwrap", "heapq", "bisect", "operator", "calendar",
           "time", "socket", "subprocess", "shutil", "pathlib", "ctypes")

_IN_CHILD = False  # set in a sandbox child process, read by tools that must never run elsewhere
_UID_BASE = 1_000_000  # sandbox uids are _UID_BASE + the owning process's pid: unused, unique per process


def in_sandbox_child() -> bool:
    """True only inside a sandbox child process (after its limits were applied)."""
    return _IN_CHILD


@dataclass(frozen=True)
class Result:
    """The outcome of one call. category: a feedback category of tl.classify."""

    ok: bool
    output: str = ""
    category: str = ALL_RIGHT
    message: str = ""

    @property
    def feedback(self) -> str:
        """The text that follows `Output:` in the prompt: the output, or the error message."""
        return self.output if self.ok else self.message

    def to_dict(self) -> dict:
        """The `result` field of a trajectory's tool message."""
        return {"ok": self.ok, "category": self.category, "message": self.message}


def _fail(category: str, message: str) -> Result:
    return Result(False, "", category, message)


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


# ----------------------------------------------------------------------------- validation

_PY_TYPES = {"string": "str", "integer": "int", "number": "float", "boolean": "bool", "array": "list",
             "object": "dict", "null": "NoneType"}


def _type_ok(value, json_type: str | None) -> bool:
    if json_type == "number":
        return type(value) in (int, float)
    expected = {"string": str, "integer": int, "boolean": bool, "array": list, "object": dict,
                "null": type(None)}.get(json_type)
    return expected is None or type(value) is expected  # bool is not an int here, as in JSON


def _quoted_list(names) -> str:
    """Python's wording: 'a' / 'a' and 'b' / 'a', 'b', and 'c'."""
    q = [f"'{n}'" for n in names]
    return q[0] if len(q) == 1 else f"{q[0]} and {q[1]}" if len(q) == 2 else ", ".join(q[:-1]) + ", and " + q[-1]


def validate_call(call, schemas) -> Result | None:
    """Check a call against the tool schemas (a {name: schema} dict or a list of schemas).

    Returns None when the call may run, else the failed Result with Python's wording, checked in
    Python's own order: unknown name, unexpected keyword, missing required, wrong type. A None
    value for an optional parameter means "not given".
    """
    call = Call.from_dict(call)
    if not isinstance(schemas, dict):
        schemas = {s["name"]: s for s in schemas}
    schema = schemas.get(call.name)
    if schema is None:
        return _fail(TOOL_HALLUCINATION, f"NameError: name '{call.name}' is not defined")
    props = schema["parameters"].get("properties", {})
    required = schema["parameters"].get("required", [])
    for key in call.arguments:
        if key not in props:
            return _fail(PARAM_HALLUCINATION, f"TypeError: {call.name}() got an unexpected keyword argument '{key}'")
    missing = [k for k in required if k not in call.arguments]
    if missing:
        plural = "argument" if len(missing) == 1 else "arguments"
        return _fail(PARAM_MISSING, f"TypeError: {call.name}() missing {len(missing)} required positional "
                                    f"{plural}: {_quoted_list(missing)}")
    for key, value in call.arguments.items():
        json_type = props[key].get("type")
        if value is None and key not in required:
            continue
        if not _type_ok(value, json_type):
            return _fail(OTHERS, f"TypeError: {call.name}() argument '{key}' must be "
                                 f"{_PY_TYPES.get(json_type, json_type)}, not {type(value).__name__}")
    return None


def _given_arguments(call: Call, schema: dict) -> dict:
    """The keyword arguments to pass: None for an optional parameter means "use the default"."""
    required = schema["parameters"].get("required", [])
    return {k: v for k, v in call.arguments.items() if v is not None or k in required}


def _invoke(fn, arguments: dict, max_output: int) -> Result:
    """Call a tool and word the outcome. Shared by the sandbox child and run_in_process, so both
    give byte-identical results."""
    try:
        value = fn(**arguments)
        output = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    except MemoryError:
        return _fail(TOOL_INSTABILITY, "500 Server Error: the tool ran out of memory")
    except OutputLimitExceeded as e:
        return _fail(TOOL_INSTABILITY, f"500 Server Error: output limit exceeded ({e})")
    except BaseException as e:  # the tool's own failure, reported like a traceback's last line
        if isinstance(e, KeyboardInterrupt) and not _IN_CHILD:
            raise  # Ctrl-C in the caller's own process is the user's, not the tool's
        text = str(e)
        text = text if len(text) <= 500 else text[:500] + "..."
        return _fail(TOOL_CALL_FAILURE, f"{type(e).__name__}: {text}" if text else type(e).__name__)
    if len(output) > max_output:
        return _fail(TOOL_INSTABILITY, f"500 Server Error: output limit exceeded "
                                       f"({len(output)} characters, the limit is {max_output})")
    return Result(True, output, ALL_RIGHT, "")


def run_in_process(tools, call, *, max_output: int = 8192) -> Result:
    """Validate and run a call in *this* process, with the sandbox's validation and wording but no
    isolation at all. For trusted tools only (the synthetic generator's toolbox calls); it refuses
    `run_python`, which must only run in a Sandbox."""
    tools = _tool_dict(tools)
    call = Call.from_dict(call)
    failed = validate_call(call, {n: t.schema for n, t in tools.items()})
    if failed is not None:
        return failed
    if call.name == "run_python":
        raise ValueError("run_in_process: run_python executes model-written code; run it in a Sandbox")
    return _invoke(tools[call.name].fn, _given_arguments(call, tools[call.name].schema), max_output)


def _tool_dict(tools) -> dict:
    """{name: tool} from a dict or a list of objects with .schema and .fn (tl.toolbox.Tool)."""
    if isinstance(tools, dict):
        return dict(tools)
    return {t.schema["name"]: t for t in tools}


# ----------------------------------------------------------------------------- the child (one per call)

_libc = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG, _PR_SET_NO_NEW_PRIVS = 1, 38


def _child_main(fn, arguments: dict, limits: dict, scratch: str, uid: int | None, result_fd: int):
    """Runs in the forked child: confine, call, write the JSON result, exit. Never returns."""
    global _IN_CHILD
    try:
        os.chdir(scratch)
        os.environ.update(HOME=scratch, TMPDIR=scratch)
        os.dup2(result_fd, 3)
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.closerange(4, resource.getrlimit(resource.RLIMIT_NOFILE)[0])  # the protocol pipes among them
        cpu = math.ceil(limits["timeout"]) + 1
        for lim, value in ((resource.RLIMIT_AS, limits["memory_mb"] << 20), (resource.RLIMIT_CPU, cpu),
                           (resource.RLIMIT_FSIZE, limits["max_file_mb"] << 20), (resource.RLIMIT_CORE, 0),
                           (resource.RLIMIT_NOFILE, 64), (resource.RLIMIT_NPROC, 0)):
            resource.setrlimit(lim, (value, value))
        if uid is not None:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
        _libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # after setuid, which clears it
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # oversized writes raise OSError instead
        sys.stdout = sys.stderr = CappedStringIO(limits["max_output"])  # stray prints: bounded, discarded
        _IN_CHILD = True
        result = _invoke(fn, arguments, limits["max_output"])
        payload = json.dumps(asdict(result), ensure_ascii=False).encode()
        view = memoryview(payload)
        while view:
            view = view[os.write(3, view):]
        os._exit(0)
    except BaseException:
        os._exit(70)


# ----------------------------------------------------------------------------- the worker (warm process)

_CLONE_NEWNS, _CLONE_NEWUSER, _CLONE_NEWNET = 0x00020000, 0x10000000, 0x40000000
_MS_BIND, _MS_REC, _MS_PRIVATE = 4096, 16384, 1 << 18
_SYS_MOUNT_SETATTR, _AT_FDCWD, _AT_RECURSIVE, _MOUNT_ATTR_RDONLY = 442, -100, 0x8000, 1


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def _mount_setattr(path: str, flags: int, set_: int = 0, clear: int = 0) -> bool:
    attr = _MountAttr(set_, clear, 0, 0)
    return _libc.syscall(_SYS_MOUNT_SETATTR, _AT_FDCWD, path.encode(), flags, ctypes.byref(attr),
                         ctypes.sizeof(attr)) == 0


def _can_switch_uid(uid: int) -> bool:
    """Whether a child can drop to `uid` (root inside a container may lack CAP_SETUID)."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            os._exit(0)
        except BaseException:
            os._exit(1)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0


def _isolate_worker(scratch_root: str, uid: int) -> dict:
    """Enter new namespaces where the OS allows it; report what was applied."""
    applied = {"network": False, "readonly_fs": False, "separate_uid": False}
    if os.geteuid() == 0:
        if _libc.unshare(_CLONE_NEWNS | _CLONE_NEWNET) == 0:
            applied["network"] = True
            root = scratch_root.encode()
            applied["readonly_fs"] = (
                _libc.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None) == 0  # nothing leaks back out
                and _libc.mount(root, root, None, _MS_BIND, None) == 0
                and _mount_setattr("/", _AT_RECURSIVE, set_=_MOUNT_ATTR_RDONLY)
                and _mount_setattr(scratch_root, 0, clear=_MOUNT_ATTR_RDONLY))
        applied["separate_uid"] = _can_switch_uid(uid)
    else:
        applied["network"] = _enter_user_and_net_namespace()
    return applied


def _enter_user_and_net_namespace() -> bool:
    """Without root: a user namespace (if the kernel allows unprivileged ones) in which we may
    create a network namespace. Our own uid/gid are mapped to themselves, or files could not be
    created."""
    uid, gid = os.geteuid(), os.getegid()
    if _libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNET) != 0:
        return False
    try:
        for path, text in (("/proc/self/setgroups", "deny"), ("/proc/self/uid_map", f"{uid} {uid} 1"),
                           ("/proc/self/gid_map", f"{gid} {gid} 1")):
            with open(path, "w") as f:
                f.write(text)
    except OSError:
        pass  # the network is cut either way; only file creation may suffer
    return True


def _child_status_result(status: int) -> Result:
    code = os.waitstatus_to_exitcode(status)
    if code == -signal.SIGXCPU:
        return _fail(TOOL_INSTABILITY, "TimeoutError: the tool call timed out (CPU time limit)")
    how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
    return _fail(TOOL_INSTABILITY, f"500 Server Error: the tool process crashed ({how})")


def _new_scratch(scratch_root: str, uid: int | None) -> str:
    path = tempfile.mkdtemp(dir=scratch_root)
    if uid is not None:
        os.chown(path, uid, uid)
    return path


def _emptied(scratch: str, scratch_root: str, uid: int | None) -> str:
    """The scratch dir for the next call: this one emptied, or a new one if it can't be (a child
    running as the caller's own user may have changed its permissions)."""
    try:
        for entry in os.scandir(scratch):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
        return scratch
    except OSError:
        shutil.rmtree(scratch, ignore_errors=True)
        return _new_scratch(scratch_root, uid)


def _run_child(fn, arguments: dict, limits: dict, scratch: str, uid: int | None) -> Result:
    """Fork a child to run one call in `scratch` (an empty dir); wait for it within the timeout."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        _child_main(fn, arguments, limits, scratch, uid, write_fd)
    os.close(write_fd)
    cap = 6 * limits["max_output"] + 4096  # JSON escaping can at most ~6x a string
    chunks, size, verdict = [], 0, None
    deadline = time.monotonic() + limits["timeout"]
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([read_fd], [], [], left)[0]:
            verdict = _fail(TOOL_INSTABILITY, f"TimeoutError: the tool call timed out after {limits['timeout']:g} s")
            break
        chunk = os.read(read_fd, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if size > cap:
            verdict = _fail(TOOL_INSTABILITY, f"500 Server Error: output limit exceeded (more than {cap} bytes)")
            break
    if verdict is not None:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    os.close(read_fd)
    if verdict is not None:
        return verdict
    try:
        r = json.loads(b"".join(chunks))
        result = Result(r["ok"], r["output"], r["category"], r["message"])
        assert type(result.ok) is bool and isinstance(result.output, str) and isinstance(result.message, str)
        assert result.category in FEEDBACK_CATEGORIES
        return result
    except Exception:  # no result at all (a crash), or garbage written by the tool's code
        return _child_status_result(status)


def _worker_main(hello: dict):
    """Entry point of a worker process (see _BOOT): import the tools, isolate, serve requests."""
    import importlib

    def load(module, qualname):
        obj = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
        return obj

    proto_in, proto_out = sys.stdin.buffer, os.fdopen(os.dup(1), "wb")
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # stray prints can't corrupt the protocol
    try:
        fns = {name: load(*where) for name, where in hello["tools"].items()}
        for m in PRELOAD:
            importlib.import_module(m)
        isolation = _isolate_worker(hello["scratch_root"], hello["uid"])
    except Exception as e:
        proto_out.write((json.dumps({"ready": False, "error": f"{type(e).__name__}: {e}"}) + "\n").encode())
        proto_out.flush()
        return
    uid = hello["uid"] if isolation["separate_uid"] else None
    proto_out.write((json.dumps({"ready": True, "isolation": isolation}) + "\n").encode())
    proto_out.flush()
    scratch = _new_scratch(hello["scratch_root"], uid)
    for line in proto_in:
        req = json.loads(line)
        result = _run_child(fns[req["name"]], req["arguments"], hello["limits"], scratch, uid)
        scratch = _emptied(scratch, hello["scratch_root"], uid)
        proto_out.write((json.dumps(asdict(result), ensure_ascii=False) + "\n").encode())
        proto_out.flush()


_BOOT = ("import sys, json; hello = json.loads(sys.stdin.buffer.readline()); sys.path[:0] = hello['sys_path']; "
         "from tl.sandbox import _worker_main; _worker_main(hello)")


class _WorkerLost(Exception):
    pass


class _Worker:
    """The caller's handle on one worker process: a JSON-lines pipe with deadlines."""

    def __init__(self, hello: dict, stderr_path: str):
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "HOME": hello["scratch_root"],
               "TMPDIR": hello["scratch_root"], "PYTHONDONTWRITEBYTECODE": "1"}
        with open(stderr_path, "wb") as err:
            self.proc = subprocess.Popen([sys.executable, "-I", "-c", _BOOT], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=err, env=env, cwd=hello["scratch_root"],
                                         start_new_session=True, close_fds=True)
        self.stderr_path, self._buf = stderr_path, b""
        self.proc.stdin.write((json.dumps(hello) + "\n").encode())
        self.proc.stdin.flush()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def read_line(self, timeout: float) -> dict:
        deadline, fd = time.monotonic() + timeout, self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise _WorkerLost(f"no answer within {timeout:g} s")
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                raise _WorkerLost("the worker process exited")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    def request(self, req: str, timeout: float) -> dict:
        try:
            self.proc.stdin.write((req + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as e:
            raise _WorkerLost(f"the worker process is gone ({e})") from None
        return self.read_line(timeout)

    def kill(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the worker and any child it has running
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass


def _shutdown(workers: list, root: str):
    for w in workers:
        w.kill()
    shutil.rmtree(root, ignore_errors=True)


class Sandbox:
    """Runs tool calls in warm, isolated worker processes (see the module docstring).

    tools: a {name: Tool} dict or a list of Tools (tl.toolbox.Tool or anything with `.fn` and
    `.schema`); each `fn` must be a module-level function of an importable module.
    timeout: wall-clock seconds per call; memory_mb: the child's address-space limit;
    max_output: the longest output (characters) returned; workers: warm processes (calls run in
    parallel through `map`). Thread-safe. Close it (or use `with`) to stop the workers.
    """

    def __init__(self, tools, *, timeout: float = 5.0, memory_mb: int = 512, max_output: int = 8192,
                 workers: int = 2, max_file_mb: int = 16):
        self.tools = _tool_dict(tools)
        self.schemas = {name: t.schema for name, t in self.tools.items()}
        self.timeout = timeout
        where = {}
        for name, t in self.tools.items():
            module, qualname = getattr(t.fn, "__module__", None), getattr(t.fn, "__qualname__", "")
            if not module or module == "__main__" or "<locals>" in qualname:
                raise ValueError(f"Sandbox: tool {name!r} must be a module-level function of an importable module "
                                 f"(workers import it by name); found {module}.{qualname}")
            where[name] = (module, qualname)
        self._root = tempfile.mkdtemp(prefix="tl-sandbox-")
        os.chmod(self._root, 0o755)
        tl_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        self._hello = {"sys_path": [tl_root] + [p for p in sys.path if p], "tools": where,
                       "limits": {"timeout": timeout, "memory_mb": memory_mb, "max_output": max_output,
                                  "max_file_mb": max_file_mb},
                       "uid": _UID_BASE + os.getpid()}
        self._workers: list[_Worker] = []
        self._finalizer = weakref.finalize(self, _shutdown, self._workers, self._root)
        self._idle: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._pool, self._closed = None, False
        started = [self._start_worker(i) for i in range(workers)]  # all start at once, then handshake
        self.isolation = [self._handshake(w) for w in started][0]
        for w in started:
            self._idle.put(w)

    def _start_worker(self, slot: int) -> _Worker:
        hello = dict(self._hello, scratch_root=tempfile.mkdtemp(prefix=f"w{slot}-", dir=self._root))
        os.chmod(hello["scratch_root"], 0o755)
        w = _Worker(hello, os.path.join(self._root, f"w{slot}.stderr"))
        w.slot = slot
        with self._lock:
            self._workers.append(w)
        return w

    def _handshake(self, w: _Worker) -> dict:
        try:
            reply = w.read_line(60.0)
        except _WorkerLost as e:
            with open(w.stderr_path, errors="replace") as f:
                tail = f.read()[-2000:]
            raise RuntimeError(f"Sandbox: a worker failed to start ({e}); its stderr:\n{tail}") from None
        if not reply.get("ready"):
            raise RuntimeError(f"Sandbox: a worker failed to start: {reply.get('error')}")
        return reply["isolation"]

    def _replace(self, w: _Worker) -> _Worker:
        w.kill()
        with self._lock:
            if w in self._workers:
                self._workers.remove(w)
        fresh = self._start_worker(w.slot)
        self._handshake(fresh)
        return fresh

    def run(self, call) -> Result:
        """Validate and execute one call; never raises for anything the tool or the call does."""
        call = Call.from_dict(call)
        failed = validate_call(call, self.schemas)
        if failed is not None:
            return failed
        try:
            req = json.dumps({"name": call.name, "arguments": _given_arguments(call, self.schemas[call.name])},
                             ensure_ascii=False)
        except (TypeError, ValueError) as e:  # a Call built in Python with, say, a set in it
            return _fail(TOOL_CALL_FAILURE, f"TypeError: {e}")
        if self._closed:
            raise RuntimeError("Sandbox.run: the sandbox is closed")
        w = self._idle.get()
        try:
            if not w.alive():  # killed from outside while idle: replace it before use
                w = self._replace(w)
            try:
                return Result(**w.request(req, self.timeout + 10.0))
            except _WorkerLost as e:  # the worker itself died or hung (a child can kill it without root)
                w = self._replace(w)
                return _fail(TOOL_INSTABILITY, f"500 Server Error: the sandbox worker was lost ({e})")
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
        self._closed = True
        if self._pool is not None:
            self._pool.shutdown()
        self._finalizer()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
