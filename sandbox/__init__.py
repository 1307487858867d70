"""sandbox layer of Membersync."""
