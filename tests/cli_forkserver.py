"""A fork server for the bad-input tables: `python -m train.<module> ARGS` without paying the imports each time.

Run as `python tests/cli_forkserver.py` (JAX_PLATFORMS=cpu in its environment). It imports what every entry module
imports (jax, flax, optax, orbax, grain, the train core), then reads one JSON request per line on stdin,
{"id", "module", "argv", "cwd", "env", "out", "err", "timeout"}, forks a child per request and writes
{"id", "rc"} on stdout when that child ends. The child is what `python -m train.<module>` would be from there on:
its own environment, cwd, stdin /dev/null, stdout and stderr on the named files, the entry module run as __main__
by runpy, its exit code the process's (an uncaught exception prints its traceback and exits 1, as Python does).
A child past its timeout is killed by SIGALRM (rc -14).

JAX reads some environment variables when it is imported, so a request whose environment differs from the
server's in a JAX_ or XLA_ variable must not come here (tests/cli_cases.py runs those as real processes). Nothing
here starts a JAX backend, so forking is safe: each child starts its own.
"""

from __future__ import annotations

import json
import os
import runpy
import selectors
import signal
import sys
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRELOAD = ("jax", "jax.numpy", "flax.linen", "optax", "orbax.checkpoint", "ml_collections", "train.core.cli")


def _exit_code(e: SystemExit) -> int:
    """What Python's own exit does with SystemExit(code): None is 0, an int is itself, anything else is printed
    to stderr and is 1."""
    if e.code is None:
        return 0
    if isinstance(e.code, int):
        return e.code
    print(e.code, file=sys.stderr)
    return 1


def _child(req: dict) -> None:
    os.chdir(req["cwd"])
    os.environ.clear()
    os.environ.update(req["env"])
    for fd, path, flags in ((0, os.devnull, os.O_RDONLY), (1, req["out"], 0), (2, req["err"], 0)):
        opened = os.open(path, flags or os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(opened, fd)
        os.close(opened)
    signal.alarm(int(req["timeout"]))
    sys.argv = [f"-m train.{req['module']}", *req["argv"]]
    code = 0
    try:
        runpy.run_module(f"train.{req['module']}", run_name="__main__", alter_sys=True)
    except SystemExit as e:
        code = _exit_code(e)
    except BaseException:
        traceback.print_exc()
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    os._exit(code)


def serve() -> None:
    sys.path.insert(0, ROOT)
    for name in PRELOAD:
        __import__(name)
    children: dict[int, str] = {}
    sel = selectors.DefaultSelector()
    sel.register(sys.stdin, selectors.EVENT_READ)
    print(json.dumps({"ready": True}), flush=True)
    open_input = True
    while open_input or children:
        if open_input and sel.select(timeout=0.02):
            line = sys.stdin.readline()
            if not line:
                open_input = False
                sel.unregister(sys.stdin)
                continue
            req = json.loads(line)
            pid = os.fork()
            if pid == 0:
                _child(req)
            children[pid] = req["id"]
        for pid in list(children):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                print(json.dumps({"id": children.pop(pid), "rc": os.waitstatus_to_exitcode(status)}), flush=True)
        if not open_input and children:
            signal.sigtimedwait([signal.SIGCHLD], 0.02)


if __name__ == "__main__":
    serve()
