"""Managed objects, their attributes and their lifecycle, as plain data and tables."""
