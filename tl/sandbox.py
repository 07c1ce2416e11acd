"""Isolated tool execution: `with Sandbox(TOOLS) as box: r = box.run(Call("get_weekday", {"date": "2025-01-15"}))`
gives a `tl.episode.Result` (`r.feedback` is what follows `Output:`). `run` never raises for a Call (only once
closed); every reply keeps the Result contract (`_checked`) whatever the tool's code does; failures read like Python.

Covered: a warm worker (scrubbed environment, tools imported) forks a child per call in a fresh empty scratch dir,
fds 0-2 on /dev/null and no other, under RLIMIT_AS (memory_mb), CPU, FSIZE, NOFILE, CORE = NPROC = 0, killed at
the call's deadline. `Sandbox.isolation` reports the other layers; as root: network and mount namespaces (no
network; read-only but scratch), a tmpfs per call (disk_quota), an unused uid per worker, an IPC namespace per call;
seccomp (x86_64, aarch64, any user): EPERM for DENIED and for sockets but AF_INET/6 (those too without a network
namespace). Not bubblewrap/nsjail: an interpreter per call would run under 100 calls/s on 2 cores.

NOT covered: kernel exploits through the allowed syscalls, side channels (no VM); no PID namespace (other processes'
/proc/<pid>/cmdline) and world-readable files stay readable; no cgroup (RLIMIT_AS bounds a call's memory, not kernel
memory such as pipe buffers); a tool's module is trusted (the worker imports it before any layer applies). Without
root the child is the caller's user: it reads and writes that user's files (/tmp, /dev/shm carry data to later
calls), disk is bounded per file only, the network is cut by seccomp only. Without seccomp (another architecture)
it can also signal the caller and reach host Unix sockets, VSOCK, memfd, keyrings. Root without CAP_SETUID keeps
the child root. `run_in_process` has no isolation at all.
"""

import builtins  # noqa: E401
import contextlib
import ctypes
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
from tl.episode import Result, validate_call  # the executor contract; every executor validates first

# Imported before isolation: the uid-dropped child may not read the install; attacks must meet seccomp, not ImportError
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


def _fail(message: str, category: str = TOOL_INSTABILITY) -> Result:
    return Result(False, "", category, valid_unicode(message))


def _output_limit(size: int, limit: int) -> Result:
    return _fail(f"500 Server Error: output limit exceeded ({size} characters, the limit is {limit})")


def _exception_result(e: BaseException) -> Result:
    """`Name: message`, prefixed `Error: ` unless the name ends in Error/Exception or is a built-in exception."""
    name, text, builtin = type(e).__name__[:100], "", getattr(builtins, type(e).__name__, None)
    with contextlib.suppress(Exception):  # a custom __str__ may fail
        text = str(e)
    if not (
        name.isidentifier()
        and (
            name.endswith(("Error", "Exception"))
            or isinstance(builtin, type)
            and issubclass(builtin, BaseException)
            and not name.endswith("Warning")
        )
    ):
        name = f"Error: {name}"  # `Boom: x` would read as an ordinary output
    message = valid_unicode(
        name + (": " + (text if len(text) <= 500 else text[:500] + "...") if text else "")
    )
    return _fail(message, classify_feedback(message))


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


def _given_arguments(call: Call, schema: dict) -> dict:  # None for an optional parameter: its default
    return {
        k: v
        for k, v in call.arguments.items()
        if v is not None or k in schema["parameters"].get("required", [])
    }


def _invoke(fn, arguments: dict, max_output: int) -> Result:  # in a sandbox child and in run_in_process alike
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
    return (
        _output_limit(len(output), max_output)
        if len(output) > max_output
        else Result(True, valid_unicode(output))
    )


def run_in_process(tools: dict, call, *, max_output: int = 8192) -> Result:
    """A call validated, run and worded as in a Sandbox, in *this* process without any isolation: for trusted
    tools only; it refuses `run_python`, which must run in a Sandbox."""
    call = Call.from_dict(call)
    failed = validate_call(call, {n: t.schema for n, t in tools.items()})
    if failed is None and call.name == "run_python":
        raise ValueError("run_in_process: run_python executes model-written code; run it in a Sandbox")
    return failed or _invoke(tools[call.name].fn, _given_arguments(call, tools[call.name].schema), max_output)


# (x86_64, aarch64) numbers of the syscalls a child gets EPERM for. No tool needs them; they carry data to later calls
# (SysV IPC, mqueues, keyrings), hold memory outside RLIMIT_AS (memfd), start, signal or reach into processes, etc.
DENIED = [
    (29, 194),
    (30, 196),
    (31, 195),
    (64, 190),
    (65, 193),
    (66, 191),
    (220, 192),  # shm*, sem*
    (68, 186),
    (69, 189),
    (70, 188),
    (71, 187),  # msgget, msgsnd, msgrcv, msgctl
    (240, 180),
    (241, 181),
    (242, 182),
    (243, 183),
    (244, 184),
    (245, 185),  # mq_*
    (248, 217),
    (249, 218),
    (250, 219),
    (319, 279),
    (447, 447),  # add_key, request_key, keyctl, memfd_*
    (56, 220),
    (435, 435),
    (57, None),
    (58, None),
    (59, 221),
    (322, 281),  # clone(3), (v)fork, execve(at)
    (62, 129),
    (200, 130),
    (234, 131),
    (129, 138),
    (297, 240),
    (424, 424),  # kill ... pidfd_send_signal
    (101, 117),
    (310, 270),
    (311, 271),
    (438, 438),  # ptrace, process_vm_readv/writev, pidfd_getfd
    (323, 282),
    (321, 280),
    (298, 241),
    (425, 425),
    (426, 426),
    (427, 427),  # userfaultfd, bpf, perf, io_uring
    (272, 97),
    (308, 268),
    (165, 40),
    (166, 39),
    (155, 41),  # unshare, setns, mount, umount2, pivot_root
    (428, 428),
    (429, 429),
    (430, 430),
    (432, 432),
    (442, 442),  # the new mount API
    (303, 264),
    (304, 265),
    (246, 104),
    (175, 105),
    (313, 273),
    (176, 106),
]  # file handles, kexec, modules
SOCKET = (41, 198)
ARCHES = {"x86_64": (0, 0xC000003E), "aarch64": (1, 0xC00000B7)}  # column of DENIED, AUDIT_ARCH_*
_libc = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG, _PR_SET_SECCOMP, _PR_SET_NO_NEW_PRIVS = 1, 22, 38
_CLONE_NEWNS, _CLONE_NEWIPC, _CLONE_NEWNET = 0x00020000, 0x08000000, 0x40000000
_MS_NOSUID_NODEV_NOEXEC, _MS_BIND, _MS_REC_PRIVATE, _MNT_DETACH = 2 | 4 | 8, 4096, 16384 | 1 << 18, 2
_SECCOMP = None  # the worker's compiled filter, installed by each child


def seccomp_filter(allow_inet: bool, machine: str | None = None):
    """The BPF program (a struct sock_fprog) for `machine` (default: this one), None for an unknown one: EPERM for
    DENIED and socket() of any family but AF_INET/6 (those only with `allow_inet`); another ABI's syscall kills."""
    col, audit = ARCHES.get(machine or os.uname().machine, (None, None))
    if col is None:
        return None
    deny, families = [nrs[col] for nrs in DENIED if nrs[col] is not None], (2, 10) if allow_inet else ()
    # (code, jt, jf, k); a jump skips jt/jf instructions. Layout: arch check, nr checks, socket family
    # checks, then RET EPERM and RET ALLOW, the targets whose distances the offsets below count.
    prog = [
        (0x20, 0, 0, 4),
        (0x15, 1, 0, audit),
        (0x06, 0, 0, 0x80000000),  # LD arch; JEQ; RET KILL_PROCESS
        (0x20, 0, 0, 0),
    ]  # LD nr
    if col == 0:  # x32 numbers (bit 30 set) alias x86_64's
        prog.append((0x35, len(deny) + len(families) + 2, 0, 0x40000000))  # JGE -> EPERM
    prog += [(0x15, len(deny) - i + len(families) + 1, 0, nr) for i, nr in enumerate(deny)]  # JEQ -> EPERM
    prog += [
        (0x15, 0, len(families) + 2, SOCKET[col]),
        (0x20, 0, 0, 16),
    ]  # JEQ socket, else ALLOW; LD args[0]
    prog += [(0x15, len(families) - i, 0, family) for i, family in enumerate(families)]  # JEQ -> ALLOW
    prog += [(0x06, 0, 0, 0x00050001), (0x06, 0, 0, 0x7FFF0000)]  # RET ERRNO(EPERM); RET ALLOW
    code = b"".join(
        op.to_bytes(2, "little") + bytes([jt, jf]) + k.to_bytes(4, "little") for op, jt, jf, k in prog
    )
    keep = ctypes.create_string_buffer(code, len(code))  # struct sock_filter[] (both ABIs little-endian)
    fprog = (ctypes.c_uint64 * 2)(len(prog), ctypes.addressof(keep))  # {u16 len (padded), filter pointer}
    fprog.keep = keep  # the program must outlive every child that installs it
    return fprog


def _confine(uid: int | None, layers: int) -> int:
    """Apply the per-process layers in the order they need (the uid if given, the IPC namespace if `layers` & 2,
    seccomp if `layers` & 4); the bits of those that took: 1 uid, 2 IPC namespace, 4 seccomp (refuses memfd)."""
    ipc = layers & 2 and _libc.unshare(_CLONE_NEWIPC) == 0  # before the uid drop: it needs the capability
    with contextlib.suppress(OSError):  # root inside a container may lack CAP_SETUID
        if uid is not None:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
    _libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)  # also what lets a non-root process install seccomp
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # after setuid, which clears it
    seccomp = (
        layers & 4 and _SECCOMP is not None and _libc.prctl(_PR_SET_SECCOMP, 2, _SECCOMP, 0, 0) == 0
    )  # last
    with contextlib.suppress(OSError):
        seccomp = seccomp and os.memfd_create("probe") < 0
    return (os.getuid() == uid) | bool(ipc) << 1 | bool(seccomp) << 2


def _run_child(fn, arguments: dict, limits: dict, scratch: str, uid: int | None, layers: int) -> dict:
    """Fork a child for one call under `layers` (`_confine`) and wait until the call's deadline for the JSON result
    it writes to fd 3, a memfd of the worker's, bounded whatever the tool's code does; fields go out unchecked."""
    global IN_CHILD
    result_fd, pidfd, cap = (
        os.memfd_create("result"),
        None,
        12 * limits["max_output"] + 4096,
    )  # <= 12 B a char
    if (pid := os.fork()) == 0:
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
            if _confine(uid, layers) != layers:
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
    while not (exited := os.waitpid(pid, os.WNOHANG))[0] and (left := deadline - time.monotonic()) > 0:
        if pidfd is None or not select.select([pidfd], [], [], left)[0]:
            time.sleep(min(left, 1e-3))
    data, size = os.pread(result_fd, cap + 1, 0), os.fstat(result_fd).st_size
    for fd in {result_fd, pidfd} - {None}:
        os.close(fd)
    if not exited[0]:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        return asdict(_fail(f"TimeoutError: the tool call timed out after {limits['timeout']:g} s"))
    if size > cap:
        return asdict(_output_limit(size, limits["max_output"]))
    with contextlib.suppress(Exception):  # garbage from the tool's code falls through to the exit status
        reply = json.loads(data)
        return {k: reply[k] for k in _FIELDS}
    code = os.waitstatus_to_exitcode(exited[1])
    how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
    return asdict(
        _fail(
            "TimeoutError: the tool call timed out (CPU time limit)"
            if code == -signal.SIGXCPU
            else f"500 Server Error: the tool process crashed ({how})"
        )
    )


def _mount_setattr(path: bytes, flags: int, set_: int = 0, clear: int = 0) -> bool:
    attr = (ctypes.c_uint64 * 4)(set_, clear, 0, 0)  # struct mount_attr
    return (
        _libc.syscall(442, -100, path, flags, attr, ctypes.sizeof(attr)) == 0
    )  # mount_setattr(AT_FDCWD, ...)


def worker_main(hello: dict, conn):
    """The worker process (started by _Worker.BOOT): import the tools, enter the namespaces the OS allows (root),
    try the per-call layers in a throw-away child, report (`Sandbox.isolation`), serve calls until `conn` closes."""
    global _SECCOMP
    try:
        fns = {
            n: functools.reduce(getattr, q.split("."), importlib.import_module(m))
            for n, (m, q) in hello["tools"].items()
        }
        for m in PRELOAD:
            importlib.import_module(m)
        netns = readonly = quota = False
        if os.geteuid() == 0 and (netns := _libc.unshare(_CLONE_NEWNS | _CLONE_NEWNET) == 0):  # no interface
            root = hello["scratch_root"].encode()
            readonly = (
                _libc.mount(b"none", b"/", None, _MS_REC_PRIVATE, None) == 0  # nothing leaks back out
                and _mount_setattr(b"/", 0x8000, set_=1)
            )  # AT_RECURSIVE, MOUNT_ATTR_RDONLY
            quota = (
                readonly
                and _libc.mount(b"tmpfs", root, b"tmpfs", _MS_NOSUID_NODEV_NOEXEC, b"size=1m,mode=0755") == 0
            )  # cheap mkdirs; each call mounts its own
            if readonly and not quota:  # else a writable bind mount of the scratch root
                readonly = _libc.mount(root, root, None, _MS_BIND, None) == 0 and _mount_setattr(
                    root, 0, clear=1
                )
        _SECCOMP = seccomp_filter(allow_inet=netns)  # AF_INET/6 are harmless only where no network exists
        if (pid := os.fork()) == 0:
            os._exit(_confine(hello["uid"], 2 * (os.geteuid() == 0) | 4))
        if (
            layers := os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        ) < 0:  # a signal is no report: fail closed
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
            scratch = tempfile.mkdtemp(
                dir=hello["scratch_root"]
            )  # fresh per call: no mode, xattr or file survives
            own_fs = (
                quota
                and _libc.mount(b"tmpfs", scratch.encode(), b"tmpfs", _MS_NOSUID_NODEV_NOEXEC, opts) == 0
            )
            if uid is not None:
                os.chown(scratch, uid, uid)  # the call's own tmpfs, if mounted, else the directory
            reply = _run_child(fns[req["name"]], req["arguments"], hello["limits"], scratch, uid, layers)
            conn.send_bytes(json.dumps(reply).encode())
            if own_fs:
                _libc.umount2(
                    scratch.encode(), _MNT_DETACH
                )  # the call's files go at once, however deep the tree
            _remove_tree(scratch)  # after the reply, so the caller does not wait for it


def _remove_tree(path: str):
    """Delete a tree of any depth and modes, never raising: coreutils when rmtree fails (3.11's recurses)."""
    with contextlib.suppress(OSError):
        return os.rmdir(path)  # the common case: nothing left
    with contextlib.suppress(Exception):
        return shutil.rmtree(path)
    for argv in (
        ["chmod", "-R", "u+rwx", path],
        ["rm", "-rf", path],
    ):  # a child as our own user may lock dirs
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
        """Its isolation report once started; else RuntimeError, the worker killed (a late handshake is no reply)."""
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
    """A worker's reply as a Result that keeps the contract whatever the tool's code wrote (else a `500 Server Error`):
    ok=True: all_right, no message, <= `max_output` characters; ok=False: no output, another of FEEDBACK_CATEGORIES,
    a 1-1,024 character message `classify_feedback` reads as it; valid UTF-8. Timeouts, crashes: tool_instability."""
    ok, output, category, message = (reply.get(k) for k in _FIELDS)
    if ok is True and category == ALL_RIGHT and message == "" and isinstance(output, str):
        return (
            Result(True, valid_unicode(output))
            if len(output) <= max_output
            else _output_limit(len(output), max_output)
        )
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
    """Runs tool calls in warm, isolated worker processes (see the module docstring). Thread-safe; close it (or use
    `with`). tools: {name: Tool}, each `fn` a module-level function of an importable module (workers import it by
    name); timeout: wall-clock seconds per call; memory_mb: the child's address-space limit; max_output: the longest
    output (characters); workers: warm processes (`map` runs calls on them in parallel)."""

    def __init__(
        self,
        tools: dict,
        *,
        timeout: float = 5.0,
        memory_mb: int = 512,
        max_output: int = 8192,
        workers: int = 2,
    ):
        self.schemas, self.timeout, self.max_output = (
            {n: t.schema for n, t in tools.items()},
            timeout,
            max_output,
        )
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
        self._workers, self._idle, self._closed = (
            [],
            queue.Queue(),
            False,
        )  # workers by slot; _idle: free slots
        self._finalizer = weakref.finalize(self, _shutdown, self._workers, self._root)
        for slot in range(workers):  # all start at once, then handshake
            self._workers.append(_Worker(self._hello, self._root, slot))
            self._idle.put(slot)
        self.isolation = [w.ready() for w in self._workers][0]
        self._pool = ThreadPoolExecutor(
            workers, thread_name_prefix="tl-sandbox"
        )  # its threads start on first use

    def _restart(self, slot: int):
        self._workers[slot].kill()
        self._workers[slot] = _Worker(self._hello, self._root, slot)
        self._workers[slot].ready()

    def run(self, call) -> Result:
        """Validate and execute one call; never raises for what the call holds or the tool does (only if closed)."""
        if self._closed:
            raise RuntimeError("Sandbox.run: the sandbox is closed")
        try:
            call = Call.from_dict(call)
            if (failed := validate_call(call, self.schemas)) is not None:
                return failed
            req = json.dumps(
                {"name": call.name, "arguments": _given_arguments(call, self.schemas[call.name])}
            )
        except Exception as e:  # a Call built in Python with, say, a set in it or a list for a name
            return _exception_result(e)
        slot = self._idle.get()
        try:
            if (
                self._workers[slot].proc.poll() is not None
            ):  # killed from outside while idle: replace it before use
                self._restart(slot)
            try:
                return _checked(self._workers[slot].ask(req, self.timeout + 10.0), self.max_output)
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
        self._pool.shutdown()  # waits for map's calls in flight; raises only in its own threads, which never close
        self._finalizer()

    def __exit__(self, *exc):
        self.close()
