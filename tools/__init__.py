"""Developer tools that run on demand (not part of the package or of CI)."""
