"""Integrations that ``init()`` switches on: ``sync_tensorboard``, ``monitor_gym`` and ``magic``.

Each module has ``start(run, ...)``, imports its third-party library only inside ``start``, patches what it
needs while the run is live and undoes it from a ``run.on_finish`` callback. ``import tracker_jupyter`` never
imports this package.
"""
