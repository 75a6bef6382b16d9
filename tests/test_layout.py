"""The layout stays true: each stage's dvc.yaml deps cover every carbon_pipe module its pipeline module imports
(so they are exact by construction), train-baseline imports nothing of the scheduler's, the layering rules of
pyproject.toml (import-linter) hold, rooms say their concern, functions and modules stay short, and the suite's
longest-first table (tests/file_seconds.json, written by .ci/file_seconds.py) names real files."""

from __future__ import annotations

import ast
import functools
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .conftest import REPO, VENV_BIN, default_params, write_params

PACKAGE = REPO / "carbon_pipe"
# Shared plumbing: edits to these must not retrain, so no stage lists them; what they import is theirs to keep light.
PLUMBING = (
    {f"carbon_pipe/{name}.py" for name in ("errors", "timeutil", "artifacts", "layout", "signals", "secrets")}
    | {f"carbon_pipe/cli/{path.name}" for path in (PACKAGE / "cli").glob("*.py")}
    | {f"carbon_pipe/config/{path.name}" for path in (PACKAGE / "config").glob("*.py")}  # the params schema
)
STAGES = {
    "fetch-data": "carbon_pipe/pipeline/fetch_data.py",
    "wait-for-window": "carbon_pipe/pipeline/wait_for_window.py",
    "train-baseline": "carbon_pipe/pipeline/train_baseline.py",
    "train-optimized": "carbon_pipe/pipeline/train_optimized.py",
    "compare": "carbon_pipe/pipeline/compare.py",
}
# Functions stay short; a module is as long as its one concern needs (split by concern, never by a line count).
MAX_FUNCTION_LINES, MAX_TOP_LEVEL_MODULES = 60, 8


def relative(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def module_file(dotted: str) -> Path | None:
    """carbon_pipe.a.b -> carbon_pipe/a/b.py or carbon_pipe/a/b/__init__.py (None outside the package)."""
    if dotted.split(".")[0] != "carbon_pipe":
        return None
    base = REPO.joinpath(*dotted.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def type_checking_only(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


@functools.cache  # the stages' closures share most modules: each is parsed once per session
def imports(path: Path) -> frozenset[Path]:
    """The carbon_pipe modules `path` imports: at the top, inside functions, anywhere but `if TYPE_CHECKING:`."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = {id(inner) for node in ast.walk(tree) if type_checking_only(node) for inner in ast.walk(node)}
    package = relative(path).removesuffix(".py").replace("/", ".")
    if path.name == "__init__.py":
        package = package.removesuffix(".__init__")
    else:
        package = package.rsplit(".", 1)[0]
    found: set[Path] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]) if node.level else ""
            base = ".".join(part for part in (base, node.module or "") if part)
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {file for file in map(module_file, names) if file is not None}
    return frozenset(found)


def with_parents(path: Path) -> set[Path]:
    """Importing a module runs every package __init__ above it."""
    parents = {folder / "__init__.py" for folder in path.parents if PACKAGE in (folder, *folder.parents)}
    return {path} | {init for init in parents if init.is_file()}


def closure(start: str) -> set[str]:
    """Every carbon_pipe module importing `start` runs, not looking into the plumbing's own imports."""
    seen: set[Path] = set()
    todo = with_parents(REPO / start)
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        if relative(path) not in PLUMBING:
            for found in imports(path):
                todo |= with_parents(found)
    return {relative(path) for path in seen}


def covered(module: str, deps: list[str]) -> bool:
    return any(module == dep or module.startswith(dep.rstrip("/") + "/") for dep in deps)


@pytest.mark.parametrize("stage", STAGES)
def test_each_stage_depends_on_every_module_it_imports(stage):
    deps = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"][stage]["deps"]
    code = closure(STAGES[stage])
    plumbing = PLUMBING | {module for module in code if module.endswith("__init__.py")}
    missing = sorted(module for module in code - plumbing if not covered(module, deps))
    assert not missing, f"{stage} imports these, not in its dvc.yaml deps: {missing}"
    assert STAGES[stage] in deps  # the stage's own module, named on its own


@pytest.mark.slow
def test_the_closure_sees_imports_inside_functions_and_package_inits():
    """The checker itself: train-optimized reaches the sources through the package __init__ that registers them."""
    code = closure(STAGES["train-optimized"])
    assert {"carbon_pipe/intensity/sources/uk.py", "carbon_pipe/scheduling/replanning.py"} <= code
    assert "carbon_pipe/cli.py" not in code and "carbon_pipe/training/model.py" in code


def test_the_baseline_imports_nothing_of_the_scheduler_or_the_sources():
    code = closure(STAGES["train-baseline"])
    assert not [
        module for module in code if module.startswith(("carbon_pipe/scheduling/", "carbon_pipe/intensity/sources/"))
    ]
    assert {"carbon_pipe/intensity/horizon.py", "carbon_pipe/training/loop.py"} <= code


@pytest.mark.slow
def test_loading_params_imports_no_network_code(tmp_path):
    script = (
        "import sys; from carbon_pipe.config.params import load_params; load_params(sys.argv[1]); "
        "print(sorted(sys.modules))"
    )
    path = write_params(tmp_path, default_params())
    result = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    loaded = result.stdout
    assert "'httpx'" not in loaded and "carbon_pipe.intensity.sources" not in loaded and "'torch'" not in loaded


def sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


@pytest.mark.slow
def test_functions_stay_short():
    long_functions = []
    for path in sources():
        text = path.read_text(encoding="utf-8")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long_functions.append(f"{relative(path)}:{node.lineno} {node.name}: {length} lines")
    assert not long_functions, long_functions


def test_few_top_level_modules_and_each_room_says_its_concern():
    top = sorted(path.name for path in PACKAGE.glob("*.py") if path.name != "__init__.py")
    assert len(top) <= MAX_TOP_LEVEL_MODULES, top
    for init in sorted(PACKAGE.rglob("__init__.py")):
        docstring = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        summary = (docstring or "").split("\n\n")[0]
        assert summary and "\n" not in summary, f"{relative(init)}: a first line saying what lives there"


def test_no_test_reads_the_working_copys_params():
    """`dvc exp run -S ...` rewrites params.yaml, values and formatting: tests build their params from the schema's
    defaults (conftest.default_params), or read the committed file (conftest.committed_params_text)."""
    working_copy = re.compile(r'(REPO|parents\[\d\])\s*/\s*"params\.yaml"')
    tests = sorted((REPO / "tests").rglob("*.py"))
    assert [relative(path) for path in tests if working_copy.search(path.read_text())] == []


def test_the_tests_mirror_the_package():
    """A module's tests are where the module is: tests/<sub-package>/test_*.py, end-to-end scenarios in tests/e2e/;
    at the top of tests/ only the top-level modules' tests (test_<module>_*.py) and checks of the whole repository."""
    tests = REPO / "tests"
    folders = {relative(path.parent) for path in tests.rglob("test_*.py")} - {"tests", "tests/e2e"}
    assert [folder for folder in sorted(folders) if not (REPO / "carbon_pipe" / folder[6:]).is_dir()] == []
    # each folder a package, so that test modules of one name in two folders both collect
    assert [folder for folder in sorted(folders | {"tests/e2e"}) if not (REPO / folder / "__init__.py").is_file()] == []
    modules = {path.stem for path in PACKAGE.glob("*.py")} | {"docs", "layout", "benchmarks", "package"}
    top = [path.name for path in sorted(tests.glob("test_*.py")) if path.stem[5:].split("_")[0] not in modules]
    assert top == [], "name a top-level test file after the module it tests, or move it into the sub-package's folder"


def lint_imports(package_root: Path) -> subprocess.CompletedProcess:
    """import-linter's contracts (pyproject.toml) checked against the carbon_pipe package under `package_root`."""
    environment = {**os.environ, "PYTHONPATH": str(package_root), "COLUMNS": "300"}  # a contract on one line
    return subprocess.run(
        [str(Path(VENV_BIN) / "lint-imports"), "--no-cache", "--no-logo", str(REPO / "pyproject.toml")],
        cwd=package_root, capture_output=True, text=True, env=environment,
    )


def test_the_layering_rules_hold():
    """cli above the front ends above the concerns above the schema above the plumbing; pure planners; no circles
    inside a room; each intensity source alone."""
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"Contracts: [1-9]\d* kept, 0 broken", result.stdout), result.stdout


@pytest.mark.parametrize(
    "module, line, contract",
    [
        ("emissions/accounting.py", "from ..backtest import scoring", "cli above the front ends"),  # an arrow up
        ("scheduling/planner.py", "import time", "the planners themselves"),  # a planner telling the time
        ("training/resume.py", "from .placement import Placement", "no import circles"),
    ],
)
def test_the_layering_rules_catch_a_broken_rule(tmp_path, module, line, contract):
    shutil.copytree(PACKAGE, tmp_path / "carbon_pipe", ignore=shutil.ignore_patterns("__pycache__"))
    path = tmp_path / "carbon_pipe" / module
    path.write_text(path.read_text(encoding="utf-8") + f"\n{line}\n", encoding="utf-8")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    broken = [text for text in result.stdout.splitlines() if re.search(r" BROKEN( \(.*\))?$", text)]
    assert len(broken) == 1 and broken[0].startswith(contract), result.stdout


def file_seconds_script():
    spec = importlib.util.spec_from_file_location("file_seconds", REPO / ".ci" / "file_seconds.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_file_in_the_seconds_table_exists():
    """A renamed or removed file would leave its seconds behind, and its new name would be ordered as unknown."""
    table = json.loads((REPO / "tests" / "file_seconds.json").read_text())
    assert table and [file for file in table if not (REPO / file).is_file()] == []


def test_a_junit_report_becomes_each_files_total_seconds_longest_first(tmp_path):
    report = tmp_path / "junit.xml"
    report.write_text(
        '<testsuites><testsuite name="pytest">'
        '<testcase classname="tests.test_layout" name="a" time="1.25"/>'
        '<testcase classname="tests.queue.test_slurm" name="b" time="30.0"/>'
        '<testcase classname="tests.test_layout.SomeClass" name="c" time="0.5"/>'
        "</testsuite></testsuites>"
    )
    table = file_seconds_script().file_seconds(report)
    assert table == {"tests/queue/test_slurm.py": 30.0, "tests/test_layout.py": 1.8}
    assert list(table) == ["tests/queue/test_slurm.py", "tests/test_layout.py"]
