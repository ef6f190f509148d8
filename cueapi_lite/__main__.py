"""`python -m cueapi_lite` runs the CLI."""

from .cli import main

main()
