"""Helpers shared by the tests: hand-made runs, bwrap machines, the headless browser, stand-in weights and ARENA
files (imported as `support.…`; no test module imports another)."""
