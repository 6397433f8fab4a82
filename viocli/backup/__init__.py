"""Backups of the OpenStack database and of the OMS, and the targets they are written to."""
