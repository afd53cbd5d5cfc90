"""Online mode: the local store's records synced to an MLflow Tracking Server over its REST API.

``rest`` is the HTTP client (transport, endpoints, errors, batching); the modules beside it map a run onto
MLflow, keep credentials, and sync a run in the background or from ``tracker sync``.
"""
