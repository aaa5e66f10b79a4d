"""The command line: `preview-broker broker|controller` (console script), `python -m preview_broker`.

The one place that knows both components; they never import each other.
"""
