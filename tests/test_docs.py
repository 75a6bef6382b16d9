"""The docs against the code: the generated reference pages are current and list every params.yaml key, the
README names every params section, and every test the fault table cites exists."""

from __future__ import annotations

import importlib.util
import re
import unicodedata
from pathlib import Path

import pytest
import yaml

from .conftest import committed_params_text

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"


@pytest.fixture(scope="module")
def reference():
    spec = importlib.util.spec_from_file_location("gen_reference", DOCS / "gen_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def params_page(reference):
    return reference.params_page()


@pytest.fixture(scope="module")
def params_rows(params_page):
    return {row.split(" | ")[0].strip("| `"): row for row in params_page.splitlines() if row.startswith("| `")}


def leaf_keys(mapping: dict, prefix: str = "") -> list[str]:
    keys = []
    for key, value in mapping.items():
        dotted = f"{prefix}{key}"
        keys += leaf_keys(value, f"{dotted}.") if isinstance(value, dict) and value else [dotted]
    return keys


def test_the_committed_reference_pages_are_what_the_code_generates(reference):
    assert reference.stale_pages() == [], "run python docs/gen_reference.py and commit docs/reference/"


def test_the_params_reference_lists_every_key_of_params_yaml_with_its_value(params_rows):
    rows = params_rows
    keys = leaf_keys(yaml.safe_load(committed_params_text()))
    assert len(keys) > 50
    missing = [key for key in keys if key not in rows]
    assert missing == []
    assert "| `30min` |" in rows["scheduler.replan_interval"]  # the value as params.yaml writes it
    assert "`1800` (30min)" in rows["scheduler.replan_interval"]  # the schema's default


def test_the_params_reference_gives_each_key_its_bounds_and_help(params_page, params_rows):
    rows = params_rows
    assert ">= 0; < 2^32" in rows["seed"]
    assert "> 0; <= 1024" in rows["carbon.uk.max_response_mb"]
    assert "mnist, fashion-mnist, cifar10, folder, custom" in rows["data.dataset"]
    # help from params.yaml's comment, and from the schema's source where params.yaml has none
    assert "pin glibc malloc's thresholds" in rows["train.steady_allocator"]
    assert "each request, from connecting to the last byte" in rows["carbon.watttime.timeout"]
    assert rows["carbon.csv.time_column"].startswith("| `carbon.csv.time_column` | str or `null` |")
    # a section's comment, continued on the line below it in params.yaml, introduces its table
    assert "The paired energy profile" in params_page


def test_the_cli_reference_gives_every_command_and_option_its_help(reference):
    page = reference.cli_page()
    headings = re.findall(r"^## `carbon-pipe (.+)`$", page, re.M)
    assert {"fetch-data", "wait-for-window", "train", "compare", "run", "backtest", "workload adhoc"} <= set(headings)
    for section in page.split("\n## ")[1:]:
        lines = section.splitlines()
        assert lines[2].strip(), f"{lines[0]} has no help"
        for row in (line for line in lines if line.startswith("| `") or line.startswith("| `-")):
            assert not row.rstrip().endswith("|  |"), f"{lines[0]}: an option without help: {row}"


def test_the_artifact_reference_gives_every_key_a_written_file_holds_its_type_and_meaning(reference, workspace):
    from carbon_pipe.config.params import parse_params
    from carbon_pipe.pipeline import wait_for_window

    from .conftest import default_params

    wait_for_window.run_stage(parse_params(default_params()), say=lambda line: None)
    page = reference.artifacts_page()
    sections = dict(re.findall(r"^## `([^`]+)`\n(.*?)(?=^## |\Z)", page, re.M | re.S))
    for path in ("stages/wait-for-window/decision.json", "stages/wait-for-window/horizon.json",
                 "metrics/schedule.json"):
        rows = {row.split(" | ")[0].strip("| `"): row for row in sections[path].splitlines() if row.startswith("| `")}
        keys = leaf_keys(yaml.safe_load(Path(path).read_text()))
        assert keys and [key for key in keys if key not in rows] == [], path  # every key the file holds is listed
        for key, row in rows.items():
            assert not row.rstrip().endswith("|  |"), f"{path}: {key} has no meaning"
    assert {"metrics/<run>.json", "metrics/comparison.json", "metrics/summary.json"} <= set(sections)


def test_the_readme_table_names_every_params_section():
    from carbon_pipe.config.params import Params

    readme = (REPO / "README.md").read_text()
    table = readme.split("## params.yaml", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"^\| `(\w+)`(?:, `(\w+)`)?", table, re.M))
    sections = {name for pair in named for name in pair if name}
    assert sections == set(Params.model_fields)


def fault_rows() -> list[tuple[str, str]]:
    text = (DOCS / "faults.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| fault |")]
    return [(row.split(" | ")[0].strip("| "), row.rsplit(" | ", 1)[1].rstrip(" |")) for row in rows]


def test_the_fault_table_has_its_rows():
    assert len(fault_rows()) > 40


@pytest.mark.parametrize("fault, cell", fault_rows(), ids=[fault[:40] for fault, _ in fault_rows()])
def test_every_test_a_fault_row_names_exists(fault, cell):
    """Each `tests/.../file.py` (or `benchmarks/file.py`) named in the test column is a file, and each `::name` a
    test in the file named before it, `name...` being a prefix."""
    named_file, found = None, 0
    for ref in re.findall(r"`([^`]+)`", cell):
        match = re.fullmatch(r"((?:tests|benchmarks)/[\w/]+\.py)?(?:::(\w+)(\.\.\.)?)?", ref)
        if not match or not (match.group(1) or match.group(2)):
            continue  # a case id, not a reference
        if match.group(1):
            named_file = REPO / match.group(1)
            assert named_file.is_file(), f"{fault}: {ref}: no such file"
        if match.group(2):
            assert named_file is not None, f"{fault}: {ref}: no file named before it"
            names = re.findall(r"^\s*(?:async )?def (test_\w+)", named_file.read_text(), re.M)
            prefix, name = match.group(3), match.group(2)
            assert any(n.startswith(name) if prefix else n == name for n in names), f"{fault}: {ref} not found"
        found += 1
    assert found, f"{fault}: names no test"


def slug(heading: str) -> str:
    """A heading's anchor as mkdocs (Python-Markdown's toc) and, for these headings, GitHub make it."""
    text = unicodedata.normalize("NFKD", heading.replace("`", "")).encode("ascii", "ignore").decode()
    return re.sub(r"[-\s]+", "-", re.sub(r"[^\w\s-]", "", text).strip().lower())


@pytest.mark.parametrize("page", ["README.md", "examples/image-folder/README.md", "examples/own-script/README.md"])
def test_every_relative_link_of_a_readme_reaches_its_file_and_heading(page):
    source = REPO / page
    for link in re.findall(r"\]\(([^)]+)\)", source.read_text()):
        path, _, anchor = link.partition("#")
        if link.startswith(("http://", "https://")):
            continue
        target = (source.parent / path).resolve() if path else source
        assert target.exists(), f"{page}: {link}: no such file"
        if anchor:
            headings = re.findall(r"^#+ (.*)$", target.read_text(), re.M)
            assert anchor in {slug(heading) for heading in headings}, f"{page}: {link}"
