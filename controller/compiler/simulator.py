"""The flow-table simulator's original entry point: everything lives in :mod:`controller.compiler.sim`.

Kept so existing tests and tools import ``controller.compiler.simulator``
unchanged; new code may import either.
"""

from controller.compiler.sim import *  # noqa: F403
from controller.compiler.sim import __all__ as __all__
