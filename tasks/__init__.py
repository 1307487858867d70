"""tasks layer of Membersync."""
