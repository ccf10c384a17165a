"""What a shelter does, as plain functions over a store: households, presence, supplies,
settings, accounts, cards. No Flask. Each module registers the projections of its events
with the core's pipeline when imported; importing this package registers them all."""

# Registers every domain event's projection (and value checks) with the core's pipeline.
from shelter.domain import accounts, households, presence, settings, supplies  # noqa: E402, F401
