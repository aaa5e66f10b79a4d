"""What the broker and the controller both build on: host rules, settings, durations, logs,
the clock, and the contract between them (the PreviewEnvironment resource and its names).

Nothing here imports `broker`, `controller` or `kube` (import-linter contracts in pyproject.toml).
"""
