"""The helpers of gradescope_utils that tests import (see the package)."""
