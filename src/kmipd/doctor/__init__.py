"""``kmipd doctor``: check a setup the way a support engineer would.

One module per group of checks; each check returns findings (OK, WARN or FAIL, what was
checked, and for a problem what to do about it). :func:`kmipd.doctor.runner.run` runs them
all against a data directory; nothing in here changes the setup.
"""
