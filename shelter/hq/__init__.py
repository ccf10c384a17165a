"""HQ's own knowledge: the registry of designated shelters and the read models kept ready
for 3,000 of them. Builds on the domain; no Flask."""
