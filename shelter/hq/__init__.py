"""HQ's own knowledge: the registry of designated shelters and the read models kept ready
for 3,000 of them. Builds on the domain; no Flask.

Importing this package also installs HQ's store hooks (shelter.core.node.HQ_STORE_HOOKS):
before the projections, which shelters' numbers the events change (refresher.mark); after,
which shelters they concern (core/outbox.py). The entry points (app, cli, benchmarks,
tests) import it once; an HQ store opened without it fails at once.
"""

import shelter.domain  # noqa: F401  (HQ builds on the domain: its projections)
from shelter.core import node
from shelter.core.outbox import route
from shelter.hq import refresher, shelters  # noqa: F401  (shelters registers its projection)

node.HQ_STORE_HOOKS = (refresher.mark, route)
