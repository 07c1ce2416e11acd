"""The sandbox: Python-worded validation, the Result contract the caller enforces whatever the child
writes, and attacks that must end in an error result while the caller stays alive, later calls
still work and nothing reaches a later call or the host (IPC, keyrings, sockets, the scratch dir).

The attacks run both as model-written code (`run_python`) and as deliberately misbehaving tools
defined below (module-level, so the workers can import them). Attacks that could hurt this
process or the machine if a protection were missing (fork bomb, killing the parent, reading the
parent's /proc environ) first check `Sandbox.isolation` and skip when the protection that stops
them is not in place, so they cannot take down the test runner or other people's processes.
"""

import ctypes
import os
import platform
import signal
import socket
import tempfile
import threading
import time
from pathlib import Path

import pytest

from tasks.toolbox import TOOLS, Tool
from tl.calls import Call
from tl.classify import (
    ALL_RIGHT,
    FEEDBACK_CATEGORIES,
    OTHERS,
    PARAM_HALLUCINATION,
    PARAM_MISSING,
    TOOL_CALL_FAILURE,
    TOOL_HALLUCINATION,
    TOOL_INSTABILITY,
    classify_feedback,
)
from tl.sandbox import Result, Sandbox, _remove_tree, run_in_process, validate_call

SECRET = "tl-sandbox-test-secret-7f3a"


# ----------------------------------------------------------------------------- misbehaving tools


def evil_loop() -> str:
    """Spin forever."""
    while True:
        pass


def evil_sleep(seconds: float) -> str:
    """Sleep.

    Args:
        seconds: How long.
    """
    time.sleep(seconds)
    return "slept"


def evil_fork_bomb() -> str:
    """Fork until the machine falls over."""
    while True:
        os.fork()


def evil_allocate() -> str:
    """Allocate 10 GB."""
    return str(len(bytearray(10 * 2**30)))


def evil_write(path: str) -> str:
    """Write a file.

    Args:
        path: Where.
    """
    with open(path, "w") as f:
        f.write("escaped")
    return "written"


def evil_kill(pid: int) -> str:
    """Kill a process.

    Args:
        pid: Which.
    """
    os.kill(pid, signal.SIGKILL)
    return "killed"


def evil_connect(port: int) -> str:
    """Connect to a local port.

    Args:
        port: Which.
    """
    socket.create_connection(("127.0.0.1", port), timeout=2).close()
    return "connected"


def evil_read_environ(pid: int) -> str:
    """Read another process's environment.

    Args:
        pid: Whose.
    """
    with open(f"/proc/{pid}/environ", "rb") as f:
        return f.read().decode(errors="replace")


def evil_huge_output() -> str:
    """Return 100 MB of text."""
    return "x" * 100_000_000


def evil_recursion() -> str:
    """Recurse without end."""
    return evil_recursion()


def evil_segfault() -> str:
    """Crash the interpreter."""

    return str(ctypes.string_at(0))


def echo(text: str, times: int = 1) -> str:
    """Repeat a text.

    Args:
        text: The text.
        times: How often.
    """
    return text * times


def echo_json(data: dict) -> dict:
    """Return a JSON object.

    Args:
        data: The object.
    """
    return data


EVIL = [
    echo_json,
    evil_loop,
    evil_sleep,
    evil_fork_bomb,
    evil_allocate,
    evil_write,
    evil_kill,
    evil_connect,
    evil_read_environ,
    evil_huge_output,
    evil_recursion,
    evil_segfault,
    echo,
]


@pytest.fixture(scope="module")
def box():
    # A secret in the caller's environment that no sandboxed code may see.
    os.environ["TL_SANDBOX_TEST_SECRET"] = SECRET
    tools = dict(TOOLS, **{f.__name__: Tool.from_function(f) for f in EVIL})
    try:
        sandbox = Sandbox(tools, timeout=1.0, memory_mb=256, max_output=4096, workers=2)
    finally:
        del os.environ["TL_SANDBOX_TEST_SECRET"]
    yield sandbox
    sandbox.close()


def run_code(box, code: str) -> Result:
    """Run model-style code in the sandbox."""
    return box.run(Call("run_python", {"code": code}))


def assert_contained(box, result: Result, category: str | None = None):
    """The attack failed with an error result, worded so MAE reads the same category, and the
    sandbox still works afterwards (this process being alive to check is the other half)."""
    assert not result.ok, result
    assert result.feedback == result.message != ""
    assert classify_feedback(result.feedback) == result.category
    if category is not None:
        assert result.category == category, result
    after = box.run(Call("get_weekday", {"date": "2025-01-15"}))
    assert after.ok and after.output == '{"date": "2025-01-15", "weekday": "Wednesday"}'


def need(box, *protections):
    """Skip the test unless the sandbox applies every one of `protections` (Sandbox.isolation keys)."""
    missing = [p for p in protections if not box.isolation[p]]
    if missing:
        pytest.skip(f"this OS/user gives the sandbox no {missing}; the attack would not be contained")


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "call, category, message",
    [
        (
            Call("get_wether", {"city": "Paris"}),
            TOOL_HALLUCINATION,
            "NameError: name 'get_wether' is not defined",
        ),
        (
            Call("get_weather_current", {"city": "Paris", "country": "France"}),
            PARAM_HALLUCINATION,
            "TypeError: get_weather_current() got an unexpected keyword argument 'country'",
        ),
        (
            Call("get_weather_current", {}),
            PARAM_MISSING,
            "TypeError: get_weather_current() missing 1 required positional argument: 'city'",
        ),
        (
            Call("convert_units", {"value": 3}),
            PARAM_MISSING,
            "TypeError: convert_units() missing 2 required positional arguments: 'from_unit' and 'to_unit'",
        ),
        (
            Call("date_add_days", {"date": "2025-01-15", "days": "3"}),
            OTHERS,
            "TypeError: date_add_days() argument 'days' must be int, not str",
        ),
        (
            Call("date_add_days", {"date": "2025-01-15", "days": True}),
            OTHERS,
            "TypeError: date_add_days() argument 'days' must be int, not bool",
        ),
    ],
)
def test_validation_is_worded_like_python_and_classified(box, call, category, message):
    expected = Result(False, "", category, message)
    assert validate_call(call, box.schemas) == expected
    assert box.run(call) == expected
    assert classify_feedback(expected.feedback) == category
    assert classify_feedback(expected.to_dict()) == category


def test_valid_calls_run_and_match_in_process_execution(box):
    calls = [
        Call("convert_currency", {"amount": 100, "from_currency": "USD", "to_currency": "EUR"}),
        Call("convert_units", {"value": 2.5, "from_unit": "km", "to_unit": "mi"}),  # int/float both numbers
        Call("get_weather_current", {"city": "Paris", "unit": None}),  # None = not given
        Call("get_weather_forecast", {"city": "Paris", "date": "2024-01-01"}),  # the tool raises
        Call("text_reverse", {"text": "stressed"}),
    ]
    results = box.map(calls)
    assert results[0] == Result(
        True, '{"amount": 100, "from_currency": "USD", "to_currency": "EUR", "result": 92.0}'
    )
    assert results[4].output == "desserts" and results[2].ok
    assert results[3] == Result(
        False,
        "",
        TOOL_CALL_FAILURE,
        "ValueError: forecasts are available from 2025-01-15 to 2025-02-13, got '2024-01-01'",
    )
    assert [run_in_process(TOOLS, c) for c in calls] == results
    for r in results:
        assert classify_feedback(r.feedback) == r.category


def test_run_python_never_runs_outside_a_sandbox(box):
    with pytest.raises(ValueError, match="Sandbox"):
        run_in_process(TOOLS, Call("run_python", {"code": "print(1)"}))
    with pytest.raises(RuntimeError, match="only runs inside"):
        TOOLS["run_python"].fn("print(1)")
    assert run_code(box, "x = 6 * 7\nprint('x =', x)\nx + 1") == Result(True, "x = 42\n43")


def test_each_call_gets_a_fresh_process_and_an_empty_scratch_dir(box):
    write_and_list = (
        "import os\nopen('note.txt', 'w').write('hi')\nprint(os.getpid(), sorted(os.listdir('.')))"
    )
    first = run_code(box, write_and_list)
    again = run_code(box, "import os\nprint(os.getpid(), sorted(os.listdir('.')))")
    assert first.ok and first.output.endswith("['note.txt']")
    assert again.ok and again.output.endswith("[]")  # the file is gone
    assert first.output.split()[0] != again.output.split()[0]  # another pid


# ----------------------------------------------------------------------------- attacks


def test_infinite_loop_times_out(box):
    assert_contained(box, run_code(box, "while True:\n    pass"), TOOL_INSTABILITY)
    assert_contained(box, box.run(Call("evil_loop", {})), TOOL_INSTABILITY)
    assert "timed out" in box.run(Call("evil_sleep", {"seconds": 30})).message


def test_fork_bomb_cannot_fork(box):
    if os.geteuid() == 0:
        need(box, "separate_uid")  # RLIMIT_NPROC does not bind root
    assert_contained(box, run_code(box, "import os\nwhile True:\n    os.fork()"), TOOL_CALL_FAILURE)
    assert_contained(box, box.run(Call("evil_fork_bomb", {})), TOOL_CALL_FAILURE)
    assert_contained(box, run_code(box, "import subprocess\nsubprocess.run(['true'])"))


def test_ten_gigabyte_allocation_hits_the_memory_limit(box):
    assert_contained(box, run_code(box, "x = bytearray(10 * 2**30)"), TOOL_INSTABILITY)
    assert_contained(box, box.run(Call("evil_allocate", {})), TOOL_INSTABILITY)


def test_writing_outside_the_scratch_dir_fails(box, tmp_path):
    if not box.isolation["readonly_fs"]:
        need(box, "separate_uid")  # then at least file permissions protect root's files
    target = tmp_path / "escaped.txt"
    assert_contained(box, run_code(box, f"open({str(target)!r}, 'w').write('x')"), TOOL_CALL_FAILURE)
    assert_contained(box, box.run(Call("evil_write", {"path": str(target)})), TOOL_CALL_FAILURE)
    assert_contained(box, box.run(Call("evil_write", {"path": "../escaped.txt"})), TOOL_CALL_FAILURE)
    assert not target.exists()


def test_killing_the_parent_fails(box):
    need(box, "separate_uid")  # without it the child runs as our user and really could kill us
    me = os.getpid()
    kill_me = f"import os, signal\nos.kill({me}, signal.SIGKILL)"
    assert_contained(box, run_code(box, kill_me), TOOL_CALL_FAILURE)
    kill_worker = "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)"
    assert_contained(box, run_code(box, kill_worker), TOOL_CALL_FAILURE)
    assert_contained(box, box.run(Call("evil_kill", {"pid": me})), TOOL_CALL_FAILURE)


def test_a_lost_worker_is_replaced(box):
    """What a child could do without root (kill its worker) and what a crash does: the call in
    flight gets an instability error, the worker is replaced, later calls work."""
    result = {}

    def in_flight():
        result["r"] = box.run(Call("evil_sleep", {"seconds": 0.8}))

    t = threading.Thread(target=in_flight)
    t.start()
    time.sleep(0.3)
    old = box.worker_pids()
    for pid in old:
        os.kill(pid, signal.SIGKILL)
    t.join()
    assert_contained(box, result["r"], TOOL_INSTABILITY)
    assert box.map([Call("echo", {"text": "a", "times": 2})] * 4) == [Result(True, "aa")] * 4
    assert not set(box.worker_pids()) & set(old)


def test_the_parents_environment_is_out_of_reach(box):
    print_secret = "import os\nprint(os.environ['TL_SANDBOX_TEST_SECRET'])"
    assert_contained(box, run_code(box, print_secret), TOOL_CALL_FAILURE)
    own = run_code(box, "print(open('/proc/self/environ', 'rb').read())")  # unreadable, or scrubbed
    assert SECRET not in own.feedback
    need(box, "separate_uid")  # as the same user, /proc/<pid>/environ of the caller is readable
    assert_contained(box, box.run(Call("evil_read_environ", {"pid": os.getpid()})), TOOL_CALL_FAILURE)


def test_printing_100_megabytes_hits_the_output_cap(box):
    assert_contained(box, run_code(box, "print('x' * 100_000_000)"), TOOL_INSTABILITY)
    assert_contained(box, box.run(Call("evil_huge_output", {})), TOOL_INSTABILITY)
    # 6000 characters > max_output=4096
    assert_contained(box, box.run(Call("echo", {"text": "abc", "times": 2000})), TOOL_INSTABILITY)


def test_deep_recursion_and_crashes(box):
    assert_contained(box, run_code(box, "def f(n):\n    return f(n + 1)\nf(0)"), TOOL_CALL_FAILURE)
    assert_contained(box, box.run(Call("evil_recursion", {})), TOOL_CALL_FAILURE)
    crash = box.run(Call("evil_segfault", {}))
    assert_contained(box, crash, TOOL_INSTABILITY)
    assert "SIGSEGV" in crash.message
    # RecursionError suppressed: the C stack or the memory limit ends it, or the timeout does.
    unbounded = "import sys\nsys.setrecursionlimit(10**8)\ndef f(n):\n    return f(n + 1)\nf(0)"
    assert_contained(box, run_code(box, unbounded), TOOL_INSTABILITY)


def test_model_code_cannot_forge_the_protocol(box):
    """A child inherits no protocol fd: writing fake replies to fds 3..63 reaches nothing."""
    code = (
        "import os\nfor fd in range(4, 64):\n    try:\n        os.write(fd, b'{\"ok\": true}\\n')\n"
        "    except OSError:\n        pass\nprint('done')"
    )
    assert run_code(box, code) == Result(True, "done")
    assert box.run(Call("echo", {"text": "still in sync"})) == Result(True, "still in sync")
    assert classify_feedback(Result(True, "still in sync").feedback) == ALL_RIGHT


def test_arguments_that_are_not_json_give_an_error_result(box):
    """Calls built in Python (not parsed from text) may hold values JSON cannot carry."""
    assert box.run(Call("echo_json", {"data": {"k": [1, "a"]}})) == Result(True, '{"k": [1, "a"]}')
    bad = box.run(Call("echo_json", {"data": {"k": {1, 2}}}))
    assert_contained(box, bad, TOOL_CALL_FAILURE)
    assert bad.message == "TypeError: Object of type set is not JSON serializable"
    odd = box.run(Call("run_python", {"code": {1, 2}}))  # caught earlier, by the type check
    assert odd.category == OTHERS
    assert odd.message == "TypeError: run_python() argument 'code' must be str, not set"


def assert_keeps_the_contract(result: Result, max_output: int = 4096):
    """What the caller guarantees for every Result, whatever the tool's code wrote."""
    # valid UTF-8: no lone surrogates (encode() would raise)
    result.output.encode()
    result.message.encode()
    if result.ok:
        assert result.category == ALL_RIGHT and result.message == "" and len(result.output) <= max_output
    else:
        assert result.category in FEEDBACK_CATEGORIES and result.category != ALL_RIGHT
        assert result.output == "" and 0 < len(result.message) <= 1024
        assert classify_feedback(result.feedback) == result.category


@pytest.mark.parametrize(
    "code, message",
    [
        ("raise SystemExit", "SystemExit"),
        ("import sys\nsys.exit('bye')", "SystemExit: bye"),
        ("raise StopIteration", "StopIteration"),
        ("raise KeyboardInterrupt", "KeyboardInterrupt"),
        ("raise GeneratorExit", "GeneratorExit"),
        ("class Boom(Exception):\n    pass\nraise Boom", "Error: Boom"),
        ("class Boom(Exception):\n    pass\nraise Boom('it broke')", "Error: Boom: it broke"),
        ("raise ValueError", "ValueError"),
        ("raise Exception", "Exception"),
        ("raise TimeoutError", "TimeoutError"),
        ("raise UserWarning('careful')", "Error: UserWarning: careful"),
        (
            "class Odd(Exception):\n    def __str__(self):\n        raise RuntimeError\nraise Odd",
            "Error: Odd",
        ),
        ("import numpy", None),  # not importable in the child: an ImportError of some kind
    ],
)
def test_a_tools_exception_is_read_back_as_a_failure(box, code, message):
    result = run_code(box, code)
    assert_contained(box, result)
    if message is not None:
        assert result.message == message
    assert_keeps_the_contract(result)


SYSV_IPC = "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nKEY = 0x7153\n"
IPC_CHANNELS = {  # store SECRET in one call, read it back in a later one
    "sysv_shm": (
        SYSV_IPC + "libc.shmat.restype = ctypes.c_void_p\nshm = libc.shmget(KEY, 1 << 20, 0o1666)\n"
        "assert shm >= 0, ctypes.get_errno()\nctypes.memmove(libc.shmat(shm, None, 0), b'%s', %d)",
        SYSV_IPC + "libc.shmat.restype = ctypes.c_void_p\nshm = libc.shmget(KEY, 0, 0)\n"
        "assert shm >= 0, ctypes.get_errno()\nprint(ctypes.string_at(libc.shmat(shm, None, 0), 64))",
    ),
    "sysv_msg": (
        SYSV_IPC + "q = libc.msgget(KEY, 0o1666)\nassert q >= 0, ctypes.get_errno()\n"
        "assert libc.msgsnd(q, (8).to_bytes(8, 'little') + b'%s', %d, 0) == 0",
        SYSV_IPC + "q = libc.msgget(KEY, 0)\nbuf = ctypes.create_string_buffer(128)\n"
        "assert libc.msgrcv(q, buf, 100, 0, 0o4000) > 0, ctypes.get_errno()\nprint(buf.raw)",
    ),
    "posix_mq": (
        SYSV_IPC + "q = libc.mq_open(b'/tl-test', 0o102, 0o666, None)\nassert q >= 0, ctypes.get_errno()\n"
        "assert libc.mq_send(q, b'%s', %d, 0) == 0",
        SYSV_IPC + "q = libc.mq_open(b'/tl-test', 0o2)\nbuf = ctypes.create_string_buffer(10000)\n"
        "assert libc.mq_receive(q, buf, 10000, None) > 0, ctypes.get_errno()\nprint(buf.value)",
    ),
}
# the syscall numbers of (add_key, keyctl)
_KEYCTL = {"x86_64": (248, 250), "aarch64": (217, 219)}.get(platform.machine(), (None, None))
ADD_KEY, KEYCTL = _KEYCTL
IPC_CHANNELS["user_keyring"] = (
    SYSV_IPC + f"k = libc.syscall({ADD_KEY}, b'user', b'tl-test', b'%s', %d, -4)\n"
    "assert k > 0, ctypes.get_errno()",
    SYSV_IPC + f"k = libc.syscall({KEYCTL}, 10, -4, b'user', b'tl-test', 0)\n"  # KEYCTL_SEARCH
    "assert k > 0, ctypes.get_errno()\n"
    "buf = ctypes.create_string_buffer(128)\n"
    f"libc.syscall({KEYCTL}, 11, k, buf, 128)\n"  # KEYCTL_READ
    "print(buf.value)",
)


@pytest.mark.parametrize("channel", sorted(IPC_CHANNELS))
def test_ipc_and_keyrings_carry_nothing_to_a_later_call(box, channel):
    if _KEYCTL[0] is None and channel == "user_keyring":
        pytest.skip("no keyctl syscall numbers for this architecture in the test")
    store, load = IPC_CHANNELS[channel]
    for _ in box.worker_pids():  # every worker: consecutive calls take turns
        box.run(Call("run_python", {"code": store % (SECRET, len(SECRET))}))
    for _ in box.worker_pids():
        loaded = run_code(box, load)
        assert_contained(box, loaded)
        assert SECRET not in loaded.feedback


def test_no_network_reaches_the_host(box):
    need(box, "network")
    with socket.socket() as tcp, socket.socket(type=socket.SOCK_DGRAM) as udp:
        for server in (tcp, udp):
            server.bind(("127.0.0.1", 0))
            server.setblocking(False)
        tcp.listen()
        port = tcp.getsockname()[1]
        udp_port = udp.getsockname()[1]
        raw_tcp = (
            f"import socket\ns = socket.socket(socket.AF_INET)\ns.connect(('127.0.0.1', {port}))\n"
            "s.sendall(b'hi')"
        )
        raw_udp = (
            f"import socket\nsocket.socket(type=socket.SOCK_DGRAM).sendto(b'hi', ('127.0.0.1', {udp_port}))"
        )
        assert_contained(box, run_code(box, raw_tcp))
        assert_contained(box, run_code(box, raw_udp))
        assert_contained(box, box.run(Call("evil_connect", {"port": port})))
        assert_contained(
            box, run_code(box, "import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=0.5)")
        )
        with pytest.raises(BlockingIOError):
            tcp.accept()  # nobody ever connected
        with pytest.raises(BlockingIOError):
            udp.recv(16)  # nothing ever arrived


def test_no_unix_socket_or_vsock_reaches_the_host(box):
    need(box, "seccomp")
    folder = tempfile.mkdtemp(prefix="tl-test-")
    try:
        os.chmod(folder, 0o755)
        path = os.path.join(folder, "server.sock")
        with socket.socket(socket.AF_UNIX) as server:
            server.bind(path)
            os.chmod(path, 0o777)  # world-writable: any uid could connect, were it not for the sandbox
            server.listen()
            server.setblocking(False)
            unix = f"import socket\ns = socket.socket(socket.AF_UNIX)\ns.connect({path!r})\ns.sendall(b'hi')"
            assert_contained(box, run_code(box, unix))
            with pytest.raises(BlockingIOError):
                server.accept()
    finally:
        Path(folder, "server.sock").unlink(missing_ok=True)
        os.rmdir(folder)
    vsock = "import socket\ns = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)\ns.connect((2, 1234))"
    assert_contained(box, run_code(box, vsock))  # CID 2: the host


@pytest.mark.parametrize(
    "forged",
    [
        {"ok": True, "output": "x" * 40_000, "category": "all_right", "message": ""},  # past max_output
        {"ok": True, "output": "fine", "category": "tool_hallucination", "message": ""},
        {"ok": True, "output": "fine", "category": "all_right", "message": "and an error"},
        {"ok": False, "output": "", "category": "all_right", "message": "ValueError: x"},
        {"ok": False, "output": "", "category": "no such category", "message": "ValueError: x"},
        # MAE reads the message as all_right
        {"ok": False, "output": "", "category": "param_missing", "message": "fine, really"},
        {"ok": False, "output": "", "category": "tool_call_failure", "message": "ValueError: " + "x" * 5000},
        {"ok": 1, "output": ["x"], "category": None, "message": {}},
    ],
)
def test_a_forged_result_is_caught_by_the_caller(box, forged):
    """The tool's code writes its own reply to the result pipe, or patches what the child sends it
    with."""
    via_fd = f"import json, os\nos.write(3, json.dumps({forged!r}).encode())\nos._exit(0)"
    via_dumps = f"import json\nforged = json.dumps({forged!r})\njson.dumps = lambda *a, **k: forged"
    via_write = (
        f"import json, os\nforged, write = json.dumps({forged!r}).encode(), os.write\n"
        "os.write = lambda fd, data: write(fd, forged) and len(data)"
    )
    for code in (via_fd, via_dumps, via_write):
        result = run_code(box, code)
        if code is via_dumps and result.ok:
            continue  # the child looked json.dumps up before the tool ran: the patch came too late
        assert_contained(box, result, TOOL_INSTABILITY)
        assert_keeps_the_contract(result)
        if len(forged["output"]) > 4096:
            limit_message = "500 Server Error: output limit exceeded (40000 characters, the limit is 4096)"
            assert result.message == limit_message


def test_closing_the_result_pipe_does_not_outlast_the_timeout(box):
    workers = box.worker_pids()
    result = run_code(box, "import os, time\nos.close(3)\ntime.sleep(600)")
    assert_contained(box, result, TOOL_INSTABILITY)
    assert result.message == "TimeoutError: the tool call timed out after 1 s"  # the call's own deadline
    assert box.worker_pids() == workers  # no worker was lost to it


def test_memfd_cannot_hold_memory_past_the_limit(box):
    # 320 MB > memory_mb=256
    code = (
        "import os\nblock = bytes(16 << 20)\nfds = [os.memfd_create('m') for _ in range(20)]\n"
        "for fd in fds:\n    os.write(fd, block)\nprint(len(fds) * 16, 'MB held')"
    )
    result = run_code(box, code)
    assert_contained(box, result)
    assert "timed out" not in result.message


def test_each_call_starts_in_a_pristine_scratch_dir(box):
    check = (
        "import os\nst = os.stat('.')\nopen('probe', 'w').write('x')\n"
        "(oct(st.st_mode), st.st_mtime > 1e9, os.listxattr('.'), sorted(os.listdir('.')))"
    )
    spoil = (
        "import os\ntry:\n    os.setxattr('.', 'user.tl', b'left behind')\nexcept OSError:\n    pass\n"
        "open('left', 'w').write('x')\nos.utime('.', (0, 0))\nos.chmod('.', 0)"
    )
    fresh = run_code(box, check)
    assert fresh.ok and fresh.output.endswith("True, [], ['probe'])"), fresh
    for _ in box.worker_pids():  # every worker: consecutive calls take turns
        assert run_code(box, spoil).ok
    for _ in box.worker_pids():
        assert run_code(box, check) == fresh


def test_a_deep_scratch_tree_is_removed_and_close_never_raises():
    deep = (
        "import os\ntop = os.getcwd()\nfor _ in range(1500):\n    os.mkdir('d')\n    os.chdir('d')\n"
        "open('f', 'w').write('x' * 1000)\nos.chmod('.', 0)\ntop"
    )
    with Sandbox({"run_python": TOOLS["run_python"]}, workers=1, timeout=5.0) as sandbox:
        worker = sandbox.worker_pids()
        first = sandbox.run(Call("run_python", {"code": deep}))
        assert first.ok, first
        scratch = Path(eval(first.output))
        after = sandbox.run(Call("run_python", {"code": "import os\nos.listdir('..')"}))
        assert after.ok and scratch.name not in after.output  # the deep tree is gone
        assert sandbox.worker_pids() == worker
        os.kill(worker[0], signal.SIGKILL)  # a dead worker does not make close() fail either
    sandbox.close()  # again: a no-op
    root = scratch.parents[1]
    assert root.name.startswith("tl-sandbox-") and not root.exists()


def test_untrusted_text_never_makes_run_raise(box):
    lone = "\ud800"
    calls = [
        Call("echo", {"text": f"a{lone}b"}),
        Call(f"get_wea{lone}ther", {}),
        Call("echo", {f"t{lone}": "x"}),
        Call("echo_json", {"data": {lone: "\udfff"}}),
        Call("run_python", {"code": f"print('{lone}')"}),
        Call("run_python", {"code": "raise ValueError('\\udfff')"}),
        Call("echo", None),
        Call(["a", "list"], {}),
        Call("echo", {"text": "x", "times": 10**5000}),
    ]
    results = [box.run(c) for c in calls]
    for result in results:
        assert_keeps_the_contract(result)
    assert results[0] == Result(True, "a\ufffdb")
    assert results[1].category == TOOL_HALLUCINATION


def test_isolation_reports_each_layer(box):
    assert set(box.isolation) == {"network", "readonly_fs", "disk_quota", "separate_uid", "ipc", "seccomp"}
    assert all(type(v) is bool for v in box.isolation.values())


def test_a_worker_whose_isolation_probe_dies_does_not_start(monkeypatch, tmp_path):
    """A probe killed by a signal has a negative exit code, whose bits must not read as layers."""
    import json
    from multiprocessing.connection import Pipe

    from tl import sandbox

    monkeypatch.setattr(os, "geteuid", lambda: 1000)  # no namespace may be entered in this test process
    monkeypatch.setattr(sandbox, "_SECCOMP", sandbox._SECCOMP)
    monkeypatch.setattr(sandbox, "confine", lambda uid, layers, program: os.kill(os.getpid(), signal.SIGKILL))
    ours, theirs = Pipe()
    ours.send_bytes(b"null")  # ends the serving loop, should the worker (wrongly) start
    sandbox.worker_main({"tools": {}, "scratch_root": str(tmp_path), "uid": None}, theirs)
    reply = json.loads(ours.recv_bytes())
    assert reply == {"ready": False, "error": "RuntimeError: the isolation probe was killed by signal 9"}


def test_a_tree_of_any_depth_and_mode_is_removed(tmp_path):
    fd = os.open(tmp_path, os.O_RDONLY)
    for _ in range(1500):  # deeper than Python 3.11's recursive shutil.rmtree can go
        os.mkdir("d", dir_fd=fd)
        parent = fd
        fd = os.open("d", os.O_RDONLY, dir_fd=parent)
        os.close(parent)
    os.close(os.open("f", os.O_CREAT | os.O_WRONLY, dir_fd=fd))
    os.chmod(fd, 0)  # a locked directory at the bottom
    os.close(fd)
    _remove_tree(str(tmp_path / "d"))
    assert not (tmp_path / "d").exists()
