"""Reading the event stream: what a download's events mean (explanations, time series) — the same for a
live download, a recording and a watched connection."""

from rawtui.api import lazy

__all__ = ["Explain", "Explained", "Explainer", "SeriesWriter", "TimeSeries"]
__getattr__ = lazy(__name__, {"Explain": "events", "Explained": "explain", "Explainer": "explain",
                              "SeriesWriter": "series", "TimeSeries": "series"})
