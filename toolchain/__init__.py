"""Release toolkit for Rust projects: build, verify, package, publish, update."""

from pathlib import Path

__version__ = "0.1.0"

# The repository root: data folders (profiles/, targets/) and the bundled
# demo app live beside the package.
REPO_ROOT = Path(__file__).resolve().parent.parent
