"""The escalation benchmark on a small scale: every step runs, its counts are right, and the
table and JSON carry the medians of several runs. The figures come from the full-size run
(``docs/performance.md``); this only keeps the script from rotting between sessions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import TEST_DB_URL, is_pg, load_bench


def test_the_benchmark_scans_what_it_made_due(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    # measure() points the environment at its own database; the fixture puts it back after.
    monkeypatch.setenv("YIHAO_HOME", str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", "")
    out = tmp_path / "escalation.json"
    argv = ["--tickets", "3000", "--recompute", "200", "--runs", "2", "--json", str(out)]
    if is_pg():  # a database of its own beside the suite's, dropped and made anew each run
        base = TEST_DB_URL.replace("+psycopg", "").rsplit("/", 1)[0]
        argv += ["--db", "postgres", "--pg-url", f"{base}/yihao_test_bench_esc"]
    else:
        argv += ["--db", "sqlite"]
    assert load_bench("escalation").main(argv) == 0

    report = json.loads(out.read_text())
    kind = "postgres" if is_pg() else "sqlite"
    assert [r["db"] for r in report["results"]] == [kind, kind]
    for run in report["results"]:
        # 1 % of 3,000 due: 27 reach their due-soon point, 3 their deadline.
        assert run["data"] == {"tickets": 3000, "due": 30, "due_soon": 27, "overdue": 3,
                               "insert_seconds": run["data"]["insert_seconds"]}
        assert run["due_soon_scan"]["reminders"] == 27
        assert run["escalation_scan"]["escalated"] == 3
        assert run["escalation_scan"]["complete"] is True
        assert run["empty_scan"]["report"]["due_soon"] == 0
        assert run["recompute"]["changed"] == 200
    medians = report["medians"][kind]
    whole = sorted(r["due_soon_scan"]["seconds"] + r["escalation_scan"]["seconds"]
                   for r in report["results"])
    assert medians["whole_scan_seconds"] == pytest.approx(sum(whole) / 2)
    table = capsys.readouterr().out
    assert f"| | {kind} (2 runs) |" in table
    assert "**the whole scan** (due soon + escalations)" in table
