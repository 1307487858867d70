"""benchmarks layer of Membersync."""
