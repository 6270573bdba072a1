"""The `toolchain` command: an invoke Program over the toolkit's tasks, so it
works in any folder with no tasks.py (`toolchain build`, `toolchain --list`)."""

from __future__ import annotations

import os
import sys

from invoke.program import Program

from toolchain import __version__
from toolchain.errors import BROKEN_PIPE
from toolchain.tasks import namespace

program = Program(namespace=namespace, version=__version__, name="toolchain", binary="toolchain")


def main() -> None:
    try:
        program.run()
    except BrokenPipeError:
        # `toolchain --help | head`: the reader went away; stop quietly, as cat does.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(BROKEN_PIPE)
