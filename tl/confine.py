"""The kernel layers that confine a sandbox child (tl/sandbox.py): a seccomp filter, the network, mount
and IPC namespaces, an unused uid. Linux only; each function reports which layer took, and the sandbox
states what did (`Sandbox.isolation`). What these layers do and do not cover: tl/sandbox.py's docstring.
"""

import contextlib
import ctypes
import os
import signal

# The syscalls a child gets EPERM for, as (x86_64 number, aarch64 number); None where that architecture
# lacks the call. No tool needs them: they carry data to later calls (SysV IPC, mqueues, keyrings), hold
# memory outside RLIMIT_AS (memfd), start, signal or reach into processes, etc.
DENIED = [
    # SysV shared memory and semaphores
    (29, 194),  # shmget
    (30, 196),  # shmat
    (31, 195),  # shmctl
    (64, 190),  # semget
    (65, 193),  # semop
    (66, 191),  # semctl
    (220, 192),  # semtimedop
    # SysV message queues
    (68, 186),  # msgget
    (69, 189),  # msgsnd
    (70, 188),  # msgrcv
    (71, 187),  # msgctl
    # POSIX message queues
    (240, 180),  # mq_open
    (241, 181),  # mq_unlink
    (242, 182),  # mq_timedsend
    (243, 183),  # mq_timedreceive
    (244, 184),  # mq_notify
    (245, 185),  # mq_getsetattr
    # keyrings and memfd
    (248, 217),  # add_key
    (249, 218),  # request_key
    (250, 219),  # keyctl
    (319, 279),  # memfd_create
    (447, 447),  # memfd_secret
    # new processes and programs
    (56, 220),  # clone
    (435, 435),  # clone3
    (57, None),  # fork
    (58, None),  # vfork
    (59, 221),  # execve
    (322, 281),  # execveat
    # signals to other processes
    (62, 129),  # kill
    (200, 130),  # tkill
    (234, 131),  # tgkill
    (129, 138),  # rt_sigqueueinfo
    (297, 240),  # rt_tgsigqueueinfo
    (424, 424),  # pidfd_send_signal
    # reaching into other processes
    (101, 117),  # ptrace
    (310, 270),  # process_vm_readv
    (311, 271),  # process_vm_writev
    (438, 438),  # pidfd_getfd
    # userfaultfd, bpf, perf, io_uring
    (323, 282),  # userfaultfd
    (321, 280),  # bpf
    (298, 241),  # perf_event_open
    (425, 425),  # io_uring_setup
    (426, 426),  # io_uring_enter
    (427, 427),  # io_uring_register
    # namespaces and mounts
    (272, 97),  # unshare
    (308, 268),  # setns
    (165, 40),  # mount
    (166, 39),  # umount2
    (155, 41),  # pivot_root
    # the new mount API
    (428, 428),  # open_tree
    (429, 429),  # move_mount
    (430, 430),  # fsopen
    (432, 432),  # fsmount
    (442, 442),  # mount_setattr
    # file handles, kexec, modules
    (303, 264),  # name_to_handle_at
    (304, 265),  # open_by_handle_at
    (246, 104),  # kexec_load
    (175, 105),  # init_module
    (313, 273),  # finit_module
    (176, 106),  # delete_module
]
SOCKET = (41, 198)  # socket() on x86_64, aarch64
ARCHES = {"x86_64": (0, 0xC000003E), "aarch64": (1, 0xC00000B7)}  # (column of DENIED, AUDIT_ARCH_*)
_libc = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1
_PR_SET_SECCOMP = 22
_PR_SET_NO_NEW_PRIVS = 38
_CLONE_NEWNS = 0x00020000
_CLONE_NEWIPC = 0x08000000
_CLONE_NEWNET = 0x40000000
_MS_NOSUID_NODEV_NOEXEC = 2 | 4 | 8
_MS_BIND = 4096
_MS_REC_PRIVATE = 16384 | 1 << 18  # MS_REC | MS_PRIVATE
_MNT_DETACH = 2


def seccomp_filter(allow_inet: bool, machine: str | None = None):
    """The BPF program (a struct sock_fprog) for `machine` (default: this one), None for an unknown one:
    EPERM for DENIED and for socket() of any family but AF_INET/6 (those only with `allow_inet`); a syscall
    of another ABI kills the process."""
    col, audit = ARCHES.get(machine or os.uname().machine, (None, None))
    if col is None:
        return None
    deny = [nrs[col] for nrs in DENIED if nrs[col] is not None]
    families = (2, 10) if allow_inet else ()  # AF_INET, AF_INET6
    # Instructions are (code, jt, jf, k); a jump skips jt (if true) or jf (if false) instructions. Layout:
    # arch check, nr checks, socket family checks, then RET EPERM and RET ALLOW, the two targets whose
    # distances the offsets below count.
    prog = [
        (0x20, 0, 0, 4),  # LD arch
        (0x15, 1, 0, audit),  # JEQ this ABI: skip the kill
        (0x06, 0, 0, 0x80000000),  # RET KILL_PROCESS
        (0x20, 0, 0, 0),  # LD nr
    ]
    if col == 0:  # x32 numbers (bit 30 set) alias x86_64's
        prog.append((0x35, len(deny) + len(families) + 2, 0, 0x40000000))  # JGE -> EPERM
    for i, nr in enumerate(deny):
        prog.append((0x15, len(deny) - i + len(families) + 1, 0, nr))  # JEQ -> EPERM
    prog.append((0x15, 0, len(families) + 2, SOCKET[col]))  # JEQ socket, else -> ALLOW
    prog.append((0x20, 0, 0, 16))  # LD args[0], the address family
    for i, family in enumerate(families):
        prog.append((0x15, len(families) - i, 0, family))  # JEQ -> ALLOW
    prog.append((0x06, 0, 0, 0x00050001))  # RET ERRNO(EPERM)
    prog.append((0x06, 0, 0, 0x7FFF0000))  # RET ALLOW
    code = b"".join(
        op.to_bytes(2, "little") + bytes([jt, jf]) + k.to_bytes(4, "little") for op, jt, jf, k in prog
    )
    keep = ctypes.create_string_buffer(code, len(code))  # struct sock_filter[] (both ABIs little-endian)
    fprog = (ctypes.c_uint64 * 2)(len(prog), ctypes.addressof(keep))  # {u16 len (padded), filter pointer}
    fprog.keep = keep  # the program must outlive every child that installs it
    return fprog


def confine(uid: int | None, layers: int, program) -> int:
    """Apply the per-process layers to this process in the order they need: the uid if given, the IPC
    namespace if `layers` & 2, the seccomp `program` (`seccomp_filter`'s) if `layers` & 4. Returns the bits
    of those that took: 1 uid, 2 IPC namespace, 4 seccomp (it refuses memfd)."""
    ipc = layers & 2 and _libc.unshare(_CLONE_NEWIPC) == 0  # before the uid drop: it needs the capability
    with contextlib.suppress(OSError):  # root inside a container may lack CAP_SETUID
        if uid is not None:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
    _libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)  # also what lets a non-root process install seccomp
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # after setuid, which clears it
    # Seccomp last: it needs NO_NEW_PRIVS (set above) and denies unshare, which the IPC namespace used.
    seccomp = layers & 4 and program is not None and _libc.prctl(_PR_SET_SECCOMP, 2, program, 0, 0) == 0
    with contextlib.suppress(OSError):  # the filter took only if memfd_create now fails
        seccomp = seccomp and os.memfd_create("probe") < 0
    took_uid = os.getuid() == uid
    return took_uid | bool(ipc) << 1 | bool(seccomp) << 2


def _mount_setattr(path: bytes, flags: int, set_: int = 0, clear: int = 0) -> bool:
    attr = (ctypes.c_uint64 * 4)(set_, clear, 0, 0)  # struct mount_attr
    # syscall 442 is mount_setattr on x86_64 and aarch64 alike; -100 is AT_FDCWD
    return _libc.syscall(442, -100, path, flags, attr, ctypes.sizeof(attr)) == 0


def enter_worker_namespaces(scratch_root: str) -> tuple[bool, bool, bool]:
    """As root: move this process (the worker) into new network and mount namespaces, make / read-only
    there and mount a small tmpfs on `scratch_root`. Returns what took: (no network, read-only /, a
    tmpfs per call possible); all False without root."""
    netns = readonly = quota = False
    if os.geteuid() == 0:
        netns = _libc.unshare(_CLONE_NEWNS | _CLONE_NEWNET) == 0  # a new network namespace has no interface
    if netns:
        root = scratch_root.encode()
        # Private first, so that nothing mounted here leaks back out; then all of / read-only
        # (0x8000: AT_RECURSIVE; set_=1: MOUNT_ATTR_RDONLY).
        private = _libc.mount(b"none", b"/", None, _MS_REC_PRIVATE, None) == 0
        readonly = private and _mount_setattr(b"/", 0x8000, set_=1)
        # A small tmpfs holds the scratch dirs (cheap mkdirs); each call mounts its own on top.
        tmpfs_opts = b"size=1m,mode=0755"
        quota = readonly and _libc.mount(b"tmpfs", root, b"tmpfs", _MS_NOSUID_NODEV_NOEXEC, tmpfs_opts) == 0
        if readonly and not quota:
            # Without the tmpfs, the scratch root becomes a bind mount with MOUNT_ATTR_RDONLY cleared:
            # the one writable place.
            bound = _libc.mount(root, root, None, _MS_BIND, None) == 0
            readonly = bound and _mount_setattr(root, 0, clear=1)
    return netns, readonly, quota


def mount_tmpfs(path: str, options: bytes) -> bool:
    """A tmpfs (nosuid, nodev, noexec) on `path` with `options` (size, inodes, mode); True if it took."""
    return _libc.mount(b"tmpfs", path.encode(), b"tmpfs", _MS_NOSUID_NODEV_NOEXEC, options) == 0


def detach(path: str) -> None:
    """Unmount `path` at once (lazily: its files go however deep the tree)."""
    _libc.umount2(path.encode(), _MNT_DETACH)
