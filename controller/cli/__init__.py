"""loomctl: the command-line client of the controller's gRPC API.

Command groups live in ``cmd_*.py`` modules of this package, each exposing
``GROUPS: list[CommandGroup]`` (see ``registry.py``); ``loomctl`` finds them at
start, so a new group is a new module, with no edit elsewhere.
"""
