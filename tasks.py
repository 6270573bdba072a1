"""invoke wiring only: every task lives in toolchain/tasks/."""

from toolchain.tasks import build_namespace

namespace = build_namespace()
