"""The simulator's one error: the tables do something it cannot judge faithfully."""

from __future__ import annotations


class SimulationError(RuntimeError):
    """The flow tables are inconsistent (ambiguous match, loop) or use what the simulator does not model.

    The message names the construct. The simulator raises instead of guessing
    wherever Open vSwitch's result would be unpredictable or is not modelled.
    """
