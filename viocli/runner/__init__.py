"""The Ansible run engine around ansible-runner: data dir, settings, progress, redaction, exit codes."""
