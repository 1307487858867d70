"""app layer of Membersync."""
