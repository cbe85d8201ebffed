"""README.md's figures are the ones tools/readme_figures.py renders from docs/figures (reports of the code)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _tool():
    spec = importlib.util.spec_from_file_location("readme_figures", ROOT / "tools" / "readme_figures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_figures_match_the_reports() -> None:
    tool = _tool()
    assert tool.main(["--check"]) == 0
    readme = (ROOT / "README.md").read_text()
    demo = json.loads((ROOT / "docs" / "figures" / "demo.json").read_text())
    study = json.loads((ROOT / "docs" / "figures" / "study.json").read_text())
    # Each table says which command and seed produced it.
    assert f"Produced by `{demo['command']}` (seed {demo['seed']})" in readme
    assert f"Produced by `{study['command']}`" in readme
    for section in study["sections"].values():
        assert section["title"] in readme and section["verdict"] in readme


def test_a_stale_readme_is_caught(tmp_path, monkeypatch) -> None:
    tool = _tool()
    readme = tmp_path / "README.md"
    readme.write_text((ROOT / "README.md").read_text().replace("<!-- /figures:demo -->", "| 99.9 |\n<!-- /figures:demo -->"))
    monkeypatch.setattr(tool, "README", readme)
    assert tool.main(["--check"]) == 1
    assert tool.main([]) == 0 and tool.main(["--check"]) == 0


def test_study_verdicts_follow_the_current_rule() -> None:
    """docs/figures/study.json's verdicts are core.verdict's of its stored values, intervals and margins, and
    --reverdict re-derives stale ones in the summary and in study.md."""
    from interplay.study.core import NOTHING_VARIED, REPRODUCED, verdict

    tool = _tool()
    study = json.loads((ROOT / "docs" / "figures" / "study.json").read_text())
    for section in study["sections"].values():
        for c in section["claims"]:
            assert c["verdict"] == verdict(c["value"], *c["interval"], c["margin"]), c
        assert section["verdict"] == section["claims"][0]["verdict"]
    md = (ROOT / "docs" / "figures" / "study.md").read_text()
    stale = json.loads(json.dumps(study))
    horizon = stale["sections"]["horizon"]  # reproduced; made stale in the summary and in study.md
    horizon["verdict"] = horizon["claims"][0]["verdict"] = "not reproduced"
    lines = md.split("\n")
    lines = [line.replace(f"| **{REPRODUCED}** |", "| **not reproduced** |")
             if line.startswith(("| [Horizon", f"| {horizon['claims'][0]['statement']}")) else line for line in lines]
    old_md = "\n".join(lines).replace(f"**Verdict: {REPRODUCED}**", "**Verdict: not reproduced**")
    summary, new_md, changes = tool.reverdict(stale, old_md)
    assert len(changes) == 1 and f"**Verdict: {REPRODUCED}**" in new_md
    assert new_md.count(f"**{NOTHING_VARIED}**") == md.count(f"**{NOTHING_VARIED}**")
    assert summary["sections"]["horizon"]["verdict"] == REPRODUCED and tool.reverdict(summary)[2] == []
