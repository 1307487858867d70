"""The `membersync` command and the dev supervisor."""
