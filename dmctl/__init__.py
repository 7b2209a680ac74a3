"""dmctl: a dmsetup-compatible device-mapper tool and library, with a simulator."""

__version__ = "0.1.0"

# What `dmctl version` prints as the library line.  dmctl is not libdevmapper; the
# string keeps libdm's "1.02.x" shape that scripts parse and says what it really is.
LIBRARY_VERSION = "1.02.185-dmctl-%s (2026-11-22)" % __version__
