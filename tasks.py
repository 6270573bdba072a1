"""invoke wiring only: every task lives in toolchain/tasks/."""

from toolchain.tasks import namespace  # noqa: F401
