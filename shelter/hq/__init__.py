"""HQ's own knowledge: the registry of designated shelters and the read models kept ready
for 3,000 of them. Builds on the domain; no Flask."""

import shelter.domain  # noqa: E402, F401  (HQ builds on the domain)
from shelter.core import node  # noqa: E402
from shelter.core.outbox import route  # noqa: E402
from shelter.hq import shelters, stats  # noqa: E402, F401  (shelters: its projection)

node.HQ_STORE_HOOKS = (stats.mark, route)
