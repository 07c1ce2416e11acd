"""The worker side of tl.sandbox: the warm process that confines itself, then forks one confined child
per call. Only `tl.sandbox` starts it (`python -I -c tl.sandbox._BOOT`); nothing here is public.

A worker, as root, enters its own network namespace (no interface: no network) and mount namespace
(everything re-mounted read-only, scratch dirs on a tmpfs), compiles the seccomp filter, and probes
in a throw-away child which per-call layers the kernel grants (IPC namespace, uid drop, seccomp), so
`Sandbox.isolation` reports what applies. Each call then gets a fresh tmpfs as its scratch dir (or,
without root, a fresh dir), a child that applies rlimits, the IPC namespace, the uid drop and seccomp
before calling the tool, and waits bounded by the call's deadline.
"""
import contextlib
import ctypes
import json
import os
import resource
import select
import signal
import sys
import tempfile
import time
from dataclasses import asdict
from multiprocessing.connection import Connection

from tl import sandbox
from tl.classify import TOOL_INSTABILITY

# (x86_64, aarch64) numbers of the syscalls a child gets EPERM for. No tool needs them; they carry data
# to later calls (SysV IPC, POSIX mqueues, keyrings), hold memory outside RLIMIT_AS (memfd), start or
# signal processes, reach into other processes, or open rarely used parts of the kernel.
DENIED = [(29, 194), (30, 196), (31, 195), (64, 190), (65, 193), (66, 191), (220, 192),  # shm*, sem*
          (68, 186), (69, 189), (70, 188), (71, 187),  # msgget, msgsnd, msgrcv, msgctl
          (240, 180), (241, 181), (242, 182), (243, 183), (244, 184), (245, 185),  # mq_*
          (248, 217), (249, 218), (250, 219), (319, 279), (447, 447),  # add_key, request_key, keyctl, memfd_*
          (56, 220), (435, 435), (57, None), (58, None), (59, 221), (322, 281),  # clone(3), (v)fork, execve(at)
          (62, 129), (200, 130), (234, 131), (129, 138), (297, 240), (424, 424),  # kill ... pidfd_send_signal
          (101, 117), (310, 270), (311, 271), (438, 438),  # ptrace, process_vm_readv/writev, pidfd_getfd
          (323, 282), (321, 280), (298, 241), (425, 425), (426, 426), (427, 427),  # userfaultfd, bpf, perf, io_uring
          (272, 97), (308, 268), (165, 40), (166, 39), (155, 41),  # unshare, setns, mount, umount2, pivot_root
          (428, 428), (429, 429), (430, 430), (432, 432), (442, 442),  # the new mount API
          (303, 264), (304, 265), (246, 104), (175, 105), (313, 273), (176, 106)]  # file handles, kexec, modules
SOCKET = (41, 198)
ARCHES = {"x86_64": (0, 0xC000003E), "aarch64": (1, 0xC00000B7)}  # column of DENIED, AUDIT_ARCH_*
_libc = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG, _PR_SET_SECCOMP, _PR_SET_NO_NEW_PRIVS = 1, 22, 38
_CLONE_NEWNS, _CLONE_NEWIPC, _CLONE_NEWNET = 0x00020000, 0x08000000, 0x40000000
_MS_NOSUID_NODEV_NOEXEC, _MS_BIND, _MS_REC_PRIVATE, _MNT_DETACH = 2 | 4 | 8, 4096, 16384 | 1 << 18, 2
_SECCOMP = None  # this worker's compiled filter, installed by each child


def seccomp_filter(allow_inet: bool, machine: str | None = None):
    """The BPF program (a struct sock_fprog) for `machine` (this one by default); None on an
    architecture it does not know. EPERM for DENIED and for socket() of any family but AF_INET/6
    (those only with `allow_inet`); a syscall of another ABI (i386's int 0x80) kills the process."""
    col, audit = ARCHES.get(machine or os.uname().machine, (None, None))
    if col is None:
        return None
    deny, families = [nrs[col] for nrs in DENIED if nrs[col] is not None], (2, 10) if allow_inet else ()
    # (code, jt, jf, k); a jump skips jt/jf instructions. Layout: arch check, nr checks, socket family
    # checks, then RET EPERM and RET ALLOW, the targets whose distances the offsets below count.
    prog = [(0x20, 0, 0, 4), (0x15, 1, 0, audit), (0x06, 0, 0, 0x80000000),  # LD arch; JEQ; RET KILL_PROCESS
            (0x20, 0, 0, 0)]  # LD nr
    if col == 0:  # x32 numbers (bit 30 set) alias x86_64's
        prog.append((0x35, len(deny) + len(families) + 2, 0, 0x40000000))  # JGE -> EPERM
    prog += [(0x15, len(deny) - i + len(families) + 1, 0, nr) for i, nr in enumerate(deny)]  # JEQ -> EPERM
    prog += [(0x15, 0, len(families) + 2, SOCKET[col]), (0x20, 0, 0, 16)]  # JEQ socket, else ALLOW; LD args[0]
    prog += [(0x15, len(families) - i, 0, family) for i, family in enumerate(families)]  # JEQ -> ALLOW
    prog += [(0x06, 0, 0, 0x00050001), (0x06, 0, 0, 0x7FFF0000)]  # RET ERRNO(EPERM); RET ALLOW
    code = b"".join(op.to_bytes(2, "little") + bytes([jt, jf]) + k.to_bytes(4, "little") for op, jt, jf, k in prog)
    keep = ctypes.create_string_buffer(code, len(code))  # struct sock_filter[] (both ABIs little-endian)
    fprog = (ctypes.c_uint64 * 2)(len(prog), ctypes.addressof(keep))  # {u16 len (padded), filter pointer}
    fprog.keep = keep  # the program must outlive every child that installs it
    return fprog


def _drop_to(uid: int):
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)


def _child_main(fn, arguments: dict, limits: dict, scratch: str, uid: int | None, iso: dict, result_fd: int):
    """Runs in the forked child: confine, call, write the JSON result to fd 3, exit. Never returns."""
    try:
        os.chdir(scratch)
        os.environ.update(HOME=scratch, TMPDIR=scratch)
        os.dup2(result_fd, 3)
        for fd in (0, 1, 2):  # fd 0 is the worker's channel to the caller
            os.dup2(os.open(os.devnull, os.O_RDWR), fd)
        os.closerange(4, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
        for lim, value in ((resource.RLIMIT_AS, limits["memory_mb"] << 20), (resource.RLIMIT_CORE, 0),
                           (resource.RLIMIT_CPU, int(limits["timeout"]) + 2), (resource.RLIMIT_NPROC, 0),
                           (resource.RLIMIT_FSIZE, limits["max_file_mb"] << 20), (resource.RLIMIT_NOFILE, 64)):
            resource.setrlimit(lim, (value, value))
        if iso["ipc"] and _libc.unshare(_CLONE_NEWIPC) != 0:  # before the uid drop: it needs the capability
            os._exit(71)
        if uid is not None:
            _drop_to(uid)
        _libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)  # also what lets a non-root process install seccomp
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # after setuid, which clears it
        if iso["seccomp"] and _libc.prctl(_PR_SET_SECCOMP, 2, _SECCOMP, 0, 0) != 0:  # last: it bans unshare
            os._exit(71)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # oversized writes raise OSError instead
        sys.stdout = sys.stderr = sandbox.CappedStringIO(limits["max_output"])  # stray prints: bounded, dropped
        sandbox._IN_CHILD = True
        view = memoryview(json.dumps(asdict(sandbox._invoke(fn, arguments, limits["max_output"]))).encode())
        while view:  # ASCII JSON: lone surrogates travel as escapes
            view = view[os.write(3, view):]
        os._exit(0)
    except BaseException:
        os._exit(70)


def run_child(fn, arguments: dict, limits: dict, scratch: str, uid: int | None, iso: dict) -> dict:
    """Fork a child for one call in `scratch`; read its result, then wait for its exit, both by the
    call's deadline (the tool's code may close the result pipe and keep running). Returns the
    result's fields (the caller checks their values) or the timeout / crash / output-limit result."""
    read_fd, write_fd = os.pipe()
    if (pid := os.fork()) == 0:
        os.close(read_fd)
        _child_main(fn, arguments, limits, scratch, uid, iso, write_fd)
    os.close(write_fd)
    deadline, chunks, size, verdict, pidfd = time.monotonic() + limits["timeout"], [], 0, None, None
    timeout = sandbox._fail(TOOL_INSTABILITY, f"TimeoutError: the tool call timed out after {limits['timeout']:g} s")
    while verdict is None:
        if (left := deadline - time.monotonic()) <= 0 or not select.select([read_fd], [], [], left)[0]:
            verdict = timeout
        elif not (chunk := os.read(read_fd, 1 << 16)):
            break
        elif (size := size + len(chunk)) > 12 * limits["max_output"] + 4096:  # ASCII JSON: <= 12 bytes a char
            verdict = sandbox._output_limit(size, limits["max_output"])
        else:
            chunks.append(chunk)
    with contextlib.suppress(OSError, AttributeError):  # pidfd_open needs Linux 5.3; without it, poll
        pidfd = os.pidfd_open(pid)
    while verdict is None and not (exited := os.waitpid(pid, os.WNOHANG))[0]:  # normally it has exited
        if (left := deadline - time.monotonic()) <= 0:
            verdict = timeout
        elif pidfd is None or not select.select([pidfd], [], [], left)[0]:
            time.sleep(min(left, 1e-3))
    for fd in (read_fd, pidfd):
        if fd is not None:
            os.close(fd)
    if verdict is not None:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        return asdict(verdict)
    with contextlib.suppress(Exception):  # garbage from the tool's code falls through to the exit status
        r = json.loads(b"".join(chunks))
        if type(r["ok"]) is bool and all(type(r[k]) is str for k in ("output", "category", "message")):
            return {k: r[k] for k in ("ok", "output", "category", "message")}
    if (code := os.waitstatus_to_exitcode(exited[1])) == -signal.SIGXCPU:
        return asdict(sandbox._fail(TOOL_INSTABILITY, "TimeoutError: the tool call timed out (CPU time limit)"))
    how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
    return asdict(sandbox._fail(TOOL_INSTABILITY, f"500 Server Error: the tool process crashed ({how})"))


def _mount_setattr(path: bytes, flags: int, set_: int = 0, clear: int = 0) -> bool:
    attr = (ctypes.c_uint64 * 4)(set_, clear, 0, 0)  # struct mount_attr
    return _libc.syscall(442, -100, path, flags, attr, ctypes.sizeof(attr)) == 0  # mount_setattr(AT_FDCWD, ...)


def isolate(scratch_root: str, uid: int) -> dict:
    """Enter new namespaces where the OS allows it (root), compile seccomp, and try the per-call layers
    in a throw-away child; report what applies (the keys of `Sandbox.isolation`)."""
    global _SECCOMP
    netns = readonly = quota = False
    if os.geteuid() == 0 and (netns := _libc.unshare(_CLONE_NEWNS | _CLONE_NEWNET) == 0):
        root = scratch_root.encode()
        readonly = (_libc.mount(b"none", b"/", None, _MS_REC_PRIVATE, None) == 0  # nothing leaks back out
                    and _mount_setattr(b"/", 0x8000, set_=1))  # AT_RECURSIVE, MOUNT_ATTR_RDONLY
        # The scratch dirs on a tmpfs: a cheap mkdir per call, and each call mounts its own tmpfs on one.
        quota = readonly and _libc.mount(b"tmpfs", root, b"tmpfs", _MS_NOSUID_NODEV_NOEXEC, b"size=1m,mode=0755") == 0
        if readonly and not quota:  # else a writable bind mount of the scratch root
            readonly = _libc.mount(root, root, None, _MS_BIND, None) == 0 and _mount_setattr(root, 0, clear=1)
    _SECCOMP = seccomp_filter(allow_inet=netns)  # AF_INET/6 are harmless only where no network exists
    if (pid := os.fork()) == 0:
        ipc = os.geteuid() == 0 and _libc.unshare(_CLONE_NEWIPC) == 0
        with contextlib.suppress(OSError):
            _drop_to(uid)  # root inside a container may lack CAP_SETUID
        _libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        sec = _SECCOMP is not None and _libc.prctl(_PR_SET_SECCOMP, 2, _SECCOMP, 0, 0) == 0
        with contextlib.suppress(PermissionError):
            sec = sec and os.memfd_create("probe") < 0  # a working filter refuses it
        os._exit((os.getuid() == uid) | ipc << 1 | sec << 2)
    code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    return {"network": netns or bool(code & 4), "readonly_fs": readonly, "disk_quota": quota,
            "separate_uid": bool(code & 1), "ipc": bool(code & 2), "seccomp": bool(code & 4)}


def main(hello: dict, conn: Connection):
    """Import the tools, isolate, then serve requests from `conn` until the caller closes it."""
    import importlib

    try:
        fns = {}
        for name, (module, qualname) in hello["tools"].items():
            fns[name] = importlib.import_module(module)
            for part in qualname.split("."):
                fns[name] = getattr(fns[name], part)
        for m in sandbox.PRELOAD:
            importlib.import_module(m)
        iso = isolate(hello["scratch_root"], hello["uid"])
    except Exception as e:
        return conn.send_bytes(json.dumps({"ready": False, "error": f"{type(e).__name__}: {e}"}).encode())
    conn.send_bytes(json.dumps({"ready": True, "isolation": iso}).encode())
    uid, limits = hello["uid"] if iso["separate_uid"] else None, hello["limits"]
    opts = f"size={4 * limits['max_file_mb']}m,nr_inodes=16384,mode=0700,uid={uid or 0},gid={uid or 0}".encode()
    with contextlib.suppress(EOFError):  # the caller closed the channel
        while req := json.loads(conn.recv_bytes()):
            scratch = tempfile.mkdtemp(dir=hello["scratch_root"])  # fresh per call: no mode, xattr or file survives
            own_fs = iso["disk_quota"] and _libc.mount(b"tmpfs", scratch.encode(), b"tmpfs",
                                                       _MS_NOSUID_NODEV_NOEXEC, opts) == 0
            if uid is not None and not own_fs:
                os.chown(scratch, uid, uid)
            result = run_child(fns[req["name"]], req["arguments"], limits, scratch, uid, iso)
            conn.send_bytes(json.dumps(result).encode())
            if own_fs:
                _libc.umount2(scratch.encode(), _MNT_DETACH)  # the call's files go at once, however deep the tree
            sandbox._remove_tree(scratch)  # after the reply, so the caller does not wait for it
