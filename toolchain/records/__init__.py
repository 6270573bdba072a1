"""The records that cross stages: what a build is asked for, the build record it leaves, and the
names of the release formats. A leaf: it imports only the floor (errors, atomic, digest), as
tests/test_structure.py holds."""
