"""CueGrid: a pixel grid world with object masks and a shortcut cue.

The agent (a filled blue square) must walk onto the **goal** (a green plus) and avoid the
**trap** (a green cross of the same colour: only the shape tells them apart). A bright yellow
**cue** tile lies next to one of the two. In training levels (``cue="goal"``) it always
touches the goal, so "walk to the object beside the yellow tile" solves every training level;
in the shifted test levels (``cue="trap"``) it touches the trap instead, and an agent that
follows the cue walks into the trap. ``cue="random"`` puts it on a free cell touching neither
object (uncorrelated), ``cue="none"`` leaves it out.

* Grid: ``size x size`` cells, each ``tile x tile`` pixels; observation ``(3, size*tile,
  size*tile)`` uint8, channel-first, black background. Default 6 x 6 cells of 5 px: 3 x 30 x 30.
* Actions: 0 up, 1 down, 2 left, 3 right; walking into the border leaves the agent in place.
  The cue is floor: the agent may walk over it.
* Reward: ``1 - 0.9 * t / max_steps`` on reaching the goal at step ``t`` (episode ends),
  ``trap_reward`` (default -1) on the trap (episode ends), 0 otherwise; the episode is truncated
  after ``max_steps`` (default ``4 * size``) steps.
* Levels: agent, goal and trap on distinct uniformly drawn cells, goal and trap not adjacent
  and the agent not adjacent to either; the cue on a uniformly drawn free cell 4-adjacent to its
  anchor and not to the other object (levels are redrawn until such a cell exists). Every
  level is drawn from the ``reset`` seed, so a seed names a level.
* ``cue_moves=True`` (``lookright/CueGridMoving-v0`` and ``-Shifted-v0``): after every step the
  cue jumps to another cell that satisfies its level's rule (beside the goal in training,
  beside the trap in test levels), drawn from the episode's generator: a distractor that moves.
* ``info["mask"]``: ``(H, W)`` uint8, 1 on the pixels of the task-relevant objects
  (``relevant``, default the agent and the goal); ``info["object_masks"]`` holds one mask per
  object (agent, goal, trap, cue), ``info["positions"]`` their ``(row, col)`` cells.
"""

from __future__ import annotations

from typing import Literal

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from lookright.errors import ConfigError

CueMode = Literal["goal", "trap", "random", "none"]
OBJECTS = ("agent", "goal", "trap", "cue")
MOVES = np.array([(-1, 0), (1, 0), (0, -1), (0, 1)])
COLOURS = {"agent": (70, 140, 255), "goal": (40, 200, 40), "trap": (40, 200, 40), "cue": (255, 220, 0)}


def glyph(name: str, tile: int) -> np.ndarray:
    """The ``(tile, tile)`` bool footprint of an object: agent = inset square, goal = plus,
    trap = cross (both diagonals), ``trap-dot`` = the plus without its centre pixel (a harder
    trap), cue = the whole tile."""
    g = np.zeros((tile, tile), dtype=bool)
    idx = np.arange(tile)
    mid = tile // 2
    if name == "agent":
        g[1:-1, 1:-1] = True
    elif name == "goal":
        g[mid, :] = True
        g[:, mid] = True
    elif name == "trap":
        g[idx, idx] = True
        g[idx, tile - 1 - idx] = True
    elif name == "trap-dot":
        g[mid, :] = True
        g[:, mid] = True
        g[mid, mid] = False
    elif name == "cue":
        g[:] = True
    return g


def _neighbours(cell: tuple[int, int], size: int) -> list[tuple[int, int]]:
    r, c = cell
    return [(r + dr, c + dc) for dr, dc in MOVES if 0 <= r + dr < size and 0 <= c + dc < size]


def _adjacent(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return abs(a[0] - b[0]) + abs(a[1] - b[1]) <= 1


class CueGridEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(self, size: int = 6, tile: int = 5, cue: CueMode = "goal", max_steps: int | None = None,
                 trap_reward: float = -1.0, trap_glyph: Literal["trap", "trap-dot"] = "trap", relevant: tuple[str, ...] = ("agent", "goal"),
                 cue_moves: bool = False, render_mode: str | None = None) -> None:
        if size < 4:
            raise ConfigError(f"CueGrid size must be >= 4 cells to place agent, goal, trap and cue apart, got {size}")
        if tile < 3:
            raise ConfigError(f"CueGrid tile must be >= 3 pixels so that plus and cross differ, got {tile}")
        if cue not in ("goal", "trap", "random", "none"):
            raise ConfigError(f"CueGrid cue must be one of goal, trap, random, none; got {cue!r}")
        unknown = [r for r in relevant if r not in OBJECTS]
        if unknown or not relevant:
            raise ConfigError(f"CueGrid relevant objects must be a non-empty subset of {OBJECTS}, got {relevant}")
        self.size, self.tile, self.cue_mode = size, tile, cue
        self.max_steps = max_steps or 4 * size
        self.trap_reward = float(trap_reward)
        self.relevant = tuple(relevant)
        self.cue_moves = bool(cue_moves)
        self.render_mode = render_mode
        side = size * tile
        self.observation_space = spaces.Box(0, 255, (3, side, side), dtype=np.uint8)
        self.action_space = spaces.Discrete(4)
        if trap_glyph not in ("trap", "trap-dot"):
            raise ConfigError(f"CueGrid trap_glyph must be 'trap' (cross) or 'trap-dot', got {trap_glyph!r}")
        self._glyphs = {name: glyph(name, tile) for name in OBJECTS}
        self._glyphs["trap"] = glyph(trap_glyph, tile)
        self.positions: dict[str, tuple[int, int] | None] = {}
        self.steps = 0

    # -- level generation ---------------------------------------------------------------
    def _draw_level(self) -> None:
        rng, size = self.np_random, self.size
        cells = [(r, c) for r in range(size) for c in range(size)]
        while True:
            agent, goal, trap = (cells[i] for i in rng.choice(len(cells), 3, replace=False))
            if _adjacent(goal, trap) or _adjacent(agent, goal) or _adjacent(agent, trap):
                continue
            options = self._cue_cells(agent, goal, trap)
            if options:
                break
        cue = options[int(rng.integers(len(options)))]
        self.positions = {"agent": agent, "goal": goal, "trap": trap, "cue": cue}

    def _cue_cells(self, agent, goal, trap) -> list:
        """The cells the level's rule allows for the cue ([None] when there is no cue)."""
        free = [(r, c) for r in range(self.size) for c in range(self.size) if (r, c) not in (agent, goal, trap)]
        if self.cue_mode in ("goal", "trap"):
            anchor, other = (goal, trap) if self.cue_mode == "goal" else (trap, goal)
            # touching the anchor only, so that the cue is never ambiguous
            return [p for p in free if _adjacent(p, anchor) and not _adjacent(p, other)]
        if self.cue_mode == "random":
            return [p for p in free if not _adjacent(p, goal) and not _adjacent(p, trap)]
        return [None]

    def _move_cue(self) -> None:
        p = self.positions
        options = [c for c in self._cue_cells(p["agent"], p["goal"], p["trap"]) if c != p["cue"]]
        if options:
            p["cue"] = options[int(self.np_random.integers(len(options)))]

    # -- rendering ----------------------------------------------------------------------
    def object_mask(self, name: str) -> np.ndarray:
        """``(H, W)`` uint8 footprint of one object (all zero if it is absent)."""
        side = self.size * self.tile
        mask = np.zeros((side, side), dtype=np.uint8)
        cell = self.positions.get(name)
        if cell is not None:
            r, c = cell[0] * self.tile, cell[1] * self.tile
            mask[r:r + self.tile, c:c + self.tile] = self._glyphs[name]
        return mask

    def observation(self) -> np.ndarray:
        """Channel-first ``(3, H, W)`` uint8 pixels. Drawn in the order cue, trap, goal, agent,
        so the agent stands on the cue when it walks over it."""
        side = self.size * self.tile
        img = np.zeros((3, side, side), dtype=np.uint8)
        for name in ("cue", "trap", "goal", "agent"):
            m = self.object_mask(name).astype(bool)
            img[:, m] = np.array(COLOURS[name], dtype=np.uint8)[:, None]
        return img

    def render(self) -> np.ndarray:
        """``(H, W, 3)`` uint8, gymnasium's ``rgb_array`` convention."""
        return self.observation().transpose(1, 2, 0)

    def _info(self) -> dict:
        masks = {name: self.object_mask(name) for name in OBJECTS}
        relevant = np.zeros_like(masks["agent"])
        for name in self.relevant:
            relevant |= masks[name]
        positions = {k: (None if v is None else tuple(int(x) for x in v)) for k, v in self.positions.items()}
        return {"mask": relevant, "object_masks": masks, "positions": positions, "cue_mode": self.cue_mode}

    # -- gymnasium API ------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.steps = 0
        self._draw_level()
        return self.observation(), self._info()

    def step(self, action):
        if not self.action_space.contains(int(action)):
            raise ConfigError(f"CueGrid action must be 0..3 (up, down, left, right), got {action!r}")
        self.steps += 1
        r, c = self.positions["agent"]
        dr, dc = MOVES[int(action)]
        self.positions["agent"] = (min(max(r + dr, 0), self.size - 1), min(max(c + dc, 0), self.size - 1))
        reward, terminated = 0.0, False
        if self.positions["agent"] == self.positions["goal"]:
            reward, terminated = 1.0 - 0.9 * self.steps / self.max_steps, True
        elif self.positions["agent"] == self.positions["trap"]:
            reward, terminated = self.trap_reward, True
        truncated = not terminated and self.steps >= self.max_steps
        if self.cue_moves and not (terminated or truncated):
            self._move_cue()
        info = self._info()
        info["outcome"] = "goal" if reward > 0 else "trap" if terminated else "timeout" if truncated else None
        return self.observation(), reward, terminated, truncated, info
