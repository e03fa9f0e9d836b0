"""Sans-IO protocol machines: they take bytes and a time, return frames, deadlines and events."""
