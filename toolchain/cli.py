"""The `toolchain` command: an invoke Program over the toolkit's tasks, so it
works in any folder with no tasks.py (`toolchain build`, `toolchain --list`)."""

from __future__ import annotations

from invoke.program import Program

from toolchain import __version__
from toolchain.tasks import namespace

program = Program(namespace=namespace, version=__version__, name="toolchain", binary="toolchain")


def main() -> None:
    program.run()
