"""``python -m vtrust`` runs the command-line interface."""

from vtrust.cli import main

main()
