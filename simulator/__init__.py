"""Device simulation of a planned training iteration (device profiles, timelines)."""
