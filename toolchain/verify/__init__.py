"""Verifying built binaries: inspection (LIEF) and its cache, policies,
smoke runs, size tracking and attribution, and the `inspect` report."""
