"""HQ's pages and API: the dashboard and shelters' pages, the public page, /sync."""
