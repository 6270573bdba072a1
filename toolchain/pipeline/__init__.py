"""`toolchain build` as a whole: the fresh check, then for each target cargo (toolchain.compile),
inspection and the policy (toolchain.verify), archives and the release folder (toolchain.release),
and the build record. The layer above the stages it runs; only tasks import it."""
