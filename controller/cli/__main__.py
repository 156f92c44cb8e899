"""``python -m controller.cli``: the same as the ``loomctl`` console script."""

from controller.cli.main import main

main()
