"""The `shelter` command's groups and subcommands beyond the node itself (shelter/cli.py
joins them): HQ's, backups', and the helpers they share."""
