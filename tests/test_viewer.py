"""The trajectory viewer: render_html's content and escaping, token counts, the CLI and the pipeline's
pages, and the page itself in headless Chromium (loads without errors, filters by URL hash, renders)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote

import pytest

from interplay.cli import main
from interplay.rollout import Trajectory, load_trajectories, save_trajectories
from interplay.viewer import render_html, turn_token_counts, write_html

HOSTILE = "</script><img src=x onerror=alert(1)><!-- & \u2028 <script>alert(2)</script>"
FEEDBACK = "Too low: try a number about twice as big."
THINKING = "The sum of 7 and 5 is twelve, I think."


def _trajectory(messages, infos, *, prompt=0, mask=(), rewards=None, **fields) -> Trajectory:
    turns = sum(m["role"] == "assistant" for m in messages)
    rewards = list(rewards if rewards is not None else [0.0] * turns)
    values = dict(env_id="interplay/MathFeedback-v0", env_kwargs={}, seed=0, messages=messages,
                  prompt_ids=list(range(prompt)), completion_ids=list(range(len(mask))), agent_mask=list(mask),
                  logprobs=[0.0] * len(mask), rewards=rewards, reward=float(sum(rewards)), success=False,
                  outcome="", turns=turns, invalid_actions=0, terminated=True, truncated=False, infos=infos,
                  group=0, manifest={"agent": "test"})
    values.update(fields)
    return Trajectory(**values)


def _feedback_episode(seed: int = 1) -> Trajectory:
    """Two attempts with a teacher's feedback in between, thinking on the first reply, ids throughout."""
    messages = [
        {"role": "system", "content": "Solve it; answer in \\boxed{}."},
        {"role": "user", "content": "What is 7 + 5?"},
        {"role": "assistant", "content": "\\boxed{6}", "reasoning_content": THINKING},
        {"role": "user", "content": f"{FEEDBACK} (2 attempts left)"},
        {"role": "assistant", "content": "\\boxed{12}"},
        {"role": "user", "content": "Correct!"},
    ]
    infos = [{"turn": 0, "invalid_action": False},
             {"turn": 1, "teacher_feedback": FEEDBACK, "correct": False, "invalid_action": False},
             {"turn": 2, "teacher_feedback": "", "correct": True, "success": True, "outcome": "12",
              "invalid_action": False}]
    # prompt: 7 ids; reply 1: 3 ids; environment: 4 ids; reply 2: 2 ids.
    return _trajectory(messages, infos, prompt=7, mask=[1, 1, 1, 0, 0, 0, 0, 1, 1], rewards=[0.0, 1.0],
                       seed=seed, success=True, outcome="12", fresh_render_diff=11)


def _hostile_episode() -> Trajectory:
    """Markup everywhere a recorded string can be, no ids, and a reward that is not a finite number."""
    messages = [{"role": "user", "content": HOSTILE}, {"role": "assistant", "content": HOSTILE},
                {"role": "user", "content": "Incorrect. " + HOSTILE}]
    infos = [{"turn": 0, HOSTILE: HOSTILE}, {"turn": 1, "teacher_feedback": HOSTILE, "success": False}]
    return _trajectory(messages, infos, rewards=[float("nan")], env_id="interplay/Evil</script>-v0", seed=7,
                       outcome=HOSTILE, env_kwargs={"x": HOSTILE}, invalid_actions=1)


@pytest.fixture(scope="module")
def episodes() -> list[Trajectory]:
    """Synthetic episodes (feedback, hostile) and real ones from a rollout with ids (expert, CodeBreaker)."""
    from interplay import models
    from interplay.agents import from_spec
    from interplay.agents.chat import ChatEncoder
    from interplay.rollout import rollout

    real = rollout("interplay/CodeBreaker-v0", from_spec("expert"), seeds=[3, 4],
                   tokenizer=ChatEncoder(models.load_tokenizer("tiny")))
    return [_feedback_episode(1), _hostile_episode(), *real, _feedback_episode(2)]


def _data(page: str) -> dict:
    """The JSON embedded in the page, parsed strictly (NaN or Infinity would fail in a browser)."""
    match = re.search(r'<script type="application/json" id="episodes-data">(.*?)</script>', page, re.S)
    assert match, "the page embeds its data as application/json"

    def refuse(name):
        raise ValueError(f"{name} is not JSON")

    return json.loads(match.group(1), parse_constant=refuse)


# ------------------------------------------------------------------------------------------ render_html
def test_hostile_text_stays_text_and_the_data_round_trips(episodes):
    page = render_html(episodes, title="<b>title</b>")
    # The template has exactly three <script> elements; recorded text adds no tag, comment or entity.
    assert page.count("</script>") == 3 and page.lower().count("<script") == 3
    assert "<img" not in page and "<!--" not in page and "<b>title" not in page
    assert "<title>&lt;b&gt;title&lt;/b&gt;</title>" in page
    assert "\u2028" not in page and "\\u003c/script\\u003e\\u003cimg src=x onerror=alert(1)\\u003e" in page
    data = _data(page)
    hostile = data["episodes"][1]
    assert hostile["env"] == "interplay/Evil</script>-v0" and hostile["outcome"] == HOSTILE
    assert hostile["kwargs"] == {"x": HOSTILE} and hostile["reward"] == "nan"
    assert [s["text"] for s in hostile["steps"]] == [HOSTILE, HOSTILE, "Incorrect. " + HOSTILE]
    assert hostile["steps"][2]["feedback"] == HOSTILE
    # No network: a CSP forbids every fetch, and nothing refers to another origin.
    assert "default-src 'none'" in page and not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", page)


def test_every_episode_is_present_with_its_summary(episodes):
    data = _data(render_html(episodes))
    assert len(data["episodes"]) == len(episodes)
    for i, (view, t) in enumerate(zip(data["episodes"], episodes)):
        assert (view["i"], view["env"], view["seed"], view["success"], view["turns"]) == (
            i, t.env_id, t.seed, t.success, t.turns)
        assert view["outcome"] == t.outcome and view["invalid"] == t.invalid_actions
        assert [s["who"] for s in view["steps"]].count("agent") == t.turns
    feedback = data["episodes"][0]
    assert feedback["system"] == "Solve it; answer in \\boxed{}." and feedback["fresh_render_diff"] == 11
    assert feedback["steps"][1]["thinking"] == THINKING and "thinking" not in feedback["steps"][3]
    assert feedback["steps"][2]["feedback"] == FEEDBACK and feedback["steps"][2]["reward"] == 0.0
    assert feedback["steps"][4]["reward"] == 1.0 and data["episodes"][2]["fresh_render_diff"] is None


def test_token_counts_per_turn(episodes):
    feedback = turn_token_counts(episodes[0])
    assert feedback == {"observations": [7, 4, None], "replies": [3, 2], "exact": True,
                        "prompt": 7, "agent": 5, "env": 11}
    assert [s.get("tokens") for s in _data(render_html(episodes[:1]))["episodes"][0]["steps"]] == [7, 3, 4, 2, None]
    # Without ids: nothing to count, and nothing made up.
    assert turn_token_counts(episodes[1]) == {"observations": [None, None], "replies": [None], "exact": True,
                                              "prompt": None, "agent": None, "env": None}
    # Real rollouts: one run per reply and per observation, adding up to the recorded ids.
    for t in episodes[2:4]:
        counts = turn_token_counts(t)
        assert counts["exact"] and len(counts["replies"]) == t.turns and counts["observations"][-1] is None
        assert sum(counts["replies"]) == sum(t.agent_mask) == counts["agent"]
        assert sum(counts["observations"][:-1]) == len(t.prompt_ids) + t.agent_mask.count(0) == counts["env"]
    # A reply with ids the agent did not sample (a forced end of thinking, mask 0 inside the reply):
    # the longest environment run is the turn boundary, and the counts say they are approximate.
    messages = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"},
                {"role": "user", "content": "o"}, {"role": "assistant", "content": "b"},
                {"role": "user", "content": "end"}]
    forced = _trajectory(messages, [{}, {}, {}], prompt=5, mask=[1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0, 1])
    assert turn_token_counts(forced) == {"observations": [5, 5, None], "replies": [6, 1], "exact": False,
                                         "prompt": 5, "agent": 5, "env": 12}


def test_view_command_writes_the_page(episodes, tmp_path, capsys):
    save_trajectories(tmp_path / "run.jsonl", episodes)
    assert main(["view", str(tmp_path / "run.jsonl"), "--out", str(tmp_path / "page.html")]) == 0
    assert f"({len(episodes)} episodes" in capsys.readouterr().out
    page = (tmp_path / "page.html").read_text(encoding="utf-8")
    assert len(_data(page)["episodes"]) == len(episodes) and "interplay episodes: run.jsonl" in page
    assert main(["view", str(tmp_path / "run.jsonl")]) == 0 and (tmp_path / "run.html").exists()
    assert main(["view", str(tmp_path / "missing.jsonl")]) == 2
    assert "missing.jsonl" in capsys.readouterr().err


def test_pipeline_stage_writes_its_episode_page_and_the_report_links_it(episodes, tmp_path, monkeypatch):
    from interplay import pipeline
    from interplay.pipeline import stages

    def fake_evaluation(preset, model, trajectories=None, progress=True):
        trajectories.extend(episodes)
        return {"pass_at_1": 0.5, "pass_at_1_ci95": [0.1, 0.9], "pass_at_k": 0.5, "pass_at_k_ci95": [0.1, 0.9],
                "k": 2, "coverage": {"2": 0.5}, "mean_turns": 2.5, "success_by_turn": {"1": 0.0, "2": 0.5},
                "eval_s": 0.1, "per_task_successes": [[True, False]], "eval": {"n_tasks": 1, "seeds": [1000000]}}

    monkeypatch.setattr(stages, "evaluate_checkpoint", fake_evaluation)
    preset = pipeline.get_preset("tiny-test")
    result = pipeline.run_stage(preset, "untrained", tmp_path, "tiny", progress=False, log=lambda _: None)
    page = (tmp_path / "untrained_episodes.html").read_text(encoding="utf-8")
    assert len(_data(page)["episodes"]) == len(episodes) and "untrained: evaluation episodes" in page
    assert len(load_trajectories(tmp_path / "stages" / "untrained" / "episodes.jsonl")) == len(episodes)
    report = pipeline.render_report(preset.env, preset, "tiny", {"untrained": result})
    assert "[untrained](untrained_episodes.html)" in report


# ------------------------------------------------------------------------------------------ in Chromium
class _Elements(HTMLParser):
    """Attributes of the dumped DOM's episode rows, the status line and the error box."""

    def __init__(self) -> None:
        super().__init__()
        self.episodes: list[dict] = []
        self.status: dict = {}
        self.errors: str | None = None
        self._in_errors = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "details" and "ep" in (attrs.get("class") or "").split():
            self.episodes.append(attrs)
        if attrs.get("id") == "status":
            self.status = attrs
        if attrs.get("id") == "errors":
            self.errors, self._in_errors = "", True

    def handle_endtag(self, tag):
        if tag == "pre":
            self._in_errors = False

    def handle_data(self, data):
        if self._in_errors:
            self.errors += data


def _chromium(tmp_path: Path, url: str, *args: str) -> subprocess.CompletedProcess:
    binary = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(binary).exists():
        pytest.skip("no chromium (Debian: apt-get install chromium; .ci/run installs it)")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-dev-shm-usage", "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}",
             "--enable-logging=stderr", "--log-level=0", "--virtual-time-budget=3000"]
    done = subprocess.run([binary, *flags, *args, url], capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr[-3000:]
    # Console messages (and uncaught errors) of the page appear in Chromium's log as CONSOLE lines.
    assert ":CONSOLE" not in done.stderr, [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return done


def _dump(tmp_path: Path, url: str) -> tuple[str, _Elements]:
    dom = _chromium(tmp_path, url, "--dump-dom").stdout
    elements = _Elements()
    elements.feed(dom)
    assert elements.status.get("data-state") == "ready", "the page's script did not run to its end"
    assert elements.errors == "", f"the page reported errors: {elements.errors}"
    return dom, elements


def test_page_in_headless_chromium_loads_filters_and_renders(episodes, tmp_path):
    page = write_html(tmp_path / "episodes.html", episodes)
    url = page.resolve().as_uri()
    successful = [str(i) for i, t in enumerate(episodes) if t.success]
    assert 0 < len(successful) < len(episodes)

    # Successful episodes only, the first (feedback) one open, and the hostile one (failed) filled too.
    dom, elements = _dump(tmp_path, f"{url}#success=1&open=0,1")
    assert len(elements.episodes) == len(episodes)
    shown = [e for e in elements.episodes if "hidden" not in e]
    assert sorted(e["data-success"] for e in shown) == ["1"] * len(successful)
    assert sorted(e["id"] for e in shown) == sorted(f"ep-{i}" for i in successful)
    assert elements.status["data-shown"] == str(len(successful))
    assert f'<mark class="feedback" title="teacher feedback">{FEEDBACK}</mark> (2 attempts left)' in dom
    assert re.search(r'<details class="more think"><summary>thinking \(\d+ characters\)</summary>', dom)  # collapsed
    assert THINKING in dom and "agent</b> · turn 1 · 3 tokens" in dom and "7 tokens (prompt)" in dom
    assert 'class="warn fresh-render-diff"' in dom and "at index 11" in dom
    # Recorded markup is text: no element came out of it, and it reads as written.
    assert "<img" not in dom and "&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in dom

    # Successful episodes of one environment (the env id URL-encoded, as the filter controls write it).
    env = episodes[2].env_id
    _, elements = _dump(tmp_path, f"{url}#success=1&env={quote(env, safe='')}")
    wanted = [f"ep-{i}" for i, t in enumerate(episodes) if t.success and t.env_id == env]
    assert len(wanted) == 2 and [e["id"] for e in elements.episodes if "hidden" not in e] == wanted

    # A screenshot of the opened feedback episode.
    shot = tmp_path / "episodes.png"
    _chromium(tmp_path, f"{url}#open=0", f"--screenshot={shot}", "--window-size=1280,900")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
