"""Compiling: cargo for one target (target.py), the Rust project as cargo sees it, where std and
crates come from, the runners that invoke cargo, the compile cache, the build image and the fresh
check's fingerprints. What follows cargo is the pipeline's (toolchain/pipeline/)."""
