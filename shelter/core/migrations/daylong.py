"""Steps 20-21: a shelter's long day (issue 16): corrections by staff, HQ's map outlines.

Reserved: step 20 for corrections of a household or person (``m020_corrections``), step 21
for the municipality outlines HQ's map draws (``m021_outlines``)."""

from __future__ import annotations
