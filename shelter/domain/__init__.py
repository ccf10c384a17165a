"""What a shelter does, as plain functions over a store: households, presence (and the
roster that reads it), supplies (catalog, stock, supply_requests, day_notes), settings,
accounts, cards. No Flask. Each module registers the projections of its events
with the core's pipeline when imported; importing this package registers them all."""

# Registers every domain event's projection (and value checks) with the core's pipeline.
from shelter.domain import (  # noqa: E402, F401
    accounts,
    card_keys,
    catalog,
    corrections,
    day_notes,
    households,
    presence,
    settings,
    stock,
    supply_requests,
)
