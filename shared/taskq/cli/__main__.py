"""`python -m taskq.cli`: the same as the `taskq` console script."""

from taskq.cli import main

main()
