"""The front page and docs/ cannot rot: the code runs as printed, and everything they name exists.

README.md is a front page of at most 200 lines. Every relative link in README.md and docs/*.md points at a
file (or folder, or heading) of the repository; every repository path written in backticks exists; every
`zoo.<module>.<name>` resolves; every `tests/<file>.py::<test>` is a test of that file; every
`python -m <module>` of the repository names a module that exists. The checkers are plain functions, and
the last tests feed them broken text to show that they fail.
"""

import importlib
import pathlib
import re

import jax
import jax.numpy as jnp
import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]
TOP_DIRS = ("zoo", "train", "tests", "benchmarks", "colabs", "docs")


def _prose(text: str) -> str:
    """Text outside fenced code blocks."""
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    heading = re.sub(r"`", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", heading).replace(" ", "-")


def _anchors(path: pathlib.Path) -> set[str]:
    return {_slug(m) for m in re.findall(r"^#+ (.*)$", _prose(path.read_text()), flags=re.M)}


def broken_links(text: str, page: pathlib.Path) -> list[str]:
    """Relative links of markdown `text` (as if it were `page`) whose file, folder or heading is missing."""
    bad = []
    prose = re.sub(r"`[^`\n]*`", "", _prose(text))
    for target in re.findall(r"\]\(([^)\s]+)\)", prose):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        path = (page.parent / file).resolve() if file else page
        if ROOT not in (path, *path.parents) or not path.exists():
            bad.append(target)
        elif anchor and path.suffix == ".md":
            anchors = _anchors(page) if not file else _anchors(path)
            if anchor not in anchors:
                bad.append(target)
    return bad


def missing_paths(text: str) -> list[str]:
    """Repository paths written in backticks (`train/ddpm.py`, `tests/`) that do not exist."""
    spans = re.findall(r"`([^`\n]+)`", _prose(text))
    paths = [s.split("::")[0] for s in spans if re.fullmatch(rf"(?:{'|'.join(TOP_DIRS)})/[\w./-]*(?:::\w+)?", s)]
    return [p for p in paths if not (ROOT / p).exists()]


def missing_tests(text: str) -> list[str]:
    """`tests/<file>.py::<test>` names whose file does not exist or has no `def <test>`."""
    bad = []
    for file, name in re.findall(r"\b(tests/[\w/]+\.py)::(\w+)", text):
        path = ROOT / file
        if not path.exists() or not re.search(rf"^\s*def {name}\(", path.read_text(), flags=re.M):
            bad.append(f"{file}::{name}")
    return bad


def unresolved_zoo_names(text: str) -> list[str]:
    """`zoo.<module>[.<name>[.<attr>]]` names that do not import or resolve."""
    bad = []
    for dotted in sorted(set(re.findall(r"\bzoo(?:\.[A-Za-z_]\w*)+", text))):
        _, module, *attrs = dotted.split(".")
        try:
            obj = importlib.import_module(f"zoo.{module}")
            for attr in attrs:
                obj = getattr(obj, attr)
        except (ImportError, AttributeError):
            bad.append(dotted)
    return bad


def missing_modules(text: str) -> list[str]:
    """`python -m <module>` commands naming a module of this repository that does not exist."""
    bad = []
    for module in re.findall(r"python -m ([\w.]*\w)(?![\w.<])", text):  # not `python -m train.<model>`
        parts = module.split(".")
        if parts[0] not in TOP_DIRS:
            continue  # pytest, pip, ...
        base = ROOT.joinpath(*parts)
        if not (base.with_suffix(".py").exists() or (base / "__main__.py").exists()):
            bad.append(module)
    return bad


# ----------------------------------------------------------------------------- the code runs


def test_readme_python_examples_run():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no python example"
    scope = {}
    for i, block in enumerate(blocks):
        exec(compile(block, f"README.md (python block {i + 1})", "exec"), scope)
    assert scope["images"].shape == (4, 8, 8, 1) and bool(jnp.isfinite(scope["images"]).all())
    assert all(bool(jnp.isfinite(g).all()) for g in jax.tree.leaves(scope["grads"]))
    assert float(scope["error"]) > 0 and float(scope["kl"]) > 0
    assert len(scope["near"]) == 2 and {w for w, _ in scope["near"]} <= {"queen", "ship"}


def test_readme_has_the_ci_test_command():
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci == "pip install -e '.[test]' && pytest"
    assert f"```bash\n{ci}\n```" in README.read_text()


# ----------------------------------------------------------------------------- the docs name what exists


def test_readme_is_a_front_page_of_at_most_200_lines():
    lines = README.read_text().splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines; move detail into docs/"


def test_docs_pages_exist_and_readme_links_to_each():
    names = {p.name for p in DOCS}
    expected = {"images.md", "diffusion.md", "words.md", "guarantees.md", "scaling.md", "performance.md", "lecture.md"}
    assert expected <= names
    linked = set(re.findall(r"\]\(docs/([\w.-]+\.md)", README.read_text()))
    assert expected <= linked, f"README does not link {sorted(expected - linked)}"


# What each page may name only if it exists: relative links, paths in backticks, tests, zoo functions and
# `python -m` modules; each check returns what it could not find.
NAMED = {
    "links": lambda page: broken_links(page.read_text(), page),
    "paths": lambda page: missing_paths(page.read_text()),
    "tests": lambda page: missing_tests(page.read_text()),
    "zoo-names": lambda page: unresolved_zoo_names(page.read_text()),
    "modules": lambda page: missing_modules(page.read_text()),
}


@pytest.mark.parametrize("what", NAMED)
@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_what_a_page_names_exists(page, what):
    assert NAMED[what](page) == []


def test_lecture_map_names_a_function_and_a_test_for_every_row():
    text = (ROOT / "docs" / "lecture.md").read_text()
    rows = [r for r in text.splitlines() if re.match(r"\| \d+ \|", r)]
    assert len(rows) >= 30, "the lecture map lost rows"
    for row in rows:
        assert re.search(r"`zoo\.\w+\.\w+", row), f"no zoo function in: {row[:80]}"
        assert re.search(r"`tests/\w+\.py::\w+`", row), f"no test in: {row[:80]}"
    numbers = [int(re.match(r"\| (\d+) \|", r).group(1)) for r in rows]
    assert numbers == list(range(1, len(rows) + 1))


# ----------------------------------------------------------------------------- the checks can fail


def test_checkers_report_what_is_broken():
    page = ROOT / "docs" / "lecture.md"
    assert broken_links(
        "[a](images.md) [b](nowhere.md) [c](images.md#data) [d](images.md#no-such-heading) "
        "[e](https://example.com) [f](../../outside.md) [g](#lecture-map)",
        page,
    ) == ["nowhere.md", "images.md#no-such-heading", "../../outside.md"]
    assert missing_paths("`zoo/ddpm.py` `train/no_such_file.py` `runs/<model>` `tests/`") == ["train/no_such_file.py"]
    assert missing_tests(
        "tests/test_ddpm.py::test_linear_betas_endpoints_and_spacing "
        "tests/test_ddpm.py::test_no_such_test tests/test_nothing.py::test_x"
    ) == ["tests/test_ddpm.py::test_no_such_test", "tests/test_nothing.py::test_x"]
    assert unresolved_zoo_names(
        "`zoo.ddpm.q_sample` `zoo.ddpm.no_such_function` `zoo.nowhere.f` `zoo.ngram.KneserNeyLM.log_prob_sentence`"
    ) == ["zoo.ddpm.no_such_function", "zoo.nowhere.f"]
    assert missing_modules("python -m train.ddpm; python -m train.nothing; python -m pytest") == ["train.nothing"]
