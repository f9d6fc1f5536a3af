"""Helpers shared by the tests: hand-made runs, machines, browsers, weights (imported as `support.…`)."""
