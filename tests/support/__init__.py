"""Test helpers and pytest plugins: a real IPython shell, a real JupyterLab with Chromium, a real MLflow server."""
