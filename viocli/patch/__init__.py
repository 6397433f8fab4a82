"""Patches: Debian packages that carry node packages, a manifest and a playbook, optionally signed."""
