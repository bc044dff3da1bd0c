"""Device profiles as data files (JSON, units and sources in each); see simulator/device.py."""
