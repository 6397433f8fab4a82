"""Deployment secrets: generated on first use, stored on the OMS with mode 0600, never printed."""
