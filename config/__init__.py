"""config layer of Membersync."""
