"""The Textual live view."""
