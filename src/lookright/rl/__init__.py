"""Attention alignment for reinforcement-learning agents.

Importing this package registers the lookright environments with gymnasium, so that
``gymnasium.make("lookright/CueGrid-v0")`` works (or, without importing first,
``gymnasium.make("lookright.rl:lookright/CueGrid-v0")``):

* ``lookright/CueGrid-v0``: training levels, the cue touches the goal;
* ``lookright/CueGrid-Shifted-v0``: test levels, the cue touches the trap.
"""

from gymnasium.envs.registration import register, registry

for _id, _cue in (("lookright/CueGrid-v0", "goal"), ("lookright/CueGrid-Shifted-v0", "trap")):
    if _id not in registry:
        register(id=_id, entry_point="lookright.rl.env:CueGridEnv", kwargs={"cue": _cue})
