"""``python -m panelbrain.cli``: the same command line as the ``panelbrain`` script."""

from panelbrain.cli import main

main()
