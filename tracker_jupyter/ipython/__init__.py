"""The IPython side: the extension's load/unload, the magics, and what a run needs in a shell."""
