"""Release channels beyond the archives: Linux packages (nfpm), a Windows
MSI (wixl), Homebrew and Scoop manifests, and a CycloneDX SBOM per artifact
(write.write_channels makes them; formats.py names them)."""
