"""Makes the ``go_sink`` fixture available to the tests in this directory.

Other test directories can do the same in their own conftest.py.
"""

from tests.support.sink import go_sink

__all__ = ["go_sink"]
