"""Isolated tool execution.

    with Sandbox(TOOLS) as box:
        r = box.run(Call("get_weekday", {"date": "2025-01-15"}))

gives a `tl.episode.Result` (`r.feedback` is what follows `Output:`). `run` never raises for a Call (only once
the sandbox is closed); every reply keeps the Result contract (`_checked`) whatever the tool's code does;
failures read like Python.

Covered: a warm worker (scrubbed environment, tools imported) forks a child per call in a fresh empty scratch
dir, with fds 0-2 on /dev/null and no other, under RLIMIT_AS (memory_mb), CPU, FSIZE, NOFILE,
CORE = NPROC = 0, killed at the call's deadline. `Sandbox.isolation` reports the other layers. As root:
network and mount namespaces (no network; read-only but scratch), a tmpfs per call (disk_quota), an unused uid
per worker, an IPC namespace per call. Seccomp (x86_64, aarch64, any user): EPERM for DENIED and for sockets
but AF_INET/6 (those too without a network namespace). Not bubblewrap/nsjail: an interpreter per call would
run under 100 calls/s on 2 cores.

NOT covered: kernel exploits through the allowed syscalls, side channels (no VM); no PID namespace (other
processes' /proc/<pid>/cmdline) and world-readable files stay readable; no cgroup (RLIMIT_AS bounds a call's
memory, not kernel memory such as pipe buffers); a tool's module is trusted (the worker imports it before any
layer applies). Without root the child is the caller's user: it reads and writes that user's files (/tmp,
/dev/shm carry data to later calls), disk is bounded per file only, the network is cut by seccomp only.
Without seccomp (another architecture) it can also signal the caller and reach host Unix sockets, VSOCK,
memfd, keyrings. Root without CAP_SETUID keeps the child root. `run_in_process` has no isolation at all.
"""

import builtins  # noqa: E401
import contextlib
import functools
import importlib
import io
import json
import os
import queue
import resource
import select  # noqa: E401
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from multiprocessing.connection import Pipe

from tl.calls import Call, valid_unicode  # untrusted text may hold lone surrogates, which UTF-8 cannot encode
from tl.classify import ALL_RIGHT, FEEDBACK_CATEGORIES, TOOL_INSTABILITY, classify_feedback
from tl.confine import confine, detach, enter_worker_namespaces, mount_tmpfs, seccomp_filter
from tl.episode import Result, validate_call  # the executor contract; every executor validates first

# Imported before isolation: the uid-dropped child may not be able to read the install, and an attack must
# meet seccomp, not an ImportError.
PRELOAD = (
    "math",
    "cmath",
    "json",
    "re",
    "datetime",
    "itertools",
    "functools",
    "collections",
    "statistics",
    "random",
    "string",
    "decimal",
    "fractions",
    "textwrap",
    "heapq",
    "bisect",
    "operator",
    "calendar",
    "time",
    "socket",
    "subprocess",
    "shutil",
    "pathlib",
    "ctypes",
    "encodings.idna",
)
IN_CHILD = False  # True in a sandbox child once its limits apply; read by tools that must run nowhere else
_UID_BASE = 1_000_000  # child uid = _UID_BASE + (owner pid << 8) + worker slot: unused, one per worker
_MAX_FILE_MB = 16  # RLIMIT_FSIZE; a call's own tmpfs holds 4x this
_FIELDS = ("ok", "output", "category", "message")
_SECCOMP = None  # the worker's compiled filter (tl.confine.seccomp_filter), installed by each child


def _fail(message: str, category: str = TOOL_INSTABILITY) -> Result:
    return Result(False, "", category, valid_unicode(message))


def _output_limit(size: int, limit: int) -> Result:
    return _fail(f"500 Server Error: output limit exceeded ({size} characters, the limit is {limit})")


def _exception_result(e: BaseException) -> Result:
    """`Name: message`, prefixed `Error: ` unless the name ends in Error/Exception or is a built-in
    exception (a built-in warning gets the prefix too)."""
    name = type(e).__name__[:100]
    builtin = getattr(builtins, type(e).__name__, None)
    text = ""
    with contextlib.suppress(Exception):  # a custom __str__ may fail
        text = str(e)
    is_builtin_exception = (
        isinstance(builtin, type) and issubclass(builtin, BaseException) and not name.endswith("Warning")
    )
    reads_as_error = name.endswith(("Error", "Exception")) or is_builtin_exception
    if not (name.isidentifier() and reads_as_error):
        name = f"Error: {name}"  # `Boom: x` would read as an ordinary output
    if len(text) > 500:
        text = text[:500] + "..."
    message = valid_unicode(f"{name}: {text}" if text else name)
    return _fail(message, classify_feedback(message))


class OutputLimitExceeded(Exception):
    pass


class CappedStringIO(io.StringIO):
    """A text sink that raises OutputLimitExceeded once more than `limit` characters are written."""

    def __init__(self, limit: int):
        super().__init__()
        self.limit = limit
        self.size = 0

    def write(self, s):
        self.size += len(s)
        if self.size > self.limit:
            raise OutputLimitExceeded(f"more than {self.limit} characters printed")
        return super().write(s)


def _given_arguments(call: Call, schema: dict) -> dict:
    """The call's arguments without the optional ones given as None, so that the tool uses its default."""
    required = schema["parameters"].get("required", [])
    return {k: v for k, v in call.arguments.items() if v is not None or k in required}


def _invoke(fn, arguments: dict, max_output: int) -> Result:
    """Call the tool and word its outcome; used in a sandbox child and in run_in_process alike."""
    try:
        value = fn(**arguments)
        output = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    except MemoryError:
        return _fail("500 Server Error: the tool ran out of memory")
    except OutputLimitExceeded as e:
        return _fail(f"500 Server Error: output limit exceeded ({e})")
    except BaseException as e:  # the tool's own failure
        if isinstance(e, KeyboardInterrupt) and not IN_CHILD:
            raise  # Ctrl-C in the caller's own process is the user's, not the tool's
        return _exception_result(e)
    if len(output) > max_output:
        return _output_limit(len(output), max_output)
    return Result(True, valid_unicode(output))


def run_in_process(tools: dict, call, *, max_output: int = 8192) -> Result:
    """A call validated, run and worded as in a Sandbox, in *this* process without any isolation: for
    trusted tools only; it refuses `run_python`, which must run in a Sandbox."""
    call = Call.from_dict(call)
    failed = validate_call(call, {n: t.schema for n, t in tools.items()})
    if failed is not None:
        return failed
    if call.name == "run_python":
        raise ValueError("run_in_process: run_python executes model-written code; run it in a Sandbox")
    tool = tools[call.name]
    return _invoke(tool.fn, _given_arguments(call, tool.schema), max_output)


def _run_child(fn, arguments: dict, limits: dict, scratch: str, uid: int | None, layers: int) -> dict:
    """Fork a child for one call under `layers` (`tl.confine.confine`) and wait until the call's deadline for the JSON
    result it writes to fd 3, a memfd of the worker's; the reply is bounded whatever the tool's code does.
    The fields go out unchecked (the caller's `_checked` checks them)."""
    global IN_CHILD
    result_fd = os.memfd_create("result")
    pidfd = None
    cap = 12 * limits["max_output"] + 4096  # JSON escapes take <= 12 bytes a character
    pid = os.fork()
    if pid == 0:
        try:
            os.chdir(scratch)
            os.environ.update(HOME=scratch, TMPDIR=scratch)
            os.dup2(result_fd, 3)
            for fd in (0, 1, 2):  # fd 0 is the worker's channel to the caller
                os.dup2(os.open(os.devnull, os.O_RDWR), fd)
            os.closerange(4, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
            for lim, value in (
                (resource.RLIMIT_AS, limits["memory_mb"] << 20),
                (resource.RLIMIT_CORE, 0),
                (resource.RLIMIT_CPU, int(limits["timeout"]) + 2),
                (resource.RLIMIT_NPROC, 0),
                (resource.RLIMIT_FSIZE, _MAX_FILE_MB << 20),
                (resource.RLIMIT_NOFILE, 64),
            ):
                resource.setrlimit(lim, (value, value))
            if confine(uid, layers, _SECCOMP) != layers:
                os._exit(71)  # a layer the worker found working did not take
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # oversized writes raise OSError instead
            sys.stdout = sys.stderr = CappedStringIO(limits["max_output"])  # stray prints: bounded, dropped
            IN_CHILD = True
            reply = json.dumps(asdict(_invoke(fn, arguments, limits["max_output"]))).encode()  # ASCII JSON
            os.write(3, reply)
            os._exit(0)
        except BaseException:
            os._exit(70)
    deadline = time.monotonic() + limits["timeout"]
    with contextlib.suppress(OSError, AttributeError):  # pidfd_open needs Linux 5.3; without it, poll
        pidfd = os.pidfd_open(pid)
    while True:
        done_pid, status = os.waitpid(pid, os.WNOHANG)
        if done_pid:
            break
        left = deadline - time.monotonic()
        if left <= 0:
            break
        # Sleep until the child exits (its pidfd turns readable) or the deadline; poll without a pidfd.
        if pidfd is None or not select.select([pidfd], [], [], left)[0]:
            time.sleep(min(left, 1e-3))
    data = os.pread(result_fd, cap + 1, 0)
    size = os.fstat(result_fd).st_size
    for fd in {result_fd, pidfd} - {None}:
        os.close(fd)
    if not done_pid:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        return asdict(_fail(f"TimeoutError: the tool call timed out after {limits['timeout']:g} s"))
    if size > cap:
        return asdict(_output_limit(size, limits["max_output"]))
    with contextlib.suppress(Exception):  # garbage from the tool's code falls through to the exit status
        reply = json.loads(data)
        return {k: reply[k] for k in _FIELDS}
    code = os.waitstatus_to_exitcode(status)
    if code == -signal.SIGXCPU:
        return asdict(_fail("TimeoutError: the tool call timed out (CPU time limit)"))
    how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
    return asdict(_fail(f"500 Server Error: the tool process crashed ({how})"))


def worker_main(hello: dict, conn):
    """The worker process (started by _Worker.BOOT): import the tools, enter the namespaces the OS allows
    (root), try the per-call layers in a throw-away child, report them (`Sandbox.isolation`), then serve
    calls until `conn` closes."""
    global _SECCOMP
    try:
        fns = {}
        for name, (module, qualname) in hello["tools"].items():
            fns[name] = functools.reduce(getattr, qualname.split("."), importlib.import_module(module))
        for module in PRELOAD:
            importlib.import_module(module)
        netns, readonly, quota = enter_worker_namespaces(hello["scratch_root"])
        _SECCOMP = seccomp_filter(allow_inet=netns)  # AF_INET/6 are harmless only where no network exists
        # The probe: a child tries the per-call layers (the IPC namespace only as root) and exits with
        # the bits of those that took.
        wanted = 2 * (os.geteuid() == 0) | 4
        pid = os.fork()
        if pid == 0:
            os._exit(confine(hello["uid"], wanted, _SECCOMP))
        layers = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        if layers < 0:  # a signal is no report: fail closed
            raise RuntimeError(f"the isolation probe was killed by signal {-layers}")
        iso = {
            "network": netns or bool(layers & 4),
            "readonly_fs": readonly,
            "disk_quota": quota,
            "separate_uid": bool(layers & 1),
            "ipc": bool(layers & 2),
            "seccomp": bool(layers & 4),
        }
    except Exception as e:
        return conn.send_bytes(json.dumps({"ready": False, "error": f"{type(e).__name__}: {e}"}).encode())
    conn.send_bytes(json.dumps({"ready": True, "isolation": iso}).encode())
    uid = hello["uid"] if layers & 1 else None
    opts = f"size={4 * _MAX_FILE_MB}m,nr_inodes=16384,mode=0700".encode()
    with contextlib.suppress(EOFError):  # the caller closed the channel
        while req := json.loads(conn.recv_bytes()):
            # a fresh dir per call: no mode, xattr or file survives from an earlier call
            scratch = tempfile.mkdtemp(dir=hello["scratch_root"])
            own_fs = quota and mount_tmpfs(scratch, opts)
            if uid is not None:
                os.chown(scratch, uid, uid)  # the call's own tmpfs, if mounted, else the directory
            reply = _run_child(fns[req["name"]], req["arguments"], hello["limits"], scratch, uid, layers)
            conn.send_bytes(json.dumps(reply).encode())
            if own_fs:
                detach(scratch)  # the call's files go at once, however deep the tree
            _remove_tree(scratch)  # after the reply, so the caller does not wait for it


def _remove_tree(path: str):
    """Delete a tree of any depth and modes, never raising: coreutils when rmtree fails (3.11's rmtree
    recurses, so a deep tree overflows it)."""
    with contextlib.suppress(OSError):
        return os.rmdir(path)  # the common case: nothing left
    with contextlib.suppress(Exception):
        return shutil.rmtree(path)
    # a child running as our own user may have locked its dirs (chmod), so unlock before removing
    for argv in (["chmod", "-R", "u+rwx", path], ["rm", "-rf", path]):
        with contextlib.suppress(Exception):
            subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=600,
            )


class _Worker:
    """One worker process and the caller's socket to it; its stderr is the caller's (a child's: /dev/null)."""

    BOOT = (
        "import json, sys; from multiprocessing.connection import Connection; conn = Connection(0); "
        "hello = json.loads(conn.recv_bytes()); sys.path[:0] = hello['sys_path']; "
        "import tl.sandbox; tl.sandbox.worker_main(hello, conn)"
    )

    def __init__(self, hello: dict, root: str, slot: int):
        scratch_root = tempfile.mkdtemp(prefix=f"w{slot}-", dir=root)
        os.chmod(scratch_root, 0o755)
        env = {
            "PATH": "/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "HOME": scratch_root,
            "TMPDIR": scratch_root,
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        self.conn, theirs = Pipe()  # a socketpair
        with theirs:
            self.proc = subprocess.Popen(
                [sys.executable, "-I", "-c", self.BOOT],
                stdin=theirs,
                env=env,
                stdout=subprocess.DEVNULL,
                cwd=scratch_root,
                start_new_session=True,
            )
        uid = _UID_BASE + (os.getpid() << 8) + slot % 256
        self.conn.send_bytes(json.dumps(dict(hello, scratch_root=scratch_root, uid=uid)).encode())

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

    def ready(self) -> dict:
        """Its isolation report once started; else RuntimeError, with the worker killed (a late handshake
        is no reply)."""
        try:
            reply = self.ask(None, 60.0)
        except EOFError as e:
            reply = {"error": f"{e}; see its stderr"}
        if not reply.get("ready"):
            self.kill()
            raise RuntimeError(f"Sandbox: a worker failed to start: {reply.get('error')}")
        return reply["isolation"]

    def kill(self):
        with contextlib.suppress(OSError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # the worker and any child it has running
        self.proc.wait()
        self.conn.close()


def _checked(reply: dict, max_output: int) -> Result:
    """A worker's reply as a Result that keeps the contract whatever the tool's code wrote (else a
    `500 Server Error`):
    ok=True: all_right, no message, <= `max_output` characters;
    ok=False: no output, another of FEEDBACK_CATEGORIES, a 1-1,024 character message that
    `classify_feedback` reads as that category;
    valid UTF-8 either way. Timeouts and crashes are tool_instability."""
    ok, output, category, message = (reply.get(k) for k in _FIELDS)
    if ok is True and category == ALL_RIGHT and message == "" and isinstance(output, str):
        if len(output) > max_output:
            return _output_limit(len(output), max_output)
        return Result(True, valid_unicode(output))
    if (
        ok is False
        and category in FEEDBACK_CATEGORIES
        and category != ALL_RIGHT
        and isinstance(message, str)
        and 0 < len(message) <= 1024
        and classify_feedback(valid_unicode(message)) == category
    ):
        return _fail(message, category)
    return _fail("500 Server Error: the tool process sent a malformed result")


def _shutdown(workers: list, root: str):
    for w in workers:
        with contextlib.suppress(Exception):
            w.kill()
    _remove_tree(root)


class Sandbox(contextlib.AbstractContextManager):
    """Runs tool calls in warm, isolated worker processes (see the module docstring). Thread-safe; close it
    (or use `with`).

    tools: {name: Tool}, each `fn` a module-level function of an importable module (workers import it by
    name); timeout: wall-clock seconds per call; memory_mb: the child's address-space limit; max_output: the
    longest output (characters); workers: warm processes (`map` runs calls on them in parallel)."""

    def __init__(
        self,
        tools: dict,
        *,
        timeout: float = 5.0,
        memory_mb: int = 512,
        max_output: int = 8192,
        workers: int = 2,
    ):
        self.schemas = {n: t.schema for n, t in tools.items()}
        self.timeout = timeout
        self.max_output = max_output
        where = {
            n: (getattr(t.fn, "__module__", None), getattr(t.fn, "__qualname__", ""))
            for n, t in tools.items()
        }
        for name, (module, qualname) in where.items():
            if not module or module == "__main__" or "<locals>" in qualname:
                raise ValueError(
                    f"Sandbox: tool {name!r} must be a module-level function of an importable module "
                    f"(workers import it by name); found {module}.{qualname}"
                )
        self._root = tempfile.mkdtemp(prefix="tl-sandbox-")
        os.chmod(self._root, 0o755)
        tl_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        self._hello = {
            "sys_path": [tl_root] + [p for p in sys.path if p],
            "tools": where,
            "limits": {"timeout": timeout, "memory_mb": memory_mb, "max_output": max_output},
        }
        self._workers = []  # by slot
        self._idle = queue.Queue()  # the free slots
        self._closed = False
        self._finalizer = weakref.finalize(self, _shutdown, self._workers, self._root)
        for slot in range(workers):  # all start at once, then handshake
            self._workers.append(_Worker(self._hello, self._root, slot))
            self._idle.put(slot)
        reports = [w.ready() for w in self._workers]  # every worker must start
        self.isolation = reports[0]
        # for `map`; its threads start on first use
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="tl-sandbox")

    def _restart(self, slot: int):
        self._workers[slot].kill()
        self._workers[slot] = _Worker(self._hello, self._root, slot)
        self._workers[slot].ready()

    def run(self, call) -> Result:
        """Validate and execute one call; never raises for what the call holds or the tool does (only if
        the sandbox is closed)."""
        if self._closed:
            raise RuntimeError("Sandbox.run: the sandbox is closed")
        try:
            call = Call.from_dict(call)
            failed = validate_call(call, self.schemas)
            if failed is not None:
                return failed
            arguments = _given_arguments(call, self.schemas[call.name])
            req = json.dumps({"name": call.name, "arguments": arguments})
        except Exception as e:  # a Call built in Python with, say, a set in it or a list for a name
            return _exception_result(e)
        slot = self._idle.get()
        try:
            if self._workers[slot].proc.poll() is not None:
                self._restart(slot)  # killed from outside while idle: replace it before use
            try:
                reply = self._workers[slot].ask(req, self.timeout + 10.0)
                return _checked(reply, self.max_output)
            except EOFError as e:  # the worker itself died or hung
                self._restart(slot)
                return _fail(f"500 Server Error: the sandbox worker was lost ({e})")
        except Exception as e:  # e.g. no replacement worker could start; the next call tries again
            return _fail(f"500 Server Error: the sandbox failed ({_exception_result(e).message})")
        finally:
            self._idle.put(slot)

    def map(self, calls) -> list[Result]:
        """Run many calls, spread over the workers in parallel; results in input order."""
        return list(self._pool.map(self.run, calls))

    def worker_pids(self) -> list[int]:
        return [w.proc.pid for w in self._workers]

    def close(self):
        """Stop the workers and remove every file the sandbox made; never raises."""
        self._closed = True
        # waits for map's calls in flight; raises only in its own threads, which never close
        self._pool.shutdown()
        self._finalizer()

    def __exit__(self, *exc):
        self.close()
