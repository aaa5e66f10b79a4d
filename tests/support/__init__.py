"""The test harness: real programs started and stopped (control plane, Dex, Traefik, the stack,
a browser), fakes of third-party services (an OIDC provider at HTTP level), and the flows a
person walks through.

The tests, the benchmarks (bench/) and the developer scripts (scripts/dev, scripts/demo) all
build on it; it never imports a test module (an import-linter contract in pyproject.toml).
"""
