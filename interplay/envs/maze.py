"""interplay/Maze-v0: walk from a start cell to a goal cell in a procedurally generated maze.

Registered variants fix some kwargs under an id of their own (``interplay/Maze-4x4-v0``: ``size=4``,
``max_turns=12``); see ``interplay.envs.register_builtin``.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from interplay.envs.core import TextEnv
from interplay.envs.parsing import extract_last_choice

DIRECTIONS = ("up", "down", "left", "right")
_DELTA = {"up": (-1, 0), "down": (1, 0), "left": (0, -1), "right": (0, 1)}

#: Every spelling of a move the environment reads (case-insensitive, whole words).
MOVE_SYNONYMS: dict[str, str] = {
    **dict.fromkeys(["up", "u", "north", "n", "upward", "upwards", "↑", "⬆"], "up"),
    **dict.fromkeys(["down", "d", "south", "s", "downward", "downwards", "↓", "⬇"], "down"),
    **dict.fromkeys(["left", "l", "west", "w", "leftward", "leftwards", "←", "⬅"], "left"),
    **dict.fromkeys(["right", "r", "east", "e", "rightward", "rightwards", "→", "➡"], "right"),
}
OBSERVATION_MODES = {"compact": "compact", "local": "local", "partial": "local", "full": "full"}
EXPERTS = ("bfs", "explorer")
MAX_SIDE = 100
LEGEND = "Legend: @ you, G goal, # wall, . open."


def _check_int(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer from {low} to {high}, got {value!r}.")
    return int(value)


class MazeEnv(TextEnv):
    """Find the goal in a maze. Size is the horizon knob.

    ## Description

    Each reset draws a perfect maze (exactly one path between any two cells; randomized depth-first
    search) of ``height`` rows and ``width`` columns from the reset seed, and a start and a goal cell
    at least ``min_distance`` moves apart. Cells are named by row and column, row 0 on top: "13" is
    row 1, column 3 (and "12,3" once a side exceeds 10).

    ## Action Space

    Any text (``AnyText``): the agent's whole reply. The last move named in it counts: up/down/left/
    right, u/d/l/r, north/south/west/east, n/s/w/e, arrows, in any case, as whole words (see
    ``interplay.envs.parsing.extract_last_choice``).

    ## Observation Space

    Text (``AnyText``), by ``observation=``:

    - ``"compact"`` (default): ``at 13 goal 22 open ud``: position, goal and the open directions
      (u/d/l/r). The first observation adds one line of instructions.
    - ``"local"`` (alias ``"partial"``): ``at 13 goal 22`` and a character window of ``view_radius``
      cells around the agent (``@`` you, ``G`` goal, ``#`` wall, ``.`` open; outside the maze reads as
      wall). The first observation adds the instructions and legend.
    - ``"full"``: the whole character map. The first observation adds instructions and legend.

    A wall bump or an unreadable reply says so before the usual observation.

    ## Rewards

    1.0 on reaching the goal, minus ``step_cost`` on every step (wall bumps and unreadable replies
    included). With ``dense_reward=True`` (opt-in) every step also pays its progress toward the goal:
    ``(d_before - d_after) / d_start``, d the BFS distance (moves) to the goal and d_start the start's, so
    a move along a shortest path earns ``1/d_start``, a move away ``-1/d_start``, a wall bump or an
    unreadable reply 0, and the progress rewards of an episode sum to the fraction of the way covered (1 on
    reaching the goal). Success is decided as without it (reaching the goal); the dense reward is a
    per-turn signal for turn-level credit (``interplay.training.credit``).

    ## Starting State

    A new maze, start and goal from the reset seed. Info at reset: ``shortest_path``, ``start``,
    ``goal``, ``max_turns``; every step ``move`` (the direction read, or None), ``wall_bump``,
    ``optimal`` (the move shortened the way to the goal: the per-step error signal) and ``distance``
    (moves left to the goal); at the end ``outcome``, the final cell as ``r<row>c<col>``.

    ## Held-out Tasks

    Held-out tasks are the same generator at the held-out seeds (``interplay.seeds``): the same
    distribution as training, at disjoint seeds. Small mazes have few distinct tasks, so a held-out
    maze can be a training maze: of 1,000 held-out tasks, about 80% of the 3x3 ones and all of the 2x2
    ones also occur among 10,000 training tasks, 1% of the 4x4 ones and none of the 5x5 ones
    (``benchmarks/split_overlap.py``, figures in ``benchmarks/RESULTS.md``). Held-out figures on mazes
    smaller than 4x4 measure recall as much as generalization.

    ## Episode End

    Termination: the agent reaches the goal (``success=True``). Truncation: after ``max_turns``
    turns. A wall bump or an unreadable reply costs a turn and leaves the agent in place; an
    unreadable reply sets ``info["invalid_action"]``, a wall bump ``info["wall_bump"]`` (the reply was
    a move, so it is not invalid).

    ## Expert

    ``expert=``: ``expert_action()`` replies in the vocabulary the instructions ask for (``"u"`` in
    compact mode, ``"up"`` otherwise); ``expert_action_probs()`` gives its distribution.

    - ``"bfs"`` (default): moves along a shortest path of the whole map, uniformly among the optimal
      moves (several only when ``loops > 0``), with its own generator seeded from the reset seed. It
      acts on information the compact and local observations do not show.
    - ``"explorer"``: acts only on what the agent has observed: a depth-first search with a memory of
      the cells the agent has stood on. It takes the open move into an unvisited cell nearest the
      goal (Manhattan; ties up, down, left, right) and at a dead end walks back to the nearest cell
      with an unvisited open side. Deterministic; it follows the agent's actual path, so it labels any
      state (DAgger). Not the default: its moves depend on a memory of visited cells a model must
      read from the chat history, and its episodes are longer, which makes it harder to imitate.

    ## Arguments

    - ``width``, ``height``: columns and rows, 2 to 100 (default 4 each).
    - ``size``: sets width and height at once (not together with them).
    - ``observation``: "compact", "local" (or "partial") or "full".
    - ``view_radius``: cells visible in each direction in local mode (default 1: a 3x3-cell window).
    - ``min_distance``: fewest moves between start and goal, 1 to width + height - 2 (default 1).
    - ``loops``: probability of removing each wall the generator leaves inside the maze (default 0.0,
      a perfect maze); above 0 there can be several shortest paths.
    - ``max_turns``: the turn limit, stated in the first observation ("Reach goal in N moves"). By
      default set at each reset to the larger of 3x the episode's shortest path and the explorer's
      path length plus the shortest path (at least 4), whichever expert is chosen, so both experts
      always solve the maze. Before the first reset ``max_turns`` holds 3 x (cells - 1), the largest
      value the default takes in a perfect maze. A fixed value can leave the expert too few moves (a
      4x4 maze's shortest path can exceed 12).
    - ``step_cost``: subtracted from every step's reward (non-negative, default 0.0).
    - ``dense_reward``: add each step's progress toward the goal to its reward (see Rewards; default False).
    - ``expert``: "bfs" (default) or "explorer", see Expert above.
    - ``render_mode``: "ansi" (default) or None.

    Registered ids: ``interplay/Maze-v0`` (these defaults) and ``interplay/Maze-4x4-v0`` (``size=4``,
    ``max_turns=12``: the default training task).

    ## Version History

    - v0: the first version; ``dense_reward`` added later (off by default, episodes unchanged).
    """

    def __init__(
        self,
        *,
        width: int | None = None,
        height: int | None = None,
        size: int | None = None,
        observation: str = "compact",
        view_radius: int = 1,
        min_distance: int = 1,
        loops: float = 0.0,
        max_turns: int | None = None,
        step_cost: float = 0.0,
        dense_reward: bool = False,
        expert: str = "bfs",
        render_mode: str | None = "ansi",
    ) -> None:
        if size is not None:
            if width is not None or height is not None:
                raise ValueError("Pass either size or width/height, not both.")
            width = height = size
        self.width = _check_int("width", 4 if width is None else width, 2, MAX_SIDE)
        self.height = _check_int("height", 4 if height is None else height, 2, MAX_SIDE)
        if observation not in OBSERVATION_MODES:
            raise ValueError(
                f"observation={observation!r} is not a mode; use one of {sorted(OBSERVATION_MODES)}."
            )
        self.observation = OBSERVATION_MODES[observation]
        self.view_radius = _check_int("view_radius", view_radius, 1, max(self.width, self.height))
        self.min_distance = _check_int("min_distance", min_distance, 1, self.width + self.height - 2)
        if isinstance(loops, bool) or not isinstance(loops, (int, float)) or not 0.0 <= loops <= 1.0:
            raise ValueError(f"loops must be a probability from 0.0 to 1.0, got {loops!r}.")
        self.loops = float(loops)
        if isinstance(step_cost, bool) or not isinstance(step_cost, (int, float)) or not step_cost >= 0:
            raise ValueError(
                f"step_cost is subtracted from every step's reward: pass a number >= 0 such as 0.01, "
                f"got {step_cost!r}."
            )
        self.step_cost = float(step_cost)
        if not isinstance(dense_reward, bool):
            raise ValueError(f"dense_reward must be True or False, got {dense_reward!r}.")
        self.dense_reward = dense_reward
        if expert not in EXPERTS:
            raise ValueError(f"expert={expert!r} is not an expert; use one of {list(EXPERTS)}.")
        self.expert = expert
        if max_turns is not None:
            max_turns = _check_int("max_turns", max_turns, 1, 10**9)
        self._fixed_max_turns = max_turns
        longest = 3 * (self.width * self.height - 1)  # the default's largest value in a perfect maze
        super().__init__(max_turns=max_turns or longest, render_mode=render_mode)
        self._compact = self.observation == "compact"
        # The reply vocabulary the instructions ask for, which the expert also speaks.
        self._reply = {d: d[0] for d in DIRECTIONS} if self._compact else {d: d for d in DIRECTIONS}
        moves = "u, d, l or r" if self._compact else "up, down, left or right"
        self.system_prompt = f"You are in a maze. Reply with one move: {moves}."

    # ---- generation ---------------------------------------------------------------------------
    def _neighbor(self, cell: int, direction: str) -> int | None:
        row, col = divmod(cell, self.width)
        dr, dc = _DELTA[direction]
        row, col = row + dr, col + dc
        if 0 <= row < self.height and 0 <= col < self.width:
            return row * self.width + col
        return None

    def _carve(self, cell: int, direction: str, opened: list[set[str]]) -> None:
        other = self._neighbor(cell, direction)
        opened[cell].add(direction)
        opened[other].add({"up": "down", "down": "up", "left": "right", "right": "left"}[direction])

    def _generate(self) -> list[tuple[str, ...]]:
        """The open directions of every cell: a randomized depth-first search carves a spanning tree."""
        rng, n_cells = self.np_random, self.width * self.height
        opened: list[set[str]] = [set() for _ in range(n_cells)]
        visited = [False] * n_cells
        stack = [int(rng.integers(n_cells))]
        visited[stack[0]] = True
        while stack:
            cell = stack[-1]
            fresh = [d for d in DIRECTIONS if (nb := self._neighbor(cell, d)) is not None and not visited[nb]]
            if not fresh:
                stack.pop()
                continue
            direction = fresh[int(rng.integers(len(fresh)))]
            self._carve(cell, direction, opened)
            nb = self._neighbor(cell, direction)
            visited[nb] = True
            stack.append(nb)
        if self.loops > 0:
            remove = rng.random((n_cells, 2)) < self.loops
            for cell in range(n_cells):
                for k, direction in enumerate(("down", "right")):
                    if (
                        remove[cell, k]
                        and direction not in opened[cell]
                        and self._neighbor(cell, direction) is not None
                    ):
                        self._carve(cell, direction, opened)
        return [tuple(d for d in DIRECTIONS if d in dirs) for dirs in opened]

    def _distances(self, source: int) -> list[int]:
        dist = [-1] * (self.width * self.height)
        dist[source] = 0
        queue = deque([source])
        while queue:
            cell = queue.popleft()
            for direction in self._open[cell]:
                nb = self._neighbor(cell, direction)
                if dist[nb] < 0:
                    dist[nb] = dist[cell] + 1
                    queue.append(nb)
        return dist

    def _place(self) -> tuple[int, int]:
        """A start, and a goal drawn among the cells at least ``min_distance`` moves from it."""
        rng = self.np_random
        # Always found: opposite corners are >= width + height - 2 >= min_distance moves apart.
        for start in rng.permutation(self.width * self.height):
            far = [c for c, d in enumerate(self._distances(int(start))) if d >= self.min_distance]
            if far:
                return int(start), far[int(rng.integers(len(far)))]
        raise AssertionError("unreachable: opposite corners are always far enough apart")

    # ---- naming and views ---------------------------------------------------------------------
    def _name(self, cell: int) -> str:
        row, col = divmod(cell, self.width)
        return f"{row}{col}" if max(self.width, self.height) <= 10 else f"{row},{col}"

    def _char(self, y: int, x: int, at: tuple[int, int], goal: tuple[int, int]) -> str:
        """The character at row y, column x of the (2h+1) x (2w+1) map; outside reads as wall."""
        if not (0 <= y < len(self._grid) and 0 <= x < len(self._grid[0])):
            return "#"
        if (y, x) == at:
            return "@"
        if (y, x) == goal:
            return "G"
        return self._grid[y][x]

    def _center(self, cell: int) -> tuple[int, int]:
        row, col = divmod(cell, self.width)
        return 2 * row + 1, 2 * col + 1

    def _map(self) -> str:
        at, goal = self._center(self._pos), self._center(self._goal)
        return "\n".join(
            "".join(self._char(y, x, at, goal) for x in range(2 * self.width + 1))
            for y in range(2 * self.height + 1)
        )

    def _window(self) -> str:
        at, goal = self._center(self._pos), self._center(self._goal)
        cy, cx = at
        k = 2 * self.view_radius + 1  # characters from the center to the window's edge
        return "\n".join(
            "".join(self._char(y, x, at, goal) for x in range(cx - k, cx + k + 1)) for y in range(cy - k, cy + k + 1)
        )

    def _observe(self) -> str:
        where = f"at {self._name(self._pos)} goal {self._name(self._goal)}"
        if self._compact:
            return f"{where} open {''.join(d[0] for d in self._open[self._pos])}"
        if self.observation == "local":
            return f"{where}\n{self._window()}"
        return self._map()

    # ---- the TextEnv hooks ----------------------------------------------------------------------
    def _reset(self, options: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
        self._open = self._generate()
        self._pos, self._goal = self._place()
        self._start = self._pos
        self._visited = {self._pos}  # the explorer's memory: the cells the agent has stood on
        self._dist = self._distances(self._goal)  # moves to the goal from every cell
        shortest = self._dist[self._start]
        # Room for the explorer and a shortest path's slack, whichever expert is imitated (the task must
        # not depend on it); tight, because failing episodes run to the cap and cost most.
        self.max_turns = self._fixed_max_turns or max(3 * shortest, self._explorer_length() + shortest, 4)
        # The expert's own generator: seeded from the reset seed, untouched by the maze's draws.
        self._expert_rng = np.random.default_rng(int(self.np_random.integers(2**63)))
        grid = [["#"] * (2 * self.width + 1) for _ in range(2 * self.height + 1)]
        for cell, dirs in enumerate(self._open):
            y, x = self._center(cell)
            grid[y][x] = "."
            for d in dirs:
                grid[y + _DELTA[d][0]][x + _DELTA[d][1]] = "."
        self._grid = ["".join(row) for row in grid]

        size = f"{self.width}x{self.height} maze"
        if self._compact:
            cells = "rowcol" if max(self.width, self.height) <= 10 else "row,col"
            intro = (
                f"{size}, cells {cells}, row 0 on top. Reach goal in {self.max_turns} moves: reply u/d/l/r."
            )
        else:
            view = f"You see {self.view_radius} cell(s) around you."
            if self.observation == "full":
                view = "You see the whole maze."
            intro = (
                f"{size}: reach the goal G in {self.max_turns} moves. {view} {LEGEND} "
                "Reply up, down, left or right."
            )
        info = {
            "shortest_path": shortest,
            "start": self._name(self._start),
            "goal": self._name(self._goal),
            "max_turns": self.max_turns,
        }
        return f"{intro}\n{self._observe()}", info

    def _step(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        move = extract_last_choice(action, MOVE_SYNONYMS)
        before = self._dist[self._pos]
        wall_bump = move is not None and move not in self._open[self._pos]
        if move is not None and not wall_bump:
            self._pos = self._neighbor(self._pos, move)
            self._visited.add(self._pos)
        info: dict[str, Any] = {
            "invalid_action": move is None,
            "move": move,
            "wall_bump": wall_bump,
            "optimal": self._dist[self._pos] < before,
            "distance": self._dist[self._pos],
        }
        reached = self._pos == self._goal
        reward = float(reached) - self.step_cost
        if self.dense_reward:
            reward += (before - self._dist[self._pos]) / self._dist[self._start]
        if reached:
            info["success"] = True
            observation = (
                f"goal reached in {self.turn} moves"
                if self._compact
                else (f"You reached the goal in {self.turn} moves.")
            )
            return observation, reward, True, info

        open_dirs = self._open[self._pos]
        if self._compact:
            prefix = (
                f"wall {move[0]}; " if wall_bump else "no move read, reply u/d/l/r; " if move is None else ""
            )
        elif wall_bump:
            prefix = f"You hit a wall going {move}; open: {', '.join(open_dirs)}.\n"
        elif move is None:
            prefix = "No move found in your reply; reply up, down, left or right.\n"
        else:
            prefix = ""
        return prefix + self._observe(), reward, False, info

    def _render(self) -> str:
        return self._map()

    def outcome(self) -> str:
        row, col = divmod(self._pos, self.width)
        return f"r{row}c{col}"

    # ---- the experts -------------------------------------------------------------------------------
    def _manhattan(self, cell: int) -> int:
        (row, col), (goal_row, goal_col) = divmod(cell, self.width), divmod(self._goal, self.width)
        return abs(row - goal_row) + abs(col - goal_col)

    def _explore_move(self, pos: int, visited: set[int]) -> str:
        """The explorer's move from ``pos``, knowing only the cells in ``visited`` (and their open sides).

        It heads for the nearest open side leading to an unvisited cell (breadth-first over the visited
        cells), preferring among equally near ones the unvisited cell closest to the goal (Manhattan),
        then the order up, down, left, right. Having just come down a corridor, the nearest such side is
        straight ahead, so this is a depth-first search that backtracks at dead ends.
        """
        first: dict[int, str | None] = {pos: None}  # the first move on a shortest known way to each cell
        level = [pos]
        while level:
            best: tuple[int, str] | None = None  # (Manhattan distance of the unvisited cell, first move)
            for cell in level:
                for d in self._open[cell]:
                    nb = self._neighbor(cell, d)
                    if nb not in visited and (best is None or self._manhattan(nb) < best[0]):
                        best = (self._manhattan(nb), first[cell] or d)
            if best is not None:
                return best[1]
            nxt = []  # no unvisited cell borders this level, so every cell reached here is a visited one
            for cell in level:
                for d in self._open[cell]:
                    if (nb := self._neighbor(cell, d)) not in first:
                        first[nb] = first[cell] or d
                        nxt.append(nb)
            level = nxt
        raise AssertionError("unreachable: the goal is unvisited and connected to every cell")

    def _explorer_length(self) -> int:
        """Moves the explorer takes from the start to the goal."""
        pos, visited, moves = self._start, {self._start}, 0
        while pos != self._goal:
            pos = self._neighbor(pos, self._explore_move(pos, visited))
            visited.add(pos)
            moves += 1
        return moves

    def _expert_moves(self) -> list[str]:
        if self._finished:
            return []
        if self.expert == "explorer":
            return [self._explore_move(self._pos, self._visited)]
        here = self._dist[self._pos]
        return [d for d in self._open[self._pos] if self._dist[self._neighbor(self._pos, d)] == here - 1]

    def expert_action_probs(self) -> dict[str, float]:
        """The expert's distribution over replies: for "bfs" uniform over the moves on a shortest path;
        certain for the explorer."""
        moves = self._expert_moves()
        return {self._reply[d]: 1.0 / len(moves) for d in moves}

    def expert_action(self) -> str | None:
        """The expert's move (None once the episode is over)."""
        moves = self._expert_moves()
        if not moves:
            return None
        return self._reply[moves[int(self._expert_rng.integers(len(moves)))]]
