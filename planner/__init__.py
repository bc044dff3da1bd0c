"""Everything up to a Plan: training graphs, execution orders, lifespans and planners."""
