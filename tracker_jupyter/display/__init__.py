"""What a run looks like on screen: chart and table markup and bounded series (pure), the live run widget
and its snapshot, and the runs dashboard. ipywidgets and IPython's display are imported only when shown.
"""
