"""The reference's module path for its framework integrations: ``tracker_jupyter.integration.keras``."""
