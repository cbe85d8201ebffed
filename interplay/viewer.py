"""A static HTML page of trajectories: ``interplay view FILE.jsonl --out page.html``.

One self-contained file (inline CSS and JS, no fonts, CDNs or requests: a Content-Security-Policy
forbids them) listing the episodes (environment, seed, success, outcome, turns, reward), filterable
by success and environment. An episode opens to its turns: the agent's replies and the
environment's observations with their token counts, the teacher's feedback highlighted
(``infos[t]["teacher_feedback"]`` of feedback environments), thinking (``reasoning_content``)
collapsed, each step's info, and the fresh-render difference when there is one. An episode of one seat of a
two-player game (``interplay.matches``, self-play) also shows the game: both seats' players and results and
every move of either seat, in order.

Token counts per turn come from the recorded ids (never re-tokenized): the first observation is
``prompt_ids`` (system + observation + generation prompt); ``completion_ids`` alternates replies
(``agent_mask`` 1) and environment turns (``agent_mask`` 0: the reply's close, the observation and
the template's framing); the last observation is not in the ids. A reply with ids of its own marked
0 (a thinking budget's forced close) makes more agent runs than turns: the longest environment runs
are then taken as the turn boundaries and the counts are marked approximate (≈).

The page reads its filter from the URL hash, which the filter controls also set:
``#success=1`` (or 0), ``env=<id>``, ``open=<i>[,<j>...]`` (episodes shown open). The data is
embedded as JSON with ``<``, ``>`` and ``&`` escaped, and every text goes into the page as text,
never as markup, so recorded text cannot break out of it.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from interplay.jsonable import jsonable
from interplay.rollout import Trajectory


def turn_token_counts(trajectory: Trajectory) -> dict[str, Any]:
    """Tokens per observation and per reply, from the recorded ids.

    Returns ``{"observations": [n_0, ..., n_T], "replies": [r_1, ..., r_T], "exact": bool,
    "prompt": int, "agent": int, "env": int}`` with T = ``turns``: ``n_0`` is ``len(prompt_ids)``,
    ``n_t`` the environment run after reply t, ``n_T`` None (the last observation is not in the ids).
    A trajectory without ids gives None everywhere (and ``exact`` True); ids that cannot be split
    into T turns give per-turn None with the totals.
    """
    turns = trajectory.turns
    none: dict[str, Any] = {"observations": [None] * (turns + 1), "replies": [None] * turns, "exact": True,
                            "prompt": None, "agent": None, "env": None}
    mask, completion = trajectory.agent_mask, trajectory.completion_ids
    if (not trajectory.prompt_ids and not completion) or len(mask) != len(completion):
        return none
    totals = {"prompt": len(trajectory.prompt_ids), "agent": sum(1 for m in mask if m),
              "env": len(trajectory.prompt_ids) + sum(1 for m in mask if not m)}
    runs = [(int(by_agent), end - start) for start, end, by_agent in trajectory.spans()]
    lead = runs[0][1] if runs and runs[0][0] == 0 else 0
    body = runs[1:] if lead else runs
    ones = [n for v, n in body if v == 1]
    # The environment runs between two agent runs; a trailing one (not expected) is not a turn.
    gaps = [n for i, (v, n) in enumerate(body) if v == 0 and i + 1 < len(body)]
    if turns < 1 or len(ones) < turns:
        return {**none, **totals, "exact": False}
    exact = len(ones) == turns and not lead and len(body) == 2 * turns - 1
    # Boundaries: the turns - 1 longest environment runs (ties: the earlier one), in order.
    boundary = set(sorted(range(len(gaps)), key=lambda i: (-gaps[i], i))[: turns - 1])
    replies, observations, current = [], [len(trajectory.prompt_ids) + lead], ones[0]
    for i, gap in enumerate(gaps):
        if i in boundary:
            replies.append(current)
            observations.append(gap)
            current = ones[i + 1]
        else:  # ids inside one reply that the agent did not sample (e.g. a forced end of thinking)
            current += gap + ones[i + 1]
    replies.append(current)
    observations.append(None)
    return {"observations": observations, "replies": replies, "exact": exact, **totals}


def episode_view(index: int, trajectory: Trajectory) -> dict[str, Any]:
    """What the page shows of one trajectory (JSON-safe): the summary row and the steps."""
    counts = turn_token_counts(trajectory)
    infos = trajectory.infos or []
    steps: list[dict[str, Any]] = []
    system = None
    observed = replied = 0
    for message in trajectory.messages:
        role, text = message.get("role"), message.get("content")
        text = text if isinstance(text, str) else json.dumps(jsonable(text), ensure_ascii=False)
        if role == "system":
            system = text
        elif role == "assistant":
            replied += 1
            step = {"who": "agent", "turn": replied, "text": text,
                    "tokens": counts["replies"][replied - 1] if replied <= len(counts["replies"]) else None}
            if message.get("reasoning_content"):
                step["thinking"] = str(message["reasoning_content"])
            steps.append(step)
        else:
            info = infos[observed] if observed < len(infos) and isinstance(infos[observed], dict) else None
            step = {"who": "env", "turn": observed, "text": text,
                    "tokens": counts["observations"][observed] if observed < len(counts["observations"]) else None,
                    "feedback": str((info or {}).get("teacher_feedback") or ""), "info": info,
                    "reward": trajectory.rewards[observed - 1] if 0 < observed <= len(trajectory.rewards) else None}
            if role != "user":
                step["role"] = role
            steps.append(step)
            observed += 1
    manifest = trajectory.manifest or {}
    return jsonable({
        "i": index, "env": trajectory.env_id, "kwargs": trajectory.env_kwargs, "seed": trajectory.seed,
        "group": trajectory.group, "success": bool(trajectory.success), "outcome": trajectory.outcome,
        "turns": trajectory.turns, "reward": trajectory.reward, "invalid": trajectory.invalid_actions,
        "terminated": trajectory.terminated, "truncated": trajectory.truncated,
        "fresh_render_diff": trajectory.fresh_render_diff, "agent": manifest.get("agent"),
        "tokens": {k: counts[k] for k in ("prompt", "agent", "env")}, "exact": counts["exact"],
        "system": system, "steps": steps, "seat": manifest.get("seat"), "match": manifest.get("match"),
    })


def _script_json(value: Any) -> str:
    """JSON that is safe inside ``<script>``: no ``<``, ``>`` or ``&`` (so no ``</script>`` or
    ``<!--``), and no U+2028/2029 line separators."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                         ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escape)
    return text


def render_html(trajectories: Sequence[Trajectory], title: str = "interplay episodes") -> str:
    """The whole page, as a string (no file or network access)."""
    episodes = [episode_view(i, t) for i, t in enumerate(trajectories)]
    parts = {"TITLE": html.escape(title), "STYLE": _STYLE, "SCRIPT": _SCRIPT,
             "DATA": _script_json({"title": title, "episodes": episodes})}
    # One pass over the template: what is put in is never searched again.
    return re.sub(r"%(TITLE|STYLE|SCRIPT|DATA)%", lambda m: parts[m.group(1)], _PAGE)


def write_html(path: str | Path, trajectories: Sequence[Trajectory], title: str | None = None) -> Path:
    """Write ``render_html(trajectories)`` to ``path`` (creating the parent directory)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(trajectories, title or f"interplay episodes: {path.stem}"), encoding="utf-8")
    return path


# The error trap comes first, so that anything going wrong later (a script error, a rejected
# promise, console.error, a resource that fails) is written into #errors, where a headless browser's
# dumped DOM shows it. #status says "ready" once the page's script has run to its end.
_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<title>%TITLE%</title>
<script>
window.pageErrors = [];
function reportError(text) {
  window.pageErrors.push(String(text));
  var box = document.getElementById("errors");
  if (box) { box.hidden = false; box.appendChild(document.createTextNode(String(text) + "\\n")); }
}
window.addEventListener("error", function (e) {
  if (e.target && e.target !== window && e.target.tagName) {
    reportError("resource failed: <" + e.target.tagName.toLowerCase() + "> " + (e.target.src || e.target.href || ""));
  } else {
    reportError("error: " + e.message + " at " + e.filename + ":" + e.lineno);
  }
}, true);
window.addEventListener("unhandledrejection", function (e) { reportError("unhandled rejection: " + e.reason); });
(function () {
  var original = console.error;
  console.error = function () {
    reportError("console.error: " + Array.prototype.join.call(arguments, " "));
    return original.apply(console, arguments);
  };
})();
</script>
<style>%STYLE%</style>
</head>
<body>
<header>
<h1 id="title"></h1>
<div class="controls">
<label>success <select id="f-success"><option value="">all</option><option value="1">successful</option><option value="0">failed</option></select></label>
<label>environment <select id="f-env"><option value="">all</option></select></label>
<span id="status" data-state="loading">loading…</span>
</div>
</header>
<pre id="errors" hidden></pre>
<main>
<div class="row head"><span>#</span><span>environment</span><span>seed</span><span>success</span><span>outcome</span><span>turns</span><span>reward</span><span>invalid</span><span></span></div>
<div id="episodes"></div>
</main>
<script type="application/json" id="episodes-data">%DATA%</script>
<script>%SCRIPT%</script>
</body>
</html>
"""

_STYLE = """
:root { --ok: #1a7f37; --bad: #cf222e; --line: #d0d7de; --muted: #57606a; --agent: #ddf4ff; --env: #f6f8fa;
  --mark: #fff3b0; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2328; background: #fff; }
header { position: sticky; top: 0; z-index: 1; background: #fff; border-bottom: 1px solid var(--line); padding: 10px 16px; }
h1 { font-size: 18px; margin: 0 0 6px; }
.controls { display: flex; gap: 18px; align-items: center; flex-wrap: wrap; }
.controls select { font: inherit; margin-left: 4px; }
#status { color: var(--muted); }
#errors { margin: 8px 16px; padding: 8px; background: #ffebe9; color: var(--bad); white-space: pre-wrap; }
main { padding: 8px 16px 40px; }
.row { display: grid; grid-template-columns: 4em minmax(12em, 2.2fr) 6em 5.5em minmax(7em, 1.4fr) 4em 5em 4.5em minmax(4em, 1fr);
  gap: 8px; padding: 4px 6px; align-items: baseline; }
.row > span { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.row.head { font-weight: 600; color: var(--muted); border-bottom: 1px solid var(--line); }
details.ep { border-bottom: 1px solid var(--line); }
details.ep > summary { list-style: none; cursor: pointer; }
details.ep > summary::-webkit-details-marker { display: none; }
details.ep > summary:hover { background: #f6f8fa; }
details.ep > summary .idx::before { content: "▸ "; color: var(--muted); }
details.ep[open] > summary .idx::before { content: "▾ "; }
.yes { color: var(--ok); font-weight: 600; }
.no { color: var(--bad); font-weight: 600; }
.badge { font-size: 12px; padding: 0 6px; border-radius: 8px; background: #fff8c5; border: 1px solid #d4a72c; color: #7d4e00; }
.body { padding: 6px 10px 14px 4em; }
.meta { color: var(--muted); margin: 4px 0 8px; }
.meta code { color: #1f2328; }
.warn { background: #fff8c5; border: 1px solid #d4a72c; padding: 6px 10px; border-radius: 6px; margin: 6px 0; }
.step { border-left: 4px solid var(--line); margin: 6px 0; padding: 4px 10px; border-radius: 4px; }
.step.agent { background: var(--agent); border-left-color: #0969da; margin-left: 3em; }
.step.env { background: var(--env); border-left-color: #8c959f; margin-right: 3em; }
.step .label { font-size: 12px; color: var(--muted); }
.step .label b { color: #1f2328; }
.text { white-space: pre-wrap; word-break: break-word; font: 13px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  margin: 2px 0; }
mark.feedback { background: var(--mark); outline: 1px solid #d4a72c; border-radius: 3px; padding: 0 2px; }
.feedback-note { margin: 2px 0; }
details.more { margin: 2px 0; font-size: 12px; }
details.more > summary { cursor: pointer; color: var(--muted); }
details.think > .text { color: #57606a; font-style: italic; }
"""

_SCRIPT = r"""
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("episodes-data").textContent);
  const episodes = data.episodes;
  const list = document.getElementById("episodes");
  const status = document.getElementById("status");
  const fSuccess = document.getElementById("f-success");
  const fEnv = document.getElementById("f-env");
  document.getElementById("title").textContent = data.title;
  for (const text of window.pageErrors) {  // errors from before #errors existed
    const box = document.getElementById("errors");
    box.hidden = false;
    box.appendChild(document.createTextNode(text + "\n"));
  }

  // Every piece of recorded text goes in as a text node: never as markup.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "class") node.className = value;
      else node.setAttribute(key, value);
    }
    for (const child of children) if (child !== null && child !== undefined) node.append(child);
    return node;
  }
  const num = (x) => (typeof x === "number" ? String(Math.round(x * 1000) / 1000) : String(x));
  const tokens = (n, exact) => (n === null || n === undefined ? null : (exact ? "" : "≈") + n + " tokens");

  const envs = new Map();
  for (const ep of episodes) envs.set(ep.env, (envs.get(ep.env) || 0) + 1);
  for (const [env, count] of [...envs.entries()].sort()) fEnv.append(el("option", {value: env}, env + " (" + count + ")"));

  const nodes = episodes.map((ep) => {
    const notes = [];
    if (ep.fresh_render_diff !== null && ep.fresh_render_diff !== undefined) {
      notes.push(el("span", {class: "badge", title: "a fresh render of the messages differs from the recorded ids"},
                    "render≠ @" + ep.fresh_render_diff));
    }
    if (ep.truncated) notes.push(el("span", {class: "badge"}, "truncated"));
    const summary = el("summary", {class: "row"},
      el("span", {class: "idx"}, String(ep.i)), el("span", {title: ep.env}, ep.env), el("span", {}, String(ep.seed)),
      el("span", {class: ep.success ? "yes" : "no"}, ep.success ? "✓ yes" : "✗ no"),
      el("span", {title: ep.outcome}, ep.outcome), el("span", {}, String(ep.turns)), el("span", {}, num(ep.reward)),
      el("span", {}, String(ep.invalid)), el("span", {}, ...notes));
    const node = el("details", {class: "ep", id: "ep-" + ep.i, "data-success": ep.success ? "1" : "0"}, summary);
    node.addEventListener("toggle", () => { if (node.open) fill(node, ep); });
    return node;
  });
  list.append(...nodes);

  function fill(node, ep) {
    if (node.dataset.filled) return;
    node.dataset.filled = "1";
    const body = el("div", {class: "body"});
    const t = ep.tokens || {};
    body.append(el("div", {class: "meta"},
      "kwargs ", el("code", {}, JSON.stringify(ep.kwargs)), " · group " + ep.group + " · agent ",
      el("code", {}, String(ep.agent)), " · " + (ep.terminated ? "terminated" : ep.truncated ? "truncated" : "unfinished"),
      t.prompt === null || t.prompt === undefined ? " · no token ids recorded"
        : " · tokens: prompt " + t.prompt + ", agent " + t.agent + ", environment " + t.env
          + (ep.exact ? "" : " (per-turn counts approximate: a reply has ids the agent did not sample)")));
    if (ep.fresh_render_diff !== null && ep.fresh_render_diff !== undefined) {
      body.append(el("div", {class: "warn fresh-render-diff"}, "Fresh render differs from the recorded ids at index "
        + ep.fresh_render_diff + " of prompt_ids + completion_ids. Templates that drop earlier reasoning do this by "
        + "design; the recorded ids are what the model was fed and sampled."));
    }
    if (ep.system) {
      body.append(el("details", {class: "more system"}, el("summary", {}, "system prompt"), el("div", {class: "text"}, ep.system)));
    }
    if (ep.match) body.append(matchBox(ep));
    for (const step of ep.steps) body.append(step.who === "agent" ? agentStep(step, ep) : envStep(step, ep));
    node.append(body);
  }

  // A two-player game (interplay.matches): both seats, their results and every move in order.
  function matchBox(ep) {
    const m = ep.match;
    const box = el("details", {class: "more match", open: ""}, el("summary", {}, "the game, both seats (this episode: seat "
      + ep.seat + ")"));
    const seats = [0, 1].map((s) => "seat " + s + (s === 0 ? " (first)" : " (second)") + ": " + m.players[s] + " · "
      + m.results[s].outcome + " (" + m.results[s].reason + "), reward " + num(m.rewards[s]));
    box.append(el("div", {class: "text"}, seats.join("\n")));
    const moves = m.moves.map((mv, k) => (k + 1) + ". seat " + mv.seat + (mv.seat === ep.seat ? " (this episode)" : "")
      + ": " + mv.move + (mv.invalid ? "   [rejected]" : ""));
    box.append(el("div", {class: "text seat-moves"}, moves.join("\n")));
    return box;
  }

  function agentStep(step, ep) {
    const box = el("div", {class: "step agent"});
    box.append(el("div", {class: "label"}, el("b", {}, "agent"), " · turn " + step.turn,
                  tokens(step.tokens, ep.exact) ? " · " + tokens(step.tokens, ep.exact) : null));
    if (step.thinking) {
      box.append(el("details", {class: "more think"}, el("summary", {}, "thinking (" + step.thinking.length + " characters)"),
                    el("div", {class: "text"}, step.thinking)));
    }
    box.append(el("div", {class: "text"}, step.text));
    return box;
  }

  function envStep(step, ep) {
    const box = el("div", {class: "step env"});
    const where = step.turn === 0 ? "first observation" : "after turn " + step.turn;
    let count = tokens(step.tokens, ep.exact || step.turn === 0);
    if (count && step.turn === 0) count += " (prompt)";
    if (!count && step.turn === ep.turns && ep.tokens && ep.tokens.prompt !== null) count = "not in the ids (final observation)";
    box.append(el("div", {class: "label"}, el("b", {}, step.role || "environment"), " · " + where,
                  count ? " · " + count : null,
                  step.reward !== null && step.reward !== undefined ? " · reward " + num(step.reward) : null));
    const text = el("div", {class: "text"});
    const fb = step.feedback;
    const at = fb ? step.text.indexOf(fb) : -1;
    if (fb && at >= 0) {
      text.append(step.text.slice(0, at), el("mark", {class: "feedback", title: "teacher feedback"}, fb),
                  step.text.slice(at + fb.length));
    } else {
      text.append(step.text);
    }
    box.append(text);
    if (fb && at < 0) box.append(el("div", {class: "feedback-note"}, "teacher feedback: ", el("mark", {class: "feedback"}, fb)));
    if (step.info && Object.keys(step.info).length) {
      box.append(el("details", {class: "more info"}, el("summary", {}, "info"),
                    el("div", {class: "text"}, JSON.stringify(step.info, null, 1))));
    }
    return box;
  }

  function readHash() {
    const params = new URLSearchParams(location.hash.replace(/^#/, ""));
    return {success: params.get("success") || "", env: params.get("env") || "",
            open: (params.get("open") || "").split(",").filter((x) => x !== "").map(Number)};
  }

  function writeHash() {
    const params = new URLSearchParams(location.hash.replace(/^#/, ""));
    for (const [key, value] of [["success", fSuccess.value], ["env", fEnv.value]]) {
      if (value) params.set(key, value); else params.delete(key);
    }
    const hash = params.toString();
    history.replaceState(null, "", hash ? "#" + hash : location.pathname + location.search);
  }

  function apply() {
    const state = readHash();
    fSuccess.value = ["0", "1"].includes(state.success) ? state.success : "";
    fEnv.value = envs.has(state.env) ? state.env : "";
    let shown = 0, solved = 0, reward = 0, turns = 0;
    episodes.forEach((ep, i) => {
      const visible = (!fSuccess.value || (ep.success ? "1" : "0") === fSuccess.value) && (!fEnv.value || ep.env === fEnv.value);
      nodes[i].hidden = !visible;
      if (visible) { shown += 1; solved += ep.success ? 1 : 0; reward += Number(ep.reward) || 0; turns += ep.turns; }
    });
    for (const i of state.open) if (nodes[i]) { nodes[i].open = true; fill(nodes[i], episodes[i]); }
    status.textContent = "showing " + shown + " of " + episodes.length + " episodes" + (shown ? " · success "
      + (100 * solved / shown).toFixed(1) + "% · mean reward " + num(reward / shown) + " · mean turns "
      + num(turns / shown) : "");
    status.dataset.shown = String(shown);
  }

  fSuccess.addEventListener("change", () => { writeHash(); apply(); });
  fEnv.addEventListener("change", () => { writeHash(); apply(); });
  window.addEventListener("hashchange", apply);
  apply();
  status.dataset.state = "ready";
})();
"""


__all__ = ["episode_view", "render_html", "turn_token_counts", "write_html"]
