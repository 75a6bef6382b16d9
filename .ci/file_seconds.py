"""Each test file's total seconds from a junit report, for the suite's longest-first order (tests/conftest.py).

    python -m pytest -n 3 --dist loadfile --junitxml=junit.xml && python .ci/file_seconds.py junit.xml

writes tests/file_seconds.json; refresh it when files are added or their run times change much.
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ElementTree
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TABLE = REPO / "tests" / "file_seconds.json"


def file_of(classname: str) -> str:
    """tests.queue.test_slurm (or tests.queue.test_slurm.TestClass) -> tests/queue/test_slurm.py."""
    parts = classname.split(".")
    for end in range(len(parts), 0, -1):
        path = "/".join(parts[:end]) + ".py"
        if (REPO / path).is_file():
            return path
    raise SystemExit(f"{classname}: no test file of that name")


def file_seconds(report: Path) -> dict[str, float]:
    totals: dict[str, float] = defaultdict(float)
    for case in ElementTree.parse(report).iter("testcase"):
        totals[file_of(case.get("classname", ""))] += float(case.get("time", 0))
    return {file: round(seconds, 1) for file, seconds in sorted(totals.items(), key=lambda item: -item[1])}


if __name__ == "__main__":
    TABLE.write_text(json.dumps(file_seconds(Path(sys.argv[1])), indent=1) + "\n")
