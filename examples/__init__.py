"""Example apps that use dse the way a team would: from their own package, public names only."""
