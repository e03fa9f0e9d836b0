"""Commands beside the download: ``rawtui interfaces`` (which way traffic goes, and why) and the benchmark."""
