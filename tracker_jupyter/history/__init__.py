"""The session history of a notebook run: the recorder of cells and outputs, and its notebook writer.

Pure: plain data in (sources, execution counts, outputs), an nbformat v4 file out; no IPython here.
"""
