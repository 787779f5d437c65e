"""The ``kmipd`` command line."""
