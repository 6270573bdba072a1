"""Pictures of the builds: size history, crate attribution and the build
timeline drawn with matplotlib (the optional `report` extra), each as PNG and
SVG in one self-contained HTML page."""
