"""The runner of the bad-input tables (tests/test_bad_input.py, test_hostile_input.py, test_hostile_images.py,
test_hostile_text.py): each case a real `python -m train.<model> --workdir=W <args> --config.data_dir=<tmp>/tfds`
process (JAX_PLATFORMS=cpu), checked for one `error:` line on stderr holding the case's fragments, exit code 2, no
traceback, and nothing created or changed.

Every refusal must come before any compilation, so a case costs about its process's start-up (imports). A case
without environment of its own is forked from tests/cli_forkserver.py, which has those imports done, and is then
`python -m train.<model>` from the entry module on; a case with its own environment is a real process. A table's
test file runs on one xdist worker (--dist loadfile); its selected cases are started together from a module-scoped
fixture on a small thread pool (`run_selected`), and each test checks its own case's outcome (`check_refused`).
A case on an EXISTING workdir runs on a finished tiny run (its module's, or another module's, made once by the
same pool from the table's SETUPS) and checks that every file's size and mtime are unchanged.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import threading

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
TIMEOUT_S = 180  # a case that is not refused would start training: fail it instead of waiting
WORKERS = max(2, min(4, os.cpu_count() or 2))
JAX_CACHE = os.environ.get("ZOO_TEST_JAX_CACHE", str(ROOT / ".pytest_cache" / "jax"))


@dataclasses.dataclass(frozen=True)
class Case:
    """args may use {tmp} (the table's data files) and {workdir}; fragments must all appear in the error line.
    existing: False (a fresh workdir, which must not exist afterwards, nothing created next to it), True (the
    module's own finished tiny run) or a module name (that module's finished run): every file there unchanged.
    code: the exit code expected (2 for bad input; 1 for a full disk)."""

    id: str
    module: str
    args: tuple[str, ...]
    fragments: tuple[str, ...]
    workdir: str = "{case}/run"
    existing: bool | str = False
    env: tuple[tuple[str, str], ...] = ()
    code: int = 2


def case(id, module, args, fragments, **kw):
    return pytest.param(Case(id, module, tuple(args), tuple(fragments), **kw), id=id)


@dataclasses.dataclass
class Outcome:
    returncode: int | None
    stdout: str
    stderr: str
    workdir: str
    before: dict | None = None
    after: dict | None = None
    sibling_entries: list | None = None
    setup_failure: str | None = None


def snapshot(root: str) -> dict:
    """path -> (size, mtime_ns) of every file and directory under root (root included)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [""] + dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            out[os.path.relpath(p, root)] = (st.st_size if name in filenames else 0, st.st_mtime_ns)
    return out


def cli_args(workdir: str, args, tmp: str) -> list[str]:
    data_dir = f"--config.data_dir={tmp}/tfds"  # never created by a refused run; --mode=sample takes the run's own
    given = any(a.startswith("--config.data_dir=") or a == "--mode=sample" for a in args)
    return [f"--workdir={workdir}", *args, *([] if given else [data_dir])]


class ForkServer:
    """tests/cli_forkserver.py, started once per table with env_extra on top of JAX_PLATFORMS=cpu: run(module,
    argv) -> (returncode, stdout, stderr) of a child forked there, from any thread."""

    def __init__(self, env_extra=()):
        env = {**os.environ, "JAX_PLATFORMS": "cpu", **dict(env_extra)}
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "cli_forkserver.py")],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert json.loads(self.proc.stdout.readline()) == {"ready": True}, "the fork server did not start"
        self.env, self.outputs = env, tempfile.mkdtemp(prefix="cli_forks_")
        self.lock, self.waiting, self.count = threading.Lock(), {}, 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            done = json.loads(line)
            box = self.waiting[done["id"]]
            box.append(done["rc"])
            box[0].set()

    def run(self, module: str, argv: list[str], timeout=TIMEOUT_S):
        with self.lock:
            self.count += 1
            rid = str(self.count)
            box = self.waiting[rid] = [threading.Event()]
            out, err = (os.path.join(self.outputs, f"{rid}.{s}") for s in ("out", "err"))
            req = dict(id=rid, module=module, argv=argv, cwd=str(ROOT), env=self.env, out=out, err=err, timeout=timeout)
            self.proc.stdin.write(json.dumps(req) + "\n")
            self.proc.stdin.flush()
        box[0].wait()
        rc = box[1]
        stdout, stderr = (pathlib.Path(p).read_text() for p in (out, err))
        if rc == -14:  # SIGALRM: past its timeout
            return None, stdout, f"TIMEOUT after {timeout}s (not refused before training?)\n{stderr}"
        return rc, stdout, stderr

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=60)
        shutil.rmtree(self.outputs, ignore_errors=True)


def run_cli(module: str, workdir: str, args, tmp: str, env_extra=(), timeout=TIMEOUT_S, forks: ForkServer = None):
    """The process `python -m train.<module> --workdir=W ARGS --config.data_dir=<tmp>/tfds`; forked from `forks`
    when given and the case has no environment of its own."""
    if forks is not None and not env_extra:
        return forks.run(module, cli_args(workdir, args, tmp), timeout)
    env = {**os.environ, "JAX_PLATFORMS": "cpu", **dict(env_extra)}
    cmd = [sys.executable, "-m", f"train.{module}", *cli_args(workdir, args, tmp)]
    try:
        p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        return p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as e:
        return None, str(e.stdout or ""), f"TIMEOUT after {timeout}s (not refused before training?)\n{e.stderr or ''}"


def fill(s: str, tmp: str, case_dir: str = "") -> str:
    return s.replace("{tmp}", tmp).replace("{case}", case_dir)


def setup_args(setup, tmp: str) -> list[str]:
    """The command-line arguments of a finished run's setup: {KEY: VALUE} as --config.KEY=VALUE, or a list of
    arguments as they are."""
    args = setup if isinstance(setup, (list, tuple)) else [f"--config.{k}={v}" for k, v in setup.items()]
    return [fill(a, tmp) for a in args]


def owner(c: Case) -> str:
    """The module whose finished run an `existing` case runs in."""
    return c.existing if isinstance(c.existing, str) else c.module


def _run_case(c: Case, tmp: str, setups: dict, forks: ForkServer | None = None) -> Outcome:
    args = [fill(a, tmp) for a in c.args]
    if c.existing:
        workdir = os.path.join(tmp, f"existing_{owner(c)}")
        if owner(c) == c.module and "--mode=sample" not in args:  # the setup's own flags, unless the case's replace
            given = {a.split("=", 1)[0] for a in args}
            args = [a for a in setup_args(setups[c.module], tmp) if a.split("=", 1)[0] not in given] + args
        before = snapshot(workdir)
        rc, out, err = run_cli(c.module, workdir, args, tmp, c.env, forks=forks)
        return Outcome(rc, out, err, workdir, before=before, after=snapshot(workdir))
    case_dir = os.path.join(tmp, "cases", c.id)
    os.makedirs(case_dir)
    workdir = fill(c.workdir, tmp, case_dir)
    rc, out, err = run_cli(c.module, workdir, args, tmp, c.env, forks=forks)
    return Outcome(rc, out, err, workdir, sibling_entries=sorted(os.listdir(case_dir)))


def _setup_then_cases(module: str, cases: list[Case], tmp: str, setups: dict, forks) -> dict[str, Outcome]:
    """The module's finished tiny run, then the `existing` cases against it (in this one worker thread)."""
    workdir = os.path.join(tmp, f"existing_{module}")
    args = setup_args(setups[module], tmp)
    rc, out, err = run_cli(module, workdir, args, tmp, (("JAX_COMPILATION_CACHE_DIR", JAX_CACHE),), timeout=300)
    if rc != 0:
        failure = f"setup run of train.{module} failed (rc={rc}):\n{err[-3000:]}"
        return {c.id: Outcome(None, "", "", workdir, setup_failure=failure) for c in cases}
    return {c.id: _run_case(c, tmp, setups, forks) for c in cases}


def run_selected(request, tmp: str, setups: dict) -> dict:
    """Outcomes of the cases (parameter `c`) of the requesting test module selected in this session, all started
    together on a thread pool; `_tmp` holds tmp."""
    selected = [
        item.callspec.params["c"]
        for item in request.session.items
        if getattr(item, "module", None) is request.module
        and "c" in getattr(getattr(item, "callspec", None), "params", {})
    ]
    existing = {}
    for c in selected:
        if c.existing:
            existing.setdefault(owner(c), []).append(c)
    results, forks = {}, ForkServer()
    with concurrent.futures.ThreadPoolExecutor(WORKERS) as pool:
        futures = [pool.submit(_setup_then_cases, m, cs, tmp, setups, forks) for m, cs in existing.items()]
        singles = {pool.submit(_run_case, c, tmp, setups, forks): c.id for c in selected if not c.existing}
        for f in futures:
            results.update(f.result())
        for f, cid in singles.items():
            results[cid] = f.result()
    forks.close()
    results["_tmp"] = tmp
    return results


def check_refused(c: Case, o: Outcome, tmp: str) -> str:
    """Assert the case's rule: exit code c.code, one `error:` line and nothing else on stderr, holding every
    fragment, no traceback, nothing created (a fresh workdir) or changed (an existing one), no data prepared in
    data_dir. Returns the error line."""
    if o.setup_failure:
        pytest.fail(o.setup_failure)
    where = f"train.{c.module} {' '.join(c.args)}\nstderr:\n{o.stderr[-4000:]}"
    assert o.returncode == c.code, where
    assert "Traceback" not in o.stderr, where
    lines = [line for line in o.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and len(lines) == 1, where
    for fragment in c.fragments:
        assert fill(fragment, tmp) in errors[0], f"{fragment!r} not in {errors[0]!r}"
    if c.existing:
        assert o.after == o.before, f"workdir changed: {set(o.after.items()) ^ set(o.before.items())}"
    elif c.code == 2:
        assert not os.path.lexists(o.workdir), f"{o.workdir} was created"
        assert o.sibling_entries == [], f"created next to the workdir: {o.sibling_entries}"
    assert not os.path.exists(os.path.join(tmp, "tfds")), "a refused run prepared data in data_dir"
    return errors[0]


def outcomes_fixture(name: str, write_files, setups: dict):
    """The module-scoped fixture of a table's test file: its data files written by write_files(tmp), then the
    outcomes of its selected cases (run_selected), {case id: Outcome, '_tmp': tmp}."""

    @pytest.fixture(scope="module")
    def outcomes(request, tmp_path_factory):
        tmp = tmp_path_factory.mktemp(name)
        write_files(tmp)
        return run_selected(request, str(tmp), setups)

    return outcomes
