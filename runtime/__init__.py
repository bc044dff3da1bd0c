"""Numpy runtime executing planned training inside one arena."""
