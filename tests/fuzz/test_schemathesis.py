"""schemathesis, run as a client would, against `/api/openapi.json` served over HTTP.

Every phase: the documented examples, the coverage phase (boundaries and each keyword broken in
turn), fuzzing (generated valid and invalid requests) and the stateful phase, which follows the
202's `RegistrationStatus` link (and the Location header) to `GET /api/registrations/{id}`. Every
check but one: no 5xx, every status, content type, header and body as documented, invalid data
refused, 405 with Allow for undocumented methods, and so on.

The check left out, `positive_data_acceptance`, expects every request the schema allows to be
accepted. The intake's rules go further than JSON Schema can state without lying about the API:
a phone number must be one libphonenumber finds valid (in any format), a birth date must be in the
past, kana must be katakana after NFKC, limits hold after NFKC and trimming, and the characters
app/text.py names are refused in every field. The examples phase still posts the documented
example and expects its 202.

`make test` runs a bounded number of cases with a fixed seed; `make fuzz` runs thousands with a fresh
one (tests/fuzz/budget.py; the figures are in docs/reliability.md).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fuzz.budget import SCHEMATHESIS_EXAMPLES, SEED

WORKERS = os.environ.get("FUZZ_WORKERS", "1")
PHASES = "examples,coverage,fuzzing,stateful"
LEFT_OUT_CHECKS = "positive_data_acceptance"

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


def run_schemathesis(live_url: str, report_dir: Path) -> dict:
    """Run `schemathesis run` over HTTP; its JSON report (the failures print on stdout)."""
    seed = [] if SEED == "random" else ["--seed", SEED]
    command = [
        str(SCHEMATHESIS),
        "run",
        f"{live_url}/api/openapi.json",
        "--phases", PHASES,
        "--checks", "all",
        "--exclude-checks", LEFT_OUT_CHECKS,
        "--max-examples", str(SCHEMATHESIS_EXAMPLES),
        "--workers", WORKERS,
        "--request-timeout", "30",
        "--report", "json",
        "--report-dir", str(report_dir),
        *seed,
    ]  # fmt: skip
    finished = subprocess.run(command, capture_output=True, text=True, timeout=3600, cwd=report_dir)
    print(finished.stdout[-20000:], finished.stderr[-5000:])
    (report,) = report_dir.glob("*.json")
    result: dict = json.loads(report.read_text())
    result["exit_code"] = finished.returncode
    result["stdout"] = finished.stdout
    return result


@pytest.mark.integration
def test_schemathesis_every_phase_finds_nothing(live_url: str, tmp_path: Path) -> None:
    report = run_schemathesis(live_url, tmp_path)
    summary = {
        "cases": report["test_cases"]["generated"],
        "seconds": round(report["running_time"], 1),
        "seed": report["seed"],
    }
    print("schemathesis:", json.dumps(summary))
    assert report["failures"] == [] and report["errors"] == [], report["failures"] or report["errors"]
    assert report["exit_code"] == 0
    # Every phase ran (none skipped for want of examples or links) and every operation was tested.
    assert {name: phase["status"] for name, phase in report["phases"].items()} == dict.fromkeys(
        PHASES.split(","), "success"
    )
    assert report["operations"]["tested"] == report["operations"]["total"] == 2
    # Generated registrations were accepted (the fuzzer got past validation), and the stateful phase
    # followed every link it found, the documented one from the 202 to the status among them.
    assert report["valid_rates"]["POST /api/registrations"]["fuzzing"]["accepted"] > 0
    links = re.search(r"API Links:\s+(\d+) covered / (\d+) selected / (\d+) total", report["stdout"])
    assert links is not None, "the stateful phase found no links"
    covered, selected, total = map(int, links.groups())
    assert selected == total >= 1 and covered >= 1
    if SCHEMATHESIS_EXAMPLES >= 50:  # a handful of scenarios (make fuzz FUZZ_EXAMPLES=5) may miss one
        assert covered == total
