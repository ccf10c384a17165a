"""The engine: the database and its migrations, the event store and its one pipeline (who
may say what, then the projections), the node's data directory, clock, certificates,
servers, live updates and backups. It imports nothing else of Shelter's: the domain
registers its projections and checks with it (docs/architecture.md)."""
