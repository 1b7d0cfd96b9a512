"""`python -m fervideo`: the same as the `fervideo` command."""

from fervideo.cli import main

main()
