"""One widget per screen area. Each reads the app's :class:`~rawtui.views.tui.model.ViewModel` when it renders."""
