"""Building: the pipeline (pipeline.py: cargo → inspect → verify →
package), the build record, the Rust project as cargo sees it, where std
and crates come from, the runners that invoke cargo, and the build image."""
