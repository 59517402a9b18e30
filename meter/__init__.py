# osgp_meter: the portable, sans-IO firmware core of an OSGP smart meter.
#
# Installed under the import name ``osgp_meter`` (the folder is ``meter/``; a
# PyPI package called ``meter`` already exists). Everything in this package
# runs unchanged on CPython >= 3.10 and MicroPython >= 1.23: no I/O, no
# threads, no wall clock; time comes in as an argument. Modules import each
# other relatively so the package works under any name on a board.
__version__ = "0.1.0"
