"""A small client for the REST API of an MLflow Tracking Server (imports ``requests``: online mode only)."""
