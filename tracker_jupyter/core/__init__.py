"""The run itself: ``Run``, ``Config``, ``Summary``, the process's current run, names and host facts.

No I/O, no IPython, no network: everything else builds on this layer, and it imports nothing above it.
"""
