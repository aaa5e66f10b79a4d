"""preview-broker: one stable OAuth callback for every preview environment."""

__version__ = "0.1.0"
