"""Releasing: archives, the release folder (checksums, manifest,
provenance, signatures, installers) and its check, signing, publishing to
GitHub Releases and S3, CI workflows and version bumps."""
