"""preview-broker controller: allowlist publisher and preview-environment lifecycle."""
