"""Attention alignment for reinforcement-learning agents.

Importing this package registers the lookright environments with gymnasium, so that
``gymnasium.make("lookright/CueGrid-v0")`` works (or, without importing first,
``gymnasium.make("lookright.rl:lookright/CueGrid-v0")``):

* ``lookright/CueGrid-v0``: training levels, the cue touches the goal;
* ``lookright/CueGrid-Shifted-v0``: test levels, the cue touches the trap;
* ``lookright/CueGridMoving-v0`` / ``lookright/CueGridMoving-Shifted-v0``: the same with a cue
  that jumps to another allowed cell after every step.
"""

from gymnasium.envs.registration import register, registry

for _id, _kwargs in (("lookright/CueGrid-v0", {"cue": "goal"}), ("lookright/CueGrid-Shifted-v0", {"cue": "trap"}),
                     ("lookright/CueGridMoving-v0", {"cue": "goal", "cue_moves": True}),
                     ("lookright/CueGridMoving-Shifted-v0", {"cue": "trap", "cue_moves": True})):
    if _id not in registry:
        register(id=_id, entry_point="lookright.rl.env:CueGridEnv", kwargs=_kwargs)
