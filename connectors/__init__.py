"""connectors layer of Membersync."""
