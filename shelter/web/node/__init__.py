"""A shelter node's pages and API: kiosk, desk, staff, supplies, /api/v1."""
