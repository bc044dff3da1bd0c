"""Device simulation of a planned training iteration (device profiles, timelines).

``simulate(graph, plan, device) -> Timeline``; ``simulate_events(steps, transfers, device)`` for
schedules built by hand; ``load_device(name or path)`` for the profiles in ``profiles/``.
"""
