"""Make the checkout importable as ansible_collections.kubeferry.state_transfer."""

import os
import sys

COLLECTIONS = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".collections"
)
if COLLECTIONS not in sys.path:
    sys.path.insert(0, COLLECTIONS)
