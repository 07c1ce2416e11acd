"""tl/confine.py's seccomp program, read by a small BPF interpreter for both architectures whatever
this machine is. The layers at work against real attacks: tests/test_sandbox.py."""

import ctypes
import struct

import pytest

from tl.confine import ARCHES, DENIED, SOCKET, seccomp_filter


def run_bpf(prog, arch: int, nr: int, arg0: int = 0) -> int:
    """A classic-BPF interpreter for the few instructions the filter uses: what the kernel would
    return."""
    data = {0: nr, 4: arch, 16: arg0}  # struct seccomp_data: offset -> value
    pc = 0
    acc = 0
    while True:
        code, jt, jf, k = prog[pc]
        if code == 0x06:  # RET
            return k
        if code == 0x20:  # LD
            acc = data[k]
            pc += 1
        else:  # JEQ (0x15) or JGE (0x35)
            taken = acc == k if code == 0x15 else acc >= k
            pc += 1 + (jt if taken else jf)


@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
def test_the_seccomp_program_denies_its_list_and_nothing_else(machine):
    """Checked here for both architectures, whichever this machine is; the attack tests check the real
    one."""
    col, audit = ARCHES[machine]
    denied = {nrs[col] for nrs in DENIED} - {None}
    allow = 0x7FFF0000  # SECCOMP_RET_ALLOW
    eperm = 0x50001  # SECCOMP_RET_ERRNO | EPERM
    kill = 0x80000000  # SECCOMP_RET_KILL_PROCESS
    for allow_inet in (True, False):
        fprog = seccomp_filter(allow_inet, machine)
        raw = ctypes.string_at(fprog[1], fprog[0] * 8)
        prog = [struct.unpack("<HBBI", raw[i : i + 8]) for i in range(0, len(raw), 8)]
        assert all(
            run_bpf(prog, audit, nr) == (eperm if nr in denied else allow)
            for nr in range(500)
            if nr != SOCKET[col]
        )
        for family, inet in ((2, True), (10, True), (1, False), (16, False), (17, False), (40, False)):
            assert run_bpf(prog, audit, SOCKET[col], family) == (allow if inet and allow_inet else eperm)
        assert run_bpf(prog, 0x40000003, 1) == kill  # i386's int 0x80 from an x86_64 process
        if machine == "x86_64":
            assert run_bpf(prog, audit, 0x40000000 | 29) == eperm  # x32's shmget
    assert seccomp_filter(True, "riscv64") is None
